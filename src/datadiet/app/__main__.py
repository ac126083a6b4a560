"""``python -m datadiet.app ...`` runs the ``datadiet`` console script."""

from datadiet.app.cli import main

if __name__ == "__main__":
    main()
