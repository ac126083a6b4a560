"""The scaling curve of a sweep: test error against examples kept, one line per strategy, log–log.

:func:`collect_jobs` reads every job directory of a Hydra multirun (``.hydra/config.yaml`` and, for a
finished job, ``summary.json``); :func:`fit_power_law` fits ``error ≈ a · n^exponent`` by least squares
in log space; :func:`build_report` writes ``scaling_curve.csv``, ``scaling_fits.csv``,
``scaling_curve.png`` and ``report.json`` into the sweep directory. A folder whose jobs differ in
anything but :data:`SWEPT_KEYS` is not one sweep: :func:`check_one_sweep` refuses it rather than fit
one curve through unrelated runs.
"""

from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np
from omegaconf import OmegaConf

from datadiet.files import UnreadableFileError, atomic_write_bytes, atomic_write_json, atomic_write_text, read_json
from datadiet.subset import subset_group

#: Written by the app into a multirun job's directory when the job raises (see ``datadiet.report.callback``).
FAILURE_FILE = "job_failure.json"
CURVE_COLUMNS = (
    "strategy", "score", "class_balanced", "keep_fraction", "examples_kept", "train_examples", "test_error",
    "test_accuracy", "test_loss", "seed", "probe_cache", "probe_wall_time_s", "probe_examples_seen",
    "train_wall_time_s", "train_examples_seen", "train_epochs", "total_flops", "compute_ratio", "vs_full_data", "job",
)  # fmt: skip
#: The config keys a scaling-curve sweep varies; jobs differing in any other key are different experiments.
SWEPT_KEYS = ("pruning.keep_fraction", "pruning.strategy", "seed", "pruning.seed")
FIT_COLUMNS = ("strategy", "exponent", "prefactor", "r_squared", "num_points", "min_examples", "max_examples")


@dataclass
class Job:
    """One job of a sweep: its directory, config, and summary (finished) or error (failed)."""

    directory: Path
    strategy: str
    keep_fraction: float
    summary: Optional[dict[str, Any]] = None
    error: Optional[str] = None
    #: The job's config (``.hydra/config.yaml``, unresolved) flattened to dotted keys.
    config: dict[str, Any] = field(default_factory=dict)

    @property
    def finished(self) -> bool:
        return self.summary is not None


@dataclass
class PowerLawFit:
    """``test_error ≈ prefactor · examples_kept ** exponent`` (least squares on log error vs log n)."""

    strategy: str
    exponent: float
    prefactor: float
    r_squared: float
    num_points: int
    min_examples: int
    max_examples: int


@dataclass
class SweepReport:
    sweep_dir: Path
    jobs: list[Job]
    fits: list[PowerLawFit]
    files: dict[str, str] = field(default_factory=dict)

    @property
    def finished(self) -> list[Job]:
        return [job for job in self.jobs if job.finished]

    @property
    def failed(self) -> list[Job]:
        return [job for job in self.jobs if not job.finished]

    def rows(self) -> list[dict[str, Any]]:
        """One row per finished job, sorted by strategy then examples kept (the CSV and W&B table)."""
        rows = []
        for job in self.finished:
            summary = job.summary or {}
            row = {column: summary.get(column) for column in CURVE_COLUMNS}
            row.update(strategy=job.strategy, keep_fraction=job.keep_fraction, job=job.directory.name)
            rows.append(row)
        return sorted(rows, key=lambda row: (row["strategy"], row["examples_kept"], row["seed"] or 0))


def job_directories(sweep_dir: str | Path) -> list[Path]:
    """Every job folder under a sweep directory: those holding ``.hydra/config.yaml`` (any depth)."""
    sweep_dir = Path(sweep_dir)
    return sorted(path.parent.parent for path in sweep_dir.glob("**/.hydra/config.yaml"))


def _json_object(path: Path) -> dict:
    record = read_json(path, "rerun that job (or delete its folder)")
    if not isinstance(record, dict):
        raise UnreadableFileError(path, "it is not a JSON object", "rerun that job (or delete its folder)")
    return record


