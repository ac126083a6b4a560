"""The app's compute accounting: the pruned run's budget in epochs, its FLOPs against training on all data,
and the full-data reference its accuracy is compared with (``baseline=true`` or the reference cache)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf
from torch.utils.data import default_collate

from datadiet import __version__
from datadiet._io import atomic_write_json
from datadiet.compute import ComputeAccount, forward_flops_per_example, full_data_flops, scoring_pass_examples
from datadiet.fingerprint import config_fingerprint
from datadiet.scores import get_score
from datadiet.selection import num_to_keep

PROBE_MODES = ("separate", "in_run")
BUDGETS = ("epochs", "steps", "compute")
#: Trainer settings that change what is printed, not what is learned: left out of the reference key.
_DISPLAY_ONLY = ("enable_progress_bar", "enable_model_summary", "log_every_n_steps", "enable_checkpointing")


def validate_accounting(cfg: DictConfig) -> None:
    """Fails before any training on a bad ``probe.mode``, ``pruning.budget`` or ``pruning.compute_fraction``."""
    mode, budget = cfg.probe.get("mode", "separate"), cfg.pruning.get("budget", "epochs")
    if mode not in PROBE_MODES:
        raise ValueError(f"`probe.mode` can be {' or '.join(PROBE_MODES)}, got {mode!r}")
    if budget not in BUDGETS:
        raise ValueError(f"`pruning.budget` can be {', '.join(BUDGETS)}, got {budget!r}")
    fraction = cfg.pruning.get("compute_fraction")
    if budget == "compute":
        if fraction is None or isinstance(fraction, bool) or not math.isfinite(fraction) or fraction <= 0:
            raise ValueError(
                "`pruning.budget=compute` needs `pruning.compute_fraction`, the share of full-data FLOPs to spend "
                f"(a number > 0, e.g. 0.5), got {fraction!r}"
            )
    elif fraction is not None:
        raise ValueError(
            f"`pruning.compute_fraction={fraction}` only applies with `pruning.budget=compute` (got budget={budget}); "
            "drop it or set pruning.budget=compute"
        )
    scale = cfg.pruning.get("epochs_scale", 1.0)
    if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not math.isfinite(scale) or scale <= 0:
        raise ValueError(f"`pruning.epochs_scale` must be a number > 0 (e.g. 1.25), got {scale!r}")
    if scale != 1 and budget != "epochs":
        raise ValueError(
            f"`pruning.epochs_scale={scale}` only applies with `pruning.budget=epochs`: budget={budget} sets the "
            "epochs itself; drop epochs_scale or set pruning.budget=epochs"
        )
    epochs = scaled_epochs(cfg)
    if mode == "in_run" and scale != 1 and epochs <= int(cfg.probe.epochs):
        raise ValueError(
            f"`pruning.epochs_scale={scale}` trains {epochs} epochs, not more than the in-run probe's "
            f"`probe.epochs={cfg.probe.epochs}`; raise epochs_scale or lower probe.epochs"
        )
    if mode != "in_run":
        return
    conflicts = {
        "probe.scores_path": cfg.probe.get("scores_path"),
        "pruning.subset_path": cfg.pruning.get("subset_path"),
        "probe.seeds": cfg.probe.get("seeds", 1) if int(cfg.probe.get("seeds", 1) or 1) > 1 else None,
    }
    for key, value in conflicts.items():
        if value:
            raise ValueError(
                f"`probe.mode=in_run` scores with the model being trained, so `{key}={value}` cannot apply; "
                "use probe.mode=separate"
            )
    if cfg.pruning.score in ("rho_loss", "prototype_distance"):
        raise ValueError(
            f"`probe.mode=in_run` does not support `pruning.score={cfg.pruning.score}` (it needs models or "
            "k-means outside the run); use probe.mode=separate"
        )
    epochs = cfg.probe.epochs
    if isinstance(epochs, bool) or not isinstance(epochs, int) or not 1 <= epochs < cfg.max_epochs:
        raise ValueError(
            f"with `probe.mode=in_run`, `probe.epochs` is the number of epochs on all data before pruning: "
            f"an integer in [1, max_epochs={cfg.max_epochs}), got {epochs!r}"
        )


def measure_flops_per_example(model: torch.nn.Module, datamodule: Any) -> float:
    """Forward FLOPs per example of ``model`` on two real training inputs (the ``x`` of ``(x, y)`` items)."""
    dataset = datamodule.train_dataset
    collate = datamodule.collate_fn or default_collate
    batch = collate([dataset[i] for i in range(min(2, len(dataset)))])
    inputs = batch[0] if isinstance(batch, (list, tuple)) else batch
    parameter = next(model.parameters(), None)
    if parameter is not None and inputs.is_floating_point():
        inputs = inputs.to(parameter.dtype)
    return forward_flops_per_example(model, inputs)


def expected_kept(keep_fraction: float, num_examples: int, labels: Optional[np.ndarray], class_balanced: bool) -> int:
    """How many examples ``select`` will keep (per class when class-balanced)."""
    if not class_balanced or labels is None:
        return num_to_keep(num_examples, keep_fraction)
    _, counts = np.unique(labels, return_counts=True)
    return int(sum(num_to_keep(int(count), keep_fraction) for count in counts))


def train_epochs(
    cfg: DictConfig, num_examples: int, num_kept: int, flops_per_example: float, probe_flops: float = 0.0
) -> int:
    """The main training's epochs under ``pruning.budget``, against all data for ``max_epochs`` (E).

    - ``epochs``: E, or ``epochs_scale · E`` rounded (halves up, at least 1) with ``pruning.epochs_scale``.
    - ``steps``: the optimizer steps of full data: ``round(E / f)`` with f = kept / all; with
      ``probe.mode=in_run`` the first k = ``probe.epochs`` epochs are on all data: ``k + round((E - k) / f)``.
    - ``compute``: the largest number of epochs whose FLOPs (``probe_flops`` and, in-run, the first k
      full epochs and the scoring pass included) stay within ``compute_fraction`` × full-data FLOPs —
      rounded down, so the run never spends more than its budget.

    Raises:
        ValueError: a compute budget too small to train one epoch on the kept subset.
    """
    epochs, budget = int(cfg.max_epochs), cfg.pruning.get("budget", "epochs")
    in_run = cfg.probe.get("mode", "separate") == "in_run" and num_kept < num_examples
    before = int(cfg.probe.epochs) if in_run else 0
    fraction = num_kept / num_examples
    if budget == "epochs":
        return scaled_epochs(cfg)
    if budget == "steps":
        return before + max(1, round((epochs - before) / fraction))
    budget_flops = float(cfg.pruning.compute_fraction) * full_data_flops(num_examples, epochs, flops_per_example)
    spent = probe_flops
    if in_run:
        spent += full_data_flops(num_examples, before, flops_per_example) + in_run_scored(cfg, num_examples) * (
            flops_per_example
        )
    per_epoch = full_data_flops(num_kept, 1, flops_per_example)
    after = math.floor((budget_flops - spent) / per_epoch + 1e-9)
    if after < 1:
        raise ValueError(
            f"`pruning.compute_fraction={cfg.pruning.compute_fraction}` is spent before the pruned training: selection "
            f"costs {spent / full_data_flops(num_examples, epochs, flops_per_example):.2f}× full-data compute and one "
            f"epoch on {num_kept:,} examples {per_epoch / full_data_flops(num_examples, epochs, flops_per_example):.2f}×;"
            " raise compute_fraction or use a cheaper probe (probe=selector, probe.mode=in_run)"
        )
    return before + after


def scaled_epochs(cfg: DictConfig) -> int:
    """``pruning.epochs_scale · max_epochs`` rounded to the nearest (halves up), at least 1: the training epochs
    of ``budget=epochs``."""
    return max(1, math.floor(float(cfg.pruning.get("epochs_scale", 1.0)) * int(cfg.max_epochs) + 0.5 + 1e-9))


def in_run_scored(cfg: DictConfig, num_examples: int, world_size: int = 1) -> int:
    """Forward passes of the in-run scoring pass (0 for a training-phase score)."""
    if get_score(cfg.pruning.score).phase != "eval":
        return 0
    return scoring_pass_examples(num_examples, world_size)


# The full-data reference --------------------------------------------------------------------------
def reference_key(cfg: DictConfig, datamodule: Any) -> str:
    """Fingerprint of what a full-data run's accuracy depends on: data, model, trainer, max_epochs, seed."""
    trainer = OmegaConf.to_container(cfg.trainer, resolve=True)
    for name in (*_DISPLAY_ONLY, "max_epochs"):  # `trainer.max_epochs` is `max_epochs`, keyed below
        trainer.pop(name, None)
    return config_fingerprint(
        {
            "dataset": {"fingerprint": datamodule.fingerprint(), "num_examples": datamodule.num_examples},
            "data_config": OmegaConf.to_container(cfg.data, resolve=True),
            "model": OmegaConf.to_container(cfg.model, resolve=True),
            "trainer": trainer,
            "max_epochs": int(cfg.max_epochs),
            "seed": int(cfg.seed),
        }
    )


