"""Scaling curves of sweeps (test error against examples kept, per strategy) and what goes to W&B."""

from datadiet.report.callback import ScalingCurveCallback, record_failures, report_sweep
from datadiet.report.scaling import PowerLawFit, SweepReport, build_report, collect_jobs, fit_power_law

__all__ = [
    "PowerLawFit",
    "ScalingCurveCallback",
    "SweepReport",
    "build_report",
    "collect_jobs",
    "fit_power_law",
    "record_failures",
    "report_sweep",
]
