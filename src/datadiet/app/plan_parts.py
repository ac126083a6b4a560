"""The parts of a :class:`~datadiet.app.plan.RunPlan`, each read and checked from its group of the composed
config: the probe, the pruning, the training budget, the loggers, and how the training set is chosen.

Every check raises a ``ValueError`` naming the key and what would be accepted, before anything trains or is
written.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Optional

import numpy as np
from omegaconf import DictConfig

from datadiet.app.budget import BUDGETS, Budget
from datadiet.app.config_checks import container, count, existing_file, keys_under
from datadiet.app.mislabelled import read_mislabelled
from datadiet.app.modes import PruningMode, pruning_mode
from datadiet.callbacks.noisy_labels import DEFAULT_NOISE_THRESHOLD, DEFAULT_NOISY_EXTRA_EPOCHS
from datadiet.data.label_noise import validate_label_noise
from datadiet.detection import DEFAULT_DETECTOR
from datadiet.scores import get_score
from datadiet.selection import STRATEGIES, select, validate_keep_fraction

PROBE_MODES = ("separate", "in_run")

#: :attr:`RunPlan.selection`: how the training set is chosen.
ALL_DATA = "all data"  # nothing selected before training (keep_fraction=1, or pruning.mode=dynamic)
SUBSET_FILE = "subset file"  # pruning.subset_path: an earlier run's foundation subset
IN_RUN = "in run"  # probe.mode=in_run: the main model scores itself after probe.epochs and prunes
BY_SCORES = "by scores"  # probe (or imported) scores, then the selection strategy

#: Stand-in scores the strategy's options are tried on (:func:`check_strategy_options`).
_STAND_IN_EXAMPLES = 200
#: Scores the in-run probe cannot compute (they need models or k-means outside the run).
_NOT_IN_RUN = ("rho_loss", "prototype_distance")


@dataclass(frozen=True)
class Paths:
    """``paths.*``: the run (or multirun job) directory, and the probe cache shared by a sweep's jobs."""

    output_dir: Path
    cache_dir: Optional[Path]


@dataclass(frozen=True)
class ProbePlan:
    """``probe.*``: how per-example difficulty is measured. ``settings`` is the whole node, resolved (the
    probe's provenance and cache key)."""

    mode: str
    epochs: int
    model: dict[str, Any]
    scores: tuple[str, ...]
    skip_when_keeping_all: bool
    seeds: int
    scores_path: Optional[str]
    score_options: dict[str, Any]
    feature_module: Optional[str]
    rho_loss: dict[str, Any]
    settings: dict[str, Any]


@dataclass(frozen=True)
class PruningPlan:
    """``pruning.*``: which examples the full model trains on. ``settings`` is the whole node, resolved (what
    a kept subset and a resumed training are checked against)."""

    score: str
    strategy: str
    keep_fraction: float
    class_balanced: bool
    seed: int
    options: dict[str, Any]
    subset_path: Optional[str]
    mode: PruningMode
    prune_ratio: float
    anneal_fraction: float
    settings: dict[str, Any]
    #: ``None`` (no mislabel detection), ``keep``, ``exclude`` or ``exclude_disagreeing``
    #: (see ``PruningDataModule.prune``).
    mislabelled: Optional[str] = None
    detector: str = DEFAULT_DETECTOR
    #: ``mislabelled=auto``: the noise estimate above which labels count as noisy, and the extra epochs then.
    noise_threshold: float = DEFAULT_NOISE_THRESHOLD
    noisy_extra_epochs: int = DEFAULT_NOISY_EXTRA_EPOCHS

    def strategy_options(self, num_examples: int) -> dict[str, Any]:
        """``options`` for the strategy; ``auto`` reads the whole training set's size (its regime, also per class)."""
        options = dict(self.options)
        if self.strategy == "auto":
            options.setdefault("num_examples", num_examples)
        return options


def full_training_epochs(cfg: DictConfig) -> int:
    """``max_epochs``; ``trainer.max_epochs`` (what Lightning + Hydra users type) sets it too, and both set to
    different values is ambiguous."""
    trainer_epochs = cfg.trainer.get("max_epochs")
    if trainer_epochs is not None and cfg.max_epochs != trainer_epochs:
        raise ValueError(
            f"`trainer.max_epochs={trainer_epochs}` and `max_epochs={cfg.max_epochs}` both set the full training's "
            "epochs: give one of them (the probe's epochs are `probe.epochs`)"
        )
    return count(cfg.max_epochs, "max_epochs", what="the full training's epochs")