def _reference_path(cfg: DictConfig, key: str) -> Path:
    return Path(cfg.paths.cache_dir) / "references" / f"{key}.json"


def load_reference(cfg: DictConfig, key: str) -> Optional[dict[str, Any]]:
    """The recorded full-data run of this data/model/trainer/epochs/seed, or ``None``."""
    path = _reference_path(cfg, key)
    if not path.is_file():
        return None
    record = json.loads(path.read_text())
    return record if record.get("reference_key") == key else None


def save_reference(cfg: DictConfig, key: str, summary: dict[str, Any]) -> None:
    """Records a full-data run (keep_fraction 1, max_epochs epochs, no probe) for later comparisons."""
    record = {
        "reference_key": key,
        "test_accuracy": summary["test_accuracy"],
        "total_flops": summary["total_flops"],
        "max_epochs": int(cfg.max_epochs),
        "output_dir": summary["output_dir"],
        "datadiet_version": __version__,
    }
    atomic_write_json(_reference_path(cfg, key), record)


def is_reference_run(cfg: DictConfig, epochs: int, probe_flops: float) -> bool:
    """A run that trains on all data for ``max_epochs`` with no selection cost (and no dynamic pruning)."""
    return (
        float(cfg.pruning.keep_fraction) == 1.0
        and not cfg.pruning.get("subset_path")
        and epochs == int(cfg.max_epochs)
        and probe_flops == 0
        and cfg.pruning.get("mode", "static") in ("static", "none", None)
    )


