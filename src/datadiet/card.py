"""The dataset card of a foundation subset: what data, how it was chosen, what choosing cost, how many of each
class were kept, the score's histogram and how to train on it — as a ``README.md`` and as JSON beside it.

:func:`datadiet.subset.export_foundation_subset` writes both with ``card=True``; ``datadiet task=select`` writes
them into its run directory.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

#: Bins of the score histogram.
HISTOGRAM_BINS = 10
#: Width of the longest bar of the text histogram.
_BAR_WIDTH = 40


def subset_card(
    kept_indices: np.ndarray,
    *,
    num_examples: int,
    labels: np.ndarray | None = None,
    scores: np.ndarray | None = None,
    provenance: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The card's facts: ``provenance`` (``dataset``, ``selection``, ``cost``, ``train_command``, ... as given)
    plus what is computed from the subset itself — kept counts per class and the histogram of ``scores`` (one
    per example of the whole training set; NaN are left out) over all and over the kept examples.

    Example::

        >>> card = subset_card(np.array([0, 2]), num_examples=4, labels=np.array([0, 1, 1, 0]),
        ...                    scores=np.array([0.9, 0.1, 0.8, 0.2]))
        >>> card["num_kept"], card["class_counts"]
        (2, [{'class': 0, 'total': 2, 'kept': 1}, {'class': 1, 'total': 2, 'kept': 1}])
    """
    kept = np.sort(np.asarray(kept_indices, dtype=np.int64))
    card: dict[str, Any] = {
        "num_examples": int(num_examples),
        "num_kept": len(kept),
        "keep_fraction_kept": len(kept) / num_examples if num_examples else 0.0,
    }
    card.update(dict(provenance or {}))
    if labels is not None:
        labels = np.asarray(labels)
        classes, totals = np.unique(labels, return_counts=True)
        kept_per_class = {int(c): int(n) for c, n in zip(*np.unique(labels[kept], return_counts=True))}
        card["class_counts"] = [
            {"class": int(c), "total": int(total), "kept": kept_per_class.get(int(c), 0)}
            for c, total in zip(classes, totals)
        ]
    if scores is not None:
        values = np.asarray(scores, dtype=np.float64)
        finite = values[np.isfinite(values)]
        if len(finite):
            edges = np.histogram_bin_edges(finite, bins=HISTOGRAM_BINS)
            kept_values = values[kept]
            card["score_histogram"] = {
                "bin_edges": edges.tolist(),
                "all": np.histogram(finite, bins=edges)[0].tolist(),
                "kept": np.histogram(kept_values[np.isfinite(kept_values)], bins=edges)[0].tolist(),
                "unscored": int(len(values) - len(finite)),
            }
    return card


def card_markdown(card: Mapping[str, Any]) -> str:
    """The card as a readable ``README.md`` (Markdown), from the facts of :func:`subset_card`."""
    dataset = card.get("dataset") or {}
    selection = card.get("selection") or {}
    selector = selection.get("selector") or {}
    cost = card.get("cost") or {}
    name = dataset.get("name", "a dataset")
    lines = [
        (
            f"# Foundation subset of {name}: {card['num_kept']:,} of {card['num_examples']:,} examples "
            f"({card['keep_fraction_kept']:.1%})"
        ),
        "",
    ]
    if card.get("subset_file"):
        lines += [
            (
                f"The subset is `{card['subset_file']}` (original indices `kept_indices`, their scores `kept_scores`); "
                "the same facts as this page are in the JSON beside it."
            ),
            "",
        ]
    lines += [
        "## Data",
        "",
        _table(
            {
                "name": name,
                "fingerprint": dataset.get("fingerprint"),
                "training examples": dataset.get("num_examples", card["num_examples"]),
                "data settings": dataset.get("overrides"),
            }
        ),
        "",
    ]
    lines += [
        "## How it was chosen",
        "",
        _table(
            {
                "selector": selector.get("description"),
                "selector model": selector.get("model"),
                "selector parameters": selector.get("parameters"),
                "selector epochs": selector.get("epochs"),
                "score": selection.get("score"),
                "strategy": selection.get("strategy"),
                "keep fraction": selection.get("keep_fraction"),
                "class balanced": selection.get("class_balanced"),
                "label noise": selection.get("label_noise"),
                "seed": selection.get("seed"),
            }
        ),
        "",
    ]
    lines += [
        "## What choosing cost",
        "",
        _table(
            {
                "FLOPs": None if cost.get("flops") is None else f"{cost['flops']:.3e}",
                "of which the selector's training": None
                if cost.get("train_flops") is None
                else f"{cost['train_flops']:.3g}",
                "of which scoring": None if cost.get("scoring_flops") is None else f"{cost['scoring_flops']:.3g}",
                "wall time": None if cost.get("wall_time_s") is None else f"{cost['wall_time_s']:.1f} s",
                "examples seen": cost.get("examples_seen"),
                "note": cost.get("note"),
            }
        ),
        "",
    ]
    if card.get("class_counts"):
        lines += ["## Examples per class", "", "| class | total | kept | kept share |", "|---:|---:|---:|---:|"]
        lines += [
            f"| {row['class']} | {row['total']:,} | {row['kept']:,} | {row['kept'] / max(row['total'], 1):.1%} |"
            for row in card["class_counts"]
        ]
        lines.append("")
    histogram = card.get("score_histogram")
    if histogram:
        lines += [f"## Histogram of the score ({selection.get('score', 'score')}; # all examples, = kept)", "", "```"]
        edges, counts, kept = histogram["bin_edges"], histogram["all"], histogram["kept"]
        top = max(max(counts), 1)
        for low, high, count, kept_count in zip(edges[:-1], edges[1:], counts, kept):
            bar = "#" * round(_BAR_WIDTH * count / top)
            bar = "=" * round(_BAR_WIDTH * kept_count / top) + bar[round(_BAR_WIDTH * kept_count / top) :]
            lines.append(f"[{low:9.4g}, {high:9.4g})  {bar:<{_BAR_WIDTH}}  {count:>8,} all {kept_count:>8,} kept")
        if histogram.get("unscored"):
            lines.append(f"(no score: {histogram['unscored']:,} examples)")
        lines += ["```", ""]
    if card.get("train_command"):
        lines += [
            "## Train on it",
            "",
            "```bash",
            card["train_command"],
            "```",
            "",
            (
                "Any model, any hyperparameters (a Hydra multirun too); a subset made for other data is refused by "
                "its fingerprint."
            ),
            "",
        ]
    return "\n".join(lines)


def _table(rows: Mapping[str, Any]) -> str:
    shown = {key: value for key, value in rows.items() if value is not None}
    return "\n".join(["| | |", "|---|---|", *(f"| {key} | {_cell(value)} |" for key, value in shown.items())])


def _cell(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, (list, tuple)):
        return " ".join(f"`{item}`" for item in value) or "(none)"
    if isinstance(value, Mapping):
        return ", ".join(f"{key}: {item}" for key, item in value.items())
    return str(value)
