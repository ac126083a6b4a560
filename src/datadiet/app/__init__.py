"""The ``datadiet`` Hydra app that drives the library: probe → score → select → train → test.

``datadiet pruning.keep_fraction=0.3 pruning.strategy=random`` runs it; configs live in the top-level
``conf/`` folder of a checkout (shipped as ``datadiet/conf`` inside the wheel). :func:`run` runs one
config and returns its summary (``pipeline``); :func:`main` is the console script (``cli``). Its phases: the
separate probe (``probe``), the kept subset (``kept_subset``), dynamic and in-run pruning (``pruning_modes``)
and the compute accounting (``accounting``). The plumbing beside them: typed
config schemas (``config``), the probe-score cache (``cache``), atomic checkpoints and resume
(``checkpointing``), what a rerun in a run directory may reuse (``rundir``), warnings the app's own
settings make expected (``quiet``), DDP inside multiruns (``launch``), multi-seed probes (``ensemble``)
and the closing summary (``summary``).
"""

from datadiet.app.cli import config_dir, main
from datadiet.app.pipeline import run, validate_config

__all__ = ["config_dir", "main", "run", "validate_config"]