def read_probe(cfg: DictConfig) -> ProbePlan:
    node = cfg.probe
    mode = node.get("mode", "separate")
    if mode not in PROBE_MODES:
        raise ValueError(f"`probe.mode` can be {' or '.join(PROBE_MODES)}, got {mode!r}")
    epochs = node.epochs
    if mode == "separate":  # the in-run probe's epochs are checked against max_epochs below
        epochs = count(epochs, "probe.epochs", what="the probe model's training epochs")
    scores = tuple(node.scores)
    for name in scores:
        get_score(name)
    seeds = count(node.get("seeds", 1), "probe.seeds", what="the number of probe seeds")
    rho_loss = container(node.rho_loss) if node.get("rho_loss") is not None else {}
    if "rho_loss" in scores:
        count(rho_loss.get("epochs"), "probe.rho_loss.epochs", what="the irreducible-loss model's training epochs")
    return ProbePlan(
        mode=mode,
        epochs=epochs,
        model=container(node.model),
        scores=scores,
        skip_when_keeping_all=bool(node.skip_when_keeping_all),
        seeds=seeds,
        scores_path=_scores_path(node.get("scores_path")),
        score_options=container(node.score_options) if node.get("score_options") else {},
        feature_module=node.get("feature_module"),
        rho_loss=rho_loss,
        settings=container(node),
    )


def _scores_path(path: Optional[str]) -> Optional[str]:
    """``probe.scores_path``: a score file, or a folder of score shards (a distributed scoring pass)."""
    if path and Path(path).is_dir():
        return path
    return existing_file(path, "probe.scores_path", "a score table or CSV to import, or a folder of score shards")


def read_pruning(cfg: DictConfig, probe: ProbePlan) -> PruningPlan:
    node = cfg.pruning
    with keys_under("pruning"):
        keep_fraction = validate_keep_fraction(node.keep_fraction)
    STRATEGIES.get(node.strategy)
    if node.score not in probe.scores and not probe.scores_path:
        raise ValueError(
            f"`pruning.score={node.score}` is not recorded by the probe; `probe.scores` has {list(probe.scores)}"
        )
    mislabelled, detector, threshold, extra_epochs = read_mislabelled(
        node, keep_fraction, probe.scores_path, probe.seeds
    )
    return PruningPlan(
        score=node.score,
        strategy=node.strategy,
        keep_fraction=keep_fraction,
        class_balanced=bool(node.class_balanced),
        seed=count(node.seed, "pruning.seed", minimum=0),
        options=container(node.options) if node.get("options") else {},
        subset_path=existing_file(node.get("subset_path"), "pruning.subset_path", "an earlier run's kept_indices.npz"),
        mode=pruning_mode(node.get("mode", "static")),
        prune_ratio=node.get("prune_ratio", 0.5),
        anneal_fraction=node.get("anneal_fraction", 0.125),
        settings=container(node),
        mislabelled=mislabelled,
        detector=detector,
        noise_threshold=threshold,
        noisy_extra_epochs=extra_epochs,
    )


def with_label_issue(probe: ProbePlan, pruning: PruningPlan) -> ProbePlan:
    """The probe plan recording the ``label_issue`` score too when ``pruning.mislabelled`` asks for the detector
    (in its settings as well, so scores cached without it are not reused)."""
    if pruning.mislabelled is not None and probe.seeds > 1:
        raise ValueError(
            f"`pruning.mislabelled={pruning.mislabelled}` flags examples from one probe's predictions; averaging "
            f"`probe.seeds={probe.seeds}` probes' scores has no flags to average: use probe.seeds=1"
        )
    if pruning.mislabelled is None or "label_issue" in probe.scores:
        return probe
    scores = (*probe.scores, "label_issue")
    options = dict(probe.score_options)
    options.setdefault("label_issue", {"detector": pruning.detector})
    return replace(
        probe,
        scores=scores,
        score_options=options,
        settings={**probe.settings, "scores": list(scores), "score_options": options},
    )


def read_label_noise(cfg: DictConfig) -> Optional[dict[str, Any]]:
    """``data.label_noise*``: the injected label noise the data source is asked for (``None``: none)."""
    rate = cfg.data.get("label_noise", 0.0)
    kind, seed = cfg.data.get("label_noise_kind", "symmetric"), cfg.data.get("label_noise_seed", 0)
    with keys_under("data"):
        validate_label_noise(rate, kind, seed)
    return {"rate": float(rate), "kind": kind, "seed": int(seed)} if rate > 0 else None


def check_strategy_options(pruning: PruningPlan) -> None:
    """Runs the strategy once on stand-in scores, so that options it refuses (``ccs``'s ``beta``, ``auto``'s data
    regime, an unknown option) fail now, not after the probe has trained."""
    stand_in = np.linspace(0.0, 1.0, _STAND_IN_EXAMPLES)
    labels = np.arange(_STAND_IN_EXAMPLES) % 2
    try:
        select(
            stand_in,
            pruning.keep_fraction,
            pruning.strategy,
            labels=labels,
            class_balanced=pruning.class_balanced,
            seed=pruning.seed,
            **pruning.strategy_options(_STAND_IN_EXAMPLES),
        )
    except (TypeError, ValueError) as error:
        raise ValueError(
            f"`pruning.strategy={pruning.strategy}` refuses `pruning.options={pruning.options}`: {error}"
        ) from None