def collect_jobs(sweep_dir: str | Path) -> list[Job]:
    """Reads each job of a sweep; a job without ``summary.json`` is failed (with its error when recorded)."""
    jobs = []
    for directory in job_directories(sweep_dir):
        config = OmegaConf.load(directory / ".hydra" / "config.yaml")
        pruning = config.get("pruning") or {}
        strategy = str(pruning.get("strategy", "?"))
        if pruning.get("subset_path"):  # the jobs of one foundation subset are one line, named after the subset
            strategy = f"subset {subset_group(str(pruning.get('subset_path')))}"
        job = Job(directory, strategy, float(pruning.get("keep_fraction", float("nan"))))
        job.config = _flatten(OmegaConf.to_container(config, resolve=False))
        summary_path, failure_path = directory / "summary.json", directory / FAILURE_FILE
        try:
            if summary_path.exists():
                job.summary = _json_object(summary_path)
            elif failure_path.exists():
                failure = _json_object(failure_path)
                job.error = f"{failure.get('type', 'error')}: {failure.get('message', '')}"
            else:
                job.error = "no summary.json (still running, killed, or crashed without a trace)"
        except UnreadableFileError as error:  # a torn or edited file: the job counts as failed, and says why
            job.summary, job.error = None, str(error)
        jobs.append(job)
    return jobs


class MixedSweepError(ValueError):
    """The jobs of a folder differ in more than the swept keys: they are not one scaling curve."""


def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, dict):
        flat: dict[str, Any] = {}
        for key, item in value.items():
            flat.update(_flatten(item, f"{prefix}{key}."))
        return flat or {prefix[:-1]: "{}"}
    return {prefix[:-1]: json.dumps(value, sort_keys=True, default=str)}


def check_one_sweep(jobs: Sequence[Job], sweep_dir: str | Path = "") -> None:
    """Fails when the jobs differ in any config key other than :data:`SWEPT_KEYS` (data, model, probe, epochs...).

    Raises:
        MixedSweepError: naming each differing key with its values and how many jobs have each.
    """
    keys = sorted(set().union(*(job.config for job in jobs)) - set(SWEPT_KEYS))
    differing = []
    for key in keys:
        counts: dict[str, int] = {}
        for job in jobs:
            value = job.config.get(key, "(not set)")
            counts[value] = counts.get(value, 0) + 1
        if len(counts) > 1:
            values = ", ".join(f"{value} ({count} jobs)" for value, count in counts.items())
            differing.append(f"{key}: {values}")
    if differing:
        shown = "; ".join(differing[:6]) + (f"; and {len(differing) - 6} more" if len(differing) > 6 else "")
        raise MixedSweepError(
            f"{sweep_dir or 'the folder'} holds jobs of different experiments, not one sweep: besides "
            f"{', '.join(SWEPT_KEYS)} they differ in {shown}. One scaling curve fits runs that differ only in "
            f"those keys; run datadiet-report on each sweep's own folder (multirun/<date>/<time>)"
        )


def fit_power_law(examples: Sequence[float], errors: Sequence[float], strategy: str = "") -> Optional[PowerLawFit]:
    """Least-squares line through (log n, log error); points with zero error cannot be logged and are left out.

    Returns ``None`` with fewer than two usable points at distinct n.
    """
    n, err = np.asarray(examples, dtype=float), np.asarray(errors, dtype=float)
    usable = (n > 0) & (err > 0) & np.isfinite(err)
    n, err = n[usable], err[usable]
    if len(np.unique(n)) < 2:
        return None
    x, y = np.log(n), np.log(err)
    slope, intercept = np.polyfit(x, y, 1)
    residual = y - (slope * x + intercept)
    total = ((y - y.mean()) ** 2).sum()
    r_squared = float(1 - (residual**2).sum() / total) if total > 0 else 1.0
    return PowerLawFit(
        strategy, float(slope), float(math.exp(intercept)), r_squared, int(len(n)), int(n.min()), int(n.max())
    )


def curve_points(rows: Sequence[dict[str, Any]]) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """strategy → (examples kept, mean test error, std) with jobs of equal size (seeds) averaged."""
    points: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
    for strategy in sorted({row["strategy"] for row in rows}):
        errors_by_size: dict[int, list[float]] = {}
        for row in rows:
            if row["strategy"] == strategy:
                # a run whose test metric is not accuracy has no test error (None): not a point of the curve
                error = row["test_error"]
                errors_by_size.setdefault(int(row["examples_kept"]), []).append(
                    float("nan") if error in (None, "") else float(error)
                )
        sizes = np.array(sorted(errors_by_size))
        means = np.array([np.mean(errors_by_size[s]) for s in sizes])
        stds = np.array([np.std(errors_by_size[s]) for s in sizes])
        points[strategy] = (sizes, means, stds)
    return points


