"""What the app and the sweep report put into W&B.

Per job (a run in the sweep's group): the job's summary (examples kept, probe and training cost, test
metrics) in ``run.summary`` and the kept subset as a ``kept_subset`` artifact (indices + scores). Per
probe: a histogram of every score and a grid of the hardest and easiest examples (images, or small
line plots for 1-D signals). Per sweep: a ``report`` run in the same group with the scaling curve as a
``wandb.Table``, line plots and the PNG.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional, Sequence

import numpy as np
from omegaconf import DictConfig, OmegaConf

from datadiet.report.wandb_mode import wandb_offline

if TYPE_CHECKING:
    from datadiet.report.scaling import SweepReport
    from datadiet.store import ScoreTable

log = logging.getLogger(__name__)

#: Examples per row of the hardest / easiest grid.
GRID_EXAMPLES = 8


def sweep_name(sweep_dir: str | Path) -> str:
    """A sweep's W&B group: its directory's last two parts, ``multirun/2026-01-31/12-00-00`` → ``2026-01-31_12-00-00``."""
    return "_".join(Path(sweep_dir).resolve().parts[-2:])


def wandb_run(loggers: Sequence[Any]) -> Any:
    """The W&B run of the first ``WandbLogger`` among ``loggers`` on rank zero, else ``None``."""
    from lightning.pytorch.loggers import WandbLogger
    from lightning.pytorch.utilities.rank_zero import rank_zero_only

    if getattr(rank_zero_only, "rank", 0) != 0:
        return None
    for logger in loggers:
        if isinstance(logger, WandbLogger):
            return logger.experiment
    return None


def _example_input(dataset: Any, index: int) -> np.ndarray:
    item = dataset[int(index)]
    x = item[0] if isinstance(item, (tuple, list)) else item
    return np.asarray(x.detach().cpu() if hasattr(x, "detach") else x, dtype=np.float32)


def examples_figure(dataset: Any, table: "ScoreTable", name: str, count: int = GRID_EXAMPLES):
    """A 2 × ``count`` grid: the hardest examples by score ``name`` on top, the easiest below.

    Images (``C×H×W`` or ``H×W``) are shown as images, anything else as a line plot of the flattened input.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    scores = table[name]
    seen = np.flatnonzero(~np.isnan(scores))
    order = seen[np.argsort(scores[seen], kind="stable")]
    count = min(count, len(order))
    rows = {"hardest": order[::-1][:count], "easiest": order[:count]}
    figure, axes = plt.subplots(2, max(count, 1), figsize=(1.6 * max(count, 1), 3.6), squeeze=False)
    for row, (label, indices) in enumerate(rows.items()):
        for column, index in enumerate(indices):
            axis = axes[row, column]
            x = _example_input(dataset, index)
            if x.ndim == 3 and x.shape[0] in (1, 3):
                x = np.transpose(x, (1, 2, 0))
            if x.ndim == 3 and x.shape[-1] in (1, 3) or x.ndim == 2 and min(x.shape) > 1:
                x = (x - x.min()) / (np.ptp(x) or 1.0)
                axis.imshow(x.squeeze(), cmap="gray" if x.ndim == 2 or x.shape[-1] == 1 else None)
            else:
                axis.plot(x.ravel(), linewidth=1)
            axis.set_xticks([])
            axis.set_yticks([])
            target = table.labels[index] if table.labels is not None else "?"
            axis.set_title(f"#{index} y={target}\n{scores[index]:.3g}", fontsize=7)
        axes[row, 0].set_ylabel(label)
    figure.suptitle(f"hardest and easiest by {name}", fontsize=9)
    figure.tight_layout()
    return figure


def log_probe(loggers: Sequence[Any], table: "ScoreTable", datamodule: Any) -> None:
    """Logs a histogram per score and the hardest / easiest grid per score to the job's W&B run."""
    run = wandb_run(loggers)
    if run is None:
        return
    import matplotlib.pyplot as plt
    import wandb

    media: dict[str, Any] = {}
    for name in table.names:
        values = table[name]
        finite = values[np.isfinite(values)]
        if finite.size:
            media[f"probe/histogram/{name}"] = wandb.Histogram(finite)
        figure = examples_figure(datamodule.train_dataset, table, name)
        media[f"probe/examples/{name}"] = wandb.Image(figure)
        plt.close(figure)
    run.log(media)