def will_be_reference(cfg: DictConfig) -> bool:
    """Whether this config's run is itself the full-data reference (so ``baseline=true`` has nothing to add)."""
    return (
        float(cfg.pruning.keep_fraction) == 1.0
        and cfg.pruning.get("budget", "epochs") == "epochs"
        and float(cfg.pruning.get("epochs_scale", 1.0)) == 1.0
        and not cfg.pruning.get("subset_path")
        and bool(cfg.probe.skip_when_keeping_all)
        and cfg.pruning.get("mode", "static") in ("static", "none", None)
    )


def baseline_config(cfg: DictConfig, epochs: Optional[int] = None) -> DictConfig:
    """A comparison run of ``baseline=true``: the same config on all data, unlogged, for ``max_epochs`` (in
    ``<run dir>/baseline``) or, stopped early, for ``epochs`` (in ``<run dir>/early_stopped``) with its
    learning-rate schedule fitted to that length (the app's cosine runs over the run's own epochs)."""
    folder = "baseline" if epochs is None else "early_stopped"
    overrides: dict[str, Any] = {
        "baseline": False,
        "logger": None,
        "paths": {"output_dir": str(Path(cfg.paths.output_dir) / folder), "cache_dir": str(cfg.paths.cache_dir)},
        "pruning": {
            "keep_fraction": 1.0, "budget": "epochs", "compute_fraction": None, "epochs_scale": 1.0, "subset_path": None
        },
        "probe": {"mode": "separate", "skip_when_keeping_all": True},
    }
    if "mode" in cfg.pruning:
        overrides["pruning"]["mode"] = "static"
    if epochs is not None:
        overrides["max_epochs"] = int(epochs)
        if cfg.trainer.get("max_epochs") is not None:
            overrides["trainer"] = {"max_epochs": None}
    return OmegaConf.merge(cfg, overrides)


