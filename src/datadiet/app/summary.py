"""The closing summary of a run: a readable table on the console and ``summary.json`` in the run directory."""

from __future__ import annotations

from typing import Any, Mapping


def _format(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4f}" if abs(value) < 10 else f"{value:,.1f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def format_summary(rows: Mapping[str, Any], title: str = "datadiet summary") -> str:
    """Two aligned columns under a title, one row per entry."""
    width = max((len(key) for key in rows), default=0)
    lines = [title, "-" * max(len(title), width + 20)]
    lines += [f"{key:<{width}}  {_format(value)}" for key, value in rows.items()]
    return "\n".join(lines)
