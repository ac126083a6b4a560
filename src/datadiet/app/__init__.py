"""The ``datadiet`` Hydra app that drives the library: probe → score → select → train → test.

``datadiet pruning.keep_fraction=0.3 pruning.strategy=random`` runs it; configs live in the top-level
``conf/`` folder of a checkout (shipped as ``datadiet/conf`` inside the wheel). :func:`main` is the console
script (``cli``); it turns the composed config into a :class:`RunPlan` (``plan``: every check, every derived
setting, once), and :func:`run` runs it and returns its summary (``pipeline``). The phases, each a function
of the plan: the selection (``kept_subset``, with the separate probe in ``probe``), the training
(``training``, its budget in ``budget``, the pruning modes in ``modes``), the compute accounting
(``accounting``), the full-data comparison runs (``reference``) and the summary (``summary``). The plumbing
beside them: typed config schemas (``config``), what each phase's reuse depends on (``reuse``) and how a
rerun in a run directory reuses it (``rundir``), the probe-score cache (``cache``), atomic checkpoints and
resume (``checkpointing``), warnings the app's own settings make expected (``quiet``), DDP inside
multiruns (``launch``) and multi-seed probes (``ensemble``).
"""

from datadiet.app import config as _config  # noqa: F401  (registers the config schemas and resolvers)
from datadiet.app.cli import config_dir, main
from datadiet.app.pipeline import run
from datadiet.app.plan import RunPlan, validate_config

__all__ = ["RunPlan", "config_dir", "main", "run", "validate_config"]
