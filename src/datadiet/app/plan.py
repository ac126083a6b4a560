"""The run plan: the composed config read once, checked, with every derived setting resolved.

:meth:`RunPlan.from_config` is the only reader of the Hydra config besides the command line: it checks
every key and value before anything trains or is written (each error names the key and what would be
accepted) and resolves what the phases of :func:`datadiet.app.pipeline.run` need — how the training set
is chosen (:attr:`RunPlan.selection`), the probe, the pruning mode (:mod:`datadiet.app.modes`), the
training budget (:class:`Budget`) and the settings the full-data comparison runs are made with. Every
phase is a function of the plan; none reads the config.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field, replace
from typing import Any, Optional

from omegaconf import DictConfig, OmegaConf

from datadiet.app.budget import Budget
from datadiet.app.config_checks import check_known_keys, container, count, existing_file, keys_under
from datadiet.app.plan_parts import (
    ALL_DATA,
    BY_SCORES,
    IN_RUN,
    SUBSET_FILE,
    Paths,
    ProbePlan,
    PruningPlan,
    check_in_run,
    check_strategy_options,
    full_training_epochs,
    read_budget,
    read_label_noise,
    read_loggers,
    read_paths,
    read_probe,
    read_pruning,
    selection,
    with_label_issue,
)
from datadiet.app.user_callbacks import logging_only, read_callbacks
from datadiet.app.user_code import TestMetric
from datadiet.selection import needs_scores

__all__ = ["ALL_DATA", "BY_SCORES", "IN_RUN", "SUBSET_FILE", "TASKS", "RunPlan", "validate_config"]

#: ``task``: ``train`` (choose a subset, or read one, and train on it) or ``select`` (only choose, and write
#: ``subset.npz`` with its dataset card).
TASKS = ("train", "select")


@dataclass(frozen=True)
class RunPlan:
    """One run of the app, resolved: what it builds, which phases run and with which settings.

    Build it with :meth:`from_config`. The ``data``, ``model`` and ``trainer`` entries are the resolved
    ``_target_`` configs the phases instantiate; ``config`` is the whole resolved config (logged as the
    run's hyperparameters).
    """

    config: dict[str, Any]
    data: dict[str, Any]
    model: dict[str, Any]
    trainer: dict[str, Any]
    loggers: dict[str, dict[str, Any]]
    paths: Paths
    seed: int
    max_epochs: int
    resume: bool
    ckpt_path: Optional[str]
    baseline: bool
    probe: ProbePlan
    pruning: PruningPlan
    budget: Budget
    #: How the training set is chosen: :data:`ALL_DATA`, :data:`SUBSET_FILE`, :data:`IN_RUN` or :data:`BY_SCORES`.
    selection: str
    #: ``data.label_noise*`` when the data source injects label noise (``{"rate", "kind", "seed"}``), else ``None``.
    label_noise: Optional[dict[str, Any]] = None
    #: ``test_metric`` / ``test_metric_mode``: what the model logs in test_step that the run reports and compares.
    test_metric: TestMetric = field(default_factory=TestMetric)
    #: ``callbacks``: your own callbacks' resolved ``_target_`` configs, by name (full training and comparison runs).
    callbacks: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: :data:`TASKS`: ``train`` or ``select`` (only choose the subset; see :mod:`datadiet.app.select_task`).
    task: str = "train"
    #: ``task=select``: who chose — ``in_run`` (the model's own first ``probe.epochs`` epochs), ``separate``
    #: (the probe model), ``imported`` (``probe.scores_path``) or ``none`` (a score-free strategy); else ``None``.
    selector: Optional[str] = None
    _source: Any = field(default=None, repr=False, compare=False)

    # What runs -------------------------------------------------------------------------------------
    @property
    def probe_source(self) -> Optional[str]:
        """Where :data:`BY_SCORES` gets its scores: ``"none"`` (a score-free strategy such as random),
        ``"file"`` (``probe.scores_path``) or ``"probe"`` (the separate probe); ``None`` otherwise."""
        if self.selection != BY_SCORES:
            return None
        if not needs_scores(self.pruning.strategy) and self.pruning.mislabelled is None:
            return "none"
        return "file" if self.probe.scores_path else "probe"

    @property
    def probe_mode(self) -> str:
        """The probe as the summary reports it (``none`` when the mode scores nothing before training)."""
        if self.selection == SUBSET_FILE:  # an earlier run chose: nothing is scored here
            return "none"
        return self.pruning.mode.probe_mode(self.probe.mode)

    @property
    def is_full_data_reference(self) -> bool:
        """Whether this run trains on all data for ``max_epochs`` with no selection cost: the reference
        itself (``baseline=true`` then has nothing to add)."""
        return (
            self.pruning.mode.can_be_reference
            and self.pruning.keep_fraction == 1.0
            and not self.pruning.subset_path
            and self.budget.kind == "epochs"
            and self.budget.epochs_scale == 1.0
            and self.probe.skip_when_keeping_all
        )

    def may_be_reference(self, epochs: int, probe_flops: float) -> bool:
        """Whether the finished run (``epochs`` trained, ``probe_flops`` spent) is the full-data reference."""
        return (
            self.pruning.mode.can_be_reference
            and self.pruning.keep_fraction == 1.0
            and not self.pruning.subset_path
            and epochs == self.max_epochs
            and probe_flops == 0
        )

    # Derived plans ---------------------------------------------------------------------------------
    def full_data(self, epochs: Optional[int] = None) -> "RunPlan":
        """A comparison run of ``baseline=true``: the same model on all data, unlogged, for ``max_epochs``
        (in ``<run dir>/baseline``) or, stopped early, for ``epochs`` (in ``<run dir>/early_stopped``) with
        its learning-rate schedule fitted to that length. Your ``callbacks`` join it (it trains as this run
        does), except those that only write to loggers (a ``LearningRateMonitor``), which it has none of."""
        folder = "baseline" if epochs is None else "early_stopped"
        overrides: dict[str, Any] = {
            "baseline": False,
            "logger": None,
            "paths": {
                "output_dir": str(self.paths.output_dir / folder),
                "cache_dir": str(self.config["paths"]["cache_dir"]),
            },
            "pruning": {
                "keep_fraction": 1.0,
                "budget": "epochs",
                "compute_fraction": None,
                "epochs_scale": 1.0,
                "subset_path": None,
                "mode": "static",
            },
            "probe": {"mode": "separate", "skip_when_keeping_all": True},
        }
        if logging_only(self.callbacks):
            overrides["callbacks"] = dict.fromkeys(logging_only(self.callbacks))  # null: left out
        if epochs is not None:
            overrides["max_epochs"] = int(epochs)
            if self._source.trainer.get("max_epochs") is not None:
                overrides["trainer"] = {"max_epochs": None}
        return RunPlan.from_config(OmegaConf.merge(self._source, overrides))

    def probe_seed(self, k: int) -> "RunPlan":
        """The plan of probe ``k`` of ``probe.seeds``: seed ``seed + k``, one probe (its cache key is that of a
        single-seed run with that seed)."""
        return RunPlan.from_config(OmegaConf.merge(self._source, {"seed": self.seed + k, "probe": {"seeds": 1}}))

    # Building ---------------------------------------------------------------------------------------
    @classmethod
    def from_config(cls, cfg: DictConfig) -> "RunPlan":
        """Checks the composed config and resolves it into a plan.

        Raises:
            ValueError: a key the schema does not have, a value out of range, or settings that cannot be
                honoured together — each message names the key and what would be accepted.
        """
        check_known_keys(cfg)  # a `+key=value` the schema does not have would be silently ignored
        loggers = read_loggers(cfg)
        task = cfg.get("task", "train")
        if task not in TASKS:
            raise ValueError(f"`task` can be {' or '.join(TASKS)}, got {task!r}")
        max_epochs = full_training_epochs(cfg)
        seed = count(cfg.seed, "seed", minimum=0)
        probe = read_probe(cfg)
        pruning = read_pruning(cfg, probe)
        if pruning.subset_path and probe.mode == "in_run":
            # the subset file chose: no probe runs here, so the (default) in-run probe has nothing to apply to
            probe = replace(probe, mode="separate")
        selector = None
        if task == "select":
            probe, selector = _selector_probe(cfg, probe, pruning)
        probe = with_label_issue(probe, pruning)  # the detector reads the probe's scoring pass
        label_noise = read_label_noise(cfg)
        budget = read_budget(cfg, probe, pruning, max_epochs)
        check_in_run(probe, pruning, max_epochs)
        with keys_under("pruning"):  # e.g. DynamicPruning's own `prune_ratio` check
            pruning.mode.check(pruning, budget)
        if selection(probe, pruning) in (BY_SCORES, IN_RUN):  # the strategy will select: its options must work
            check_strategy_options(pruning)
        return cls(
            config=OmegaConf.to_container(cfg, resolve=True),
            data=container(cfg.data),
            model=container(cfg.model),
            trainer=container(cfg.trainer),
            loggers=loggers,
            paths=read_paths(cfg),
            seed=seed,
            max_epochs=max_epochs,
            resume=bool(cfg.get("resume", True)),
            ckpt_path=existing_file(cfg.get("ckpt_path"), "ckpt_path", "a checkpoint of the full training to resume"),
            baseline=bool(cfg.get("baseline")),
            probe=probe,
            pruning=pruning,
            budget=budget,
            selection=selection(probe, pruning),
            label_noise=label_noise,
            test_metric=TestMetric.read(cfg.get("test_metric", "test/acc"), cfg.get("test_metric_mode", "max")),
            callbacks=read_callbacks(cfg, logged=bool(loggers)),  # each built once now: a bad one fails here
            task=task,
            selector=selector,
            _source=copy.deepcopy(cfg),  # the comparison and probe-seed plans are derived from it
        )


def _selector_probe(cfg: DictConfig, probe: ProbePlan, pruning: PruningPlan) -> tuple[ProbePlan, str]:
    """``task=select``: the probe that chooses, and who it is. The in-run probe becomes a separate probe of the
    main model for ``probe.epochs`` epochs — the same computation as the first epochs of an in-run training,
    without the rest.

    Raises:
        ValueError: settings under which nothing would be chosen (a subset file, keep_fraction 1, dynamic mode).
    """
    if pruning.subset_path:
        raise ValueError(
            f"`task=select` chooses a subset, so `pruning.subset_path={pruning.subset_path}` cannot apply: drop it, "
            "or train on that subset with task=train"
        )
    for key in ("baseline", "ckpt_path"):
        if cfg.get(key):
            raise ValueError(
                f"`task=select` trains no model to compare or resume, so `{key}={cfg.get(key)}` cannot "
                f"apply: drop it, or use task=train"
            )
    if not pruning.mode.selects_subset:
        raise ValueError(
            f"`task=select` chooses a static subset; `pruning.mode={pruning.mode.name}` selects none: use "
            "pruning.mode=static"
        )
    if pruning.keep_fraction == 1.0:
        raise ValueError(
            "`task=select` with `pruning.keep_fraction=1.0` would keep everything; give a fraction in (0, 1)"
        )
    if probe.scores_path:
        return probe, "imported"
    if not needs_scores(pruning.strategy) and pruning.mislabelled is None:
        return probe, "none"
    if probe.mode != "in_run":
        return probe, "separate"
    epochs = count(
        probe.epochs, "probe.epochs", what="the selector's training epochs (in-run: the model's first epochs)"
    )
    model = container(cfg.model)
    settings = {**probe.settings, "mode": "separate", "model": model, "epochs": epochs}
    return replace(probe, mode="separate", model=model, epochs=epochs, settings=settings), "in_run"


def validate_config(cfg: DictConfig) -> None:
    """Fails before any training when the settings cannot work or would be ignored (see :meth:`RunPlan.from_config`)."""
    RunPlan.from_config(cfg)
