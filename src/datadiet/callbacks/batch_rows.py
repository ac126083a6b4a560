"""Where :func:`take_rows` was until the data module needed it too: it lives in :mod:`datadiet.data.batch_rows`."""

from datadiet.data.batch_rows import take_rows

__all__ = ["take_rows"]