def log_job(loggers: Sequence[Any], summary: dict[str, Any], kept_path: Optional[Path] = None) -> None:
    """The job's summary: into W&B's ``run.summary`` with the kept subset (npz + json) as an artifact,
    and as ``summary/<key>`` metrics into every other logger."""
    numbers = {f"summary/{key}": value for key, value in summary.items() if isinstance(value, (int, float))}
    for logger in loggers:
        if wandb_run([logger]) is None:
            logger.log_metrics(numbers)
    run = wandb_run(loggers)
    if run is None:
        return
    import wandb

    run.summary.update({key: value for key, value in summary.items() if isinstance(value, (int, float, str, bool))})
    if kept_path is not None and Path(kept_path).exists():
        artifact = wandb.Artifact(
            f"kept-subset-{run.id}",
            type="kept_subset",
            description="original indices kept for training, with their scores",
            metadata={
                key: summary.get(key) for key in ("dataset", "score", "strategy", "keep_fraction", "examples_kept")
            },
        )
        artifact.add_file(str(kept_path))
        sidecar = Path(kept_path).with_suffix(".json")
        if sidecar.exists():
            artifact.add_file(str(sidecar))
        run.log_artifact(artifact)


def sweep_wandb_settings(sweep_dir: str | Path, config: Optional[DictConfig] = None) -> Optional[dict[str, Any]]:
    """Project, entity, group, save dir and mode of a sweep's W&B runs, or ``None`` if it did not use W&B."""
    if config is None:
        path = Path(sweep_dir) / "multirun.yaml"
        if not path.exists():
            return None
        config = OmegaConf.load(path)
    wandb_cfg = OmegaConf.select(config, "logger.wandb")
    if wandb_cfg is None:
        return None

    def literal(key: str) -> Any:  # the value unless it is an interpolation (resolved in the jobs, not here)
        node = wandb_cfg._get_node(key) if key in wandb_cfg else None
        return None if node is None or node._is_interpolation() else node._value()

    return {
        "project": literal("project") or "datadiet",
        "entity": literal("entity"),
        "group": literal("group") or sweep_name(sweep_dir),
        "save_dir": str(sweep_dir),
        "offline": wandb_offline(),
    }


def log_report(
    report: "SweepReport",
    project: str = "datadiet",
    group: Optional[str] = None,
    entity: Optional[str] = None,
    save_dir: Optional[str] = None,
    offline: bool = True,
) -> Optional[str]:
    """A ``report`` run in the sweep's group: the curve as a table, log–log line plot, fits and the PNG.

    Returns:
        The run's local directory.
    """
    import wandb

    from datadiet.report.scaling import CURVE_COLUMNS

    rows = report.rows()
    run = wandb.init(
        project=project,
        entity=entity,
        group=group or sweep_name(report.sweep_dir),
        job_type="report",
        name=f"scaling-curve-{sweep_name(report.sweep_dir)}",
        dir=save_dir or str(report.sweep_dir),
        mode="offline" if offline else "online",
        config={"sweep_dir": str(report.sweep_dir)},
        reinit="finish_previous",
    )
    try:
        columns = [*CURVE_COLUMNS, "log10_examples_kept", "log10_test_error"]
        data = []
        for row in rows:
            error, kept = row["test_error"], row["examples_kept"]
            data.append([*(row[c] for c in CURVE_COLUMNS), np.log10(kept), np.log10(error) if error > 0 else None])
        table = wandb.Table(columns=columns, data=data)
        fits = wandb.Table(
            columns=["strategy", "exponent", "prefactor", "r_squared", "num_points"],
            data=[[f.strategy, f.exponent, f.prefactor, f.r_squared, f.num_points] for f in report.fits],
        )
        media: dict[str, Any] = {
            "scaling/curve": table,
            "scaling/fits": fits,
            "scaling/test_error_vs_examples_kept": wandb.plot.line(
                table, "examples_kept", "test_error", stroke="strategy", title="test error vs examples kept"
            ),
            "scaling/loglog": wandb.plot.line(
                table, "log10_examples_kept", "log10_test_error", stroke="strategy",
                title="log10 test error vs log10 examples kept",
            ),
        }  # fmt: skip
        if "png" in report.files:
            media["scaling/figure"] = wandb.Image(report.files["png"])
        run.log(media)
        run.summary.update({f"exponent/{fit.strategy}": fit.exponent for fit in report.fits})
        run.summary.update(
            {"jobs_finished": len(report.finished), "jobs_failed": len(report.failed),
             "failed_jobs": [str(job.directory.name) for job in report.failed]}
        )  # fmt: skip
        return run.dir
    finally:
        run.finish()