def early_stopped_epochs(compute_ratio: float, max_epochs: int) -> int:
    """The fewest full-data epochs that cost at least ``compute_ratio`` × ``max_epochs`` epochs (at least 1):
    the early-stopped run gets no less compute than the run it is compared with."""
    return max(1, math.ceil(compute_ratio * max_epochs - 1e-6))


def compare_early_stopped(summary: dict[str, Any], early: dict[str, Any], max_epochs: int) -> dict[str, Any]:
    """The summary's verdict against the early-stopped full-data run: did pruning pay at this compute?"""
    epochs = int(early["train_epochs"])
    difference = 100.0 * (summary["test_accuracy"] - early["test_accuracy"])
    early_ratio = epochs / max_epochs
    paid = difference > 0
    verdict = (
        f"pruning paid: {_signed(difference)} pt over all data for {epochs} epochs ({early_ratio:.2f}× compute)"
        if paid
        else f"pruning did not pay: all data for {epochs} epochs ({early_ratio:.2f}× compute) reaches "
        f"{early['test_accuracy']:.4f}, {_signed(difference)} pt for this run"
    )
    return {
        "early_stopped_epochs": epochs,
        "early_stopped_compute_ratio": early_ratio,
        "early_stopped_test_accuracy": float(early["test_accuracy"]),
        "accuracy_vs_early_stopped_pt": difference,
        "pruning_paid": paid,
        "vs_early_stopped": verdict,
    }


# The summary --------------------------------------------------------------------------------------
def compute_summary(
    account: ComputeAccount,
    cfg: DictConfig,
    num_examples: int,
    epochs: int,
    test_accuracy: float,
    reference: Optional[dict[str, Any]],
    is_reference: bool = False,
) -> dict[str, Any]:
    """The summary's compute entries: FLOPs per phase, ``compute_ratio`` (total FLOPs over those of training
    the same model on all data for ``max_epochs``) and the comparison with the full-data reference in words."""
    full = full_data_flops(num_examples, int(cfg.max_epochs), account.flops_per_example)
    ratio = account.ratio_to(full)
    entries: dict[str, Any] = {
        # dynamic pruning alone scores nothing before training: no probe of either kind
        "probe_mode": "none" if cfg.pruning.get("mode", "static") == "dynamic" else cfg.probe.get("mode", "separate"),
        "budget": cfg.pruning.get("budget", "epochs"),
        "epochs_scale": float(cfg.pruning.get("epochs_scale", 1.0)),
        "max_epochs": int(cfg.max_epochs),
        "train_epochs": int(epochs),
        "flops_per_example": account.flops_per_example,
        "probe_flops_per_example": account.probe_flops_per_example,
        "probe_presentations": account.probe_presentations,
        "probe_scored_examples": account.probe_scored + account.in_run_scored,
        "probe_flops": account.probe_flops,
        "train_flops": account.train_flops,
        "total_flops": account.total_flops,
        "full_data_flops": full,
        "compute_ratio": ratio,
        "reference_test_accuracy": None,
        "accuracy_vs_reference_pt": None,
    }
    if is_reference:
        entries["vs_full_data"] = "this run is the full-data reference (recorded for later runs)"
    elif reference is None:
        entries["vs_full_data"] = "no full-data reference: run with baseline=true"
    else:
        difference = 100.0 * (test_accuracy - float(reference["test_accuracy"]))
        entries["reference_test_accuracy"] = float(reference["test_accuracy"])
        entries["accuracy_vs_reference_pt"] = difference
        entries["vs_full_data"] = f"{_signed(difference)} pt at {ratio:.2f}× compute"
    return entries


def _signed(value: float) -> str:
    text = f"{value:+.1f}"
    return "±0.0" if text in ("+0.0", "-0.0") else text.replace("-", "−")