def plot_curve(
    points: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]], fits: Sequence[PowerLawFit], title: str = ""
):
    """The log–log figure: one line (with error bars over seeds) and its dashed power-law fit per strategy."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fits_by_strategy = {fit.strategy: fit for fit in fits}
    figure, axes = plt.subplots(figsize=(6, 4.5), dpi=120)
    for strategy, (sizes, means, stds) in points.items():
        fit = fits_by_strategy.get(strategy)
        label = strategy if fit is None else f"{strategy} (exponent {fit.exponent:.2f})"
        line = axes.errorbar(
            sizes, np.maximum(means, 1e-12), yerr=stds if stds.any() else None, marker="o", label=label
        )
        if fit is not None:
            grid = np.geomspace(fit.min_examples, fit.max_examples, 50)
            axes.plot(grid, fit.prefactor * grid**fit.exponent, "--", color=line[0].get_color(), alpha=0.6)
    axes.set_xscale("log")
    axes.set_yscale("log")
    axes.set_xlabel("training examples kept")
    axes.set_ylabel("test error")
    axes.set_title(title or "test error vs examples kept")
    axes.grid(True, which="both", alpha=0.3)
    axes.legend()
    figure.tight_layout()
    return figure


def _csv_text(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(columns), extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def build_report(sweep_dir: str | Path, output_dir: Optional[str | Path] = None) -> SweepReport:
    """Collects a sweep's jobs, fits a power law per strategy and writes the CSVs, PNG and ``report.json``.

    Args:
        sweep_dir: a Hydra multirun directory (``multirun/<date>/<time>`` or ``hydra.sweep.dir``).
        output_dir: where to write (default: ``sweep_dir``).

    Raises:
        FileNotFoundError: ``sweep_dir`` holds no Hydra job.
        MixedSweepError: its jobs are not one sweep (see :func:`check_one_sweep`); nothing is written.
    """
    sweep_dir = Path(sweep_dir)
    output_dir = Path(output_dir or sweep_dir)
    jobs = collect_jobs(sweep_dir)
    if not jobs:
        raise FileNotFoundError(f"no Hydra jobs (*/.hydra/config.yaml) under {sweep_dir}")
    check_one_sweep(jobs, sweep_dir)
    report = SweepReport(sweep_dir, jobs, [])
    rows = report.rows()
    points = curve_points(rows)
    report.fits = [fit for s, (n, err, _) in points.items() if (fit := fit_power_law(n, err, s)) is not None]

    files = {
        "curve_csv": atomic_write_text(output_dir / "scaling_curve.csv", _csv_text(rows, CURVE_COLUMNS)),
        "fits_csv": atomic_write_text(
            output_dir / "scaling_fits.csv", _csv_text([asdict(f) for f in report.fits], FIT_COLUMNS)
        ),
    }
    if rows:
        import matplotlib.pyplot as plt

        figure = plot_curve(points, report.fits, title=f"{rows[0].get('score') or ''} pruning — {sweep_dir.name}")
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png")
        plt.close(figure)
        files["png"] = atomic_write_bytes(output_dir / "scaling_curve.png", buffer.getvalue())
    report.files = {key: str(path) for key, path in files.items()}
    atomic_write_json(
        output_dir / "report.json",
        {
            "sweep_dir": str(sweep_dir),
            "num_jobs": len(jobs),
            "num_finished": len(report.finished),
            "failed_jobs": [{"job": str(job.directory), "strategy": job.strategy,
                             "keep_fraction": job.keep_fraction, "error": job.error} for job in report.failed],
            "fits": [asdict(fit) for fit in report.fits],
            "files": report.files,
        },
    )  # fmt: skip
    return report


def format_report(report: SweepReport) -> str:
    """The console summary: fitted exponents per strategy, then failed jobs."""
    lines = [f"scaling curve of {report.sweep_dir}: {len(report.finished)} of {len(report.jobs)} jobs finished"]
    for fit in report.fits:
        lines.append(
            f"  {fit.strategy:<12} test error ∝ n^{fit.exponent:.3f}  (R² {fit.r_squared:.2f}, "
            f"{fit.num_points} sizes, n = {fit.min_examples}…{fit.max_examples})"
        )
    for job in report.failed:
        lines.append(
            f"  FAILED {job.directory.name} (strategy={job.strategy}, keep_fraction={job.keep_fraction}): {job.error}"
        )
    for name, path in report.files.items():
        lines.append(f"  {name}: {path}")
    return "\n".join(lines)