def read_budget(cfg: DictConfig, probe: ProbePlan, pruning: PruningPlan, max_epochs: int) -> Budget:
    kind, fraction = cfg.pruning.get("budget", "epochs"), cfg.pruning.get("compute_fraction")
    if kind not in BUDGETS:
        raise ValueError(f"`pruning.budget` can be {', '.join(BUDGETS)}, got {kind!r}")
    if kind == "compute":
        if fraction is None or isinstance(fraction, bool) or not math.isfinite(fraction) or fraction <= 0:
            raise ValueError(
                "`pruning.budget=compute` needs `pruning.compute_fraction`, the share of full-data FLOPs to spend "
                f"(a number > 0, e.g. 0.5), got {fraction!r}"
            )
    elif fraction is not None:
        raise ValueError(
            f"`pruning.compute_fraction={fraction}` only applies with `pruning.budget=compute` (got budget={kind}); "
            "drop it or set pruning.budget=compute"
        )
    scale = cfg.pruning.get("epochs_scale", 1.0)
    if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not math.isfinite(scale) or scale <= 0:
        raise ValueError(f"`pruning.epochs_scale` must be a number > 0 (e.g. 1.25), got {scale!r}")
    if scale != 1 and kind != "epochs":
        raise ValueError(
            f"`pruning.epochs_scale={scale}` only applies with `pruning.budget=epochs`: budget={kind} sets the "
            "epochs itself; drop epochs_scale or set pruning.budget=epochs"
        )
    in_run = probe.mode == "in_run"
    budget = Budget(
        kind=kind,
        max_epochs=max_epochs,
        epochs_scale=float(scale),
        compute_fraction=None if fraction is None else float(fraction),
        in_run_epochs=int(probe.epochs) if in_run else 0,
        in_run_scoring=in_run and (get_score(pruning.score).phase == "eval" or pruning.mislabelled is not None),
    )
    if in_run and scale != 1 and budget.scaled_epochs <= int(probe.epochs):
        raise ValueError(
            f"`pruning.epochs_scale={scale}` trains {budget.scaled_epochs} epochs, not more than the in-run probe's "
            f"`probe.epochs={probe.epochs}`; raise epochs_scale or lower probe.epochs"
        )
    return budget


def check_in_run(probe: ProbePlan, pruning: PruningPlan, max_epochs: int) -> None:
    """``probe.mode=in_run`` scores with the model being trained: settings that need another model refused."""
    if probe.mode != "in_run":
        return
    conflicts = {
        "probe.scores_path": probe.scores_path,
        "pruning.subset_path": pruning.subset_path,
        "probe.seeds": probe.seeds if probe.seeds > 1 else None,
    }
    for key, value in conflicts.items():
        if value:
            raise ValueError(
                f"`probe.mode=in_run` scores with the model being trained, so `{key}={value}` cannot apply; "
                "use probe.mode=separate"
            )
    if pruning.score in _NOT_IN_RUN:
        raise ValueError(
            f"`probe.mode=in_run` does not support `pruning.score={pruning.score}` (it needs models or "
            "k-means outside the run); use probe.mode=separate"
        )
    epochs = probe.epochs
    if isinstance(epochs, bool) or not isinstance(epochs, int) or not 1 <= epochs < max_epochs:
        raise ValueError(
            f"with `probe.mode=in_run`, `probe.epochs` is the number of epochs on all data before pruning: "
            f"an integer in [1, max_epochs={max_epochs}), got {epochs!r}"
        )


def selection(probe: ProbePlan, pruning: PruningPlan) -> str:
    if not pruning.mode.selects_subset:
        return ALL_DATA
    if pruning.subset_path:
        return SUBSET_FILE
    if pruning.keep_fraction == 1.0 and probe.skip_when_keeping_all:
        return ALL_DATA
    return IN_RUN if probe.mode == "in_run" else BY_SCORES


def read_paths(cfg: DictConfig) -> Paths:
    cache_dir = cfg.paths.get("cache_dir")
    return Paths(Path(cfg.paths.output_dir), Path(cache_dir) if cache_dir else None)


def read_loggers(cfg: DictConfig) -> dict[str, dict[str, Any]]:
    """The ``logger`` group's entries (none when the group is empty); each must be a ``_target_`` config."""
    loggers = {}
    for name, logger_cfg in (cfg.get("logger") or {}).items():
        if isinstance(logger_cfg, DictConfig) and "_target_" in logger_cfg:
            loggers[str(name)] = container(logger_cfg)
        elif logger_cfg is not None:
            raise ValueError(f"`logger.{name}` has no `_target_`: it is not a logger (`logger=csv|wandb|none`)")
    return loggers
