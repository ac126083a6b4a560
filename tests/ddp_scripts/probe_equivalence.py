"""Runs small probes (and one pruned training) on W processes and saves what every rank saw.

Run as a script, never imported by pytest's process when W > 1: Lightning's DDP launcher re-executes
``sys.argv`` for rank 1, which must be this script, not pytest. ``tests/test_ddp.py`` runs it with
``--devices 2`` (gloo, CPU) and compares with ``run_all(out, devices=1)`` in-process.

Scenarios (all in float64 so that "identical" can be checked to ~1e-12):

- ``frozen``: lr = 0, N odd, several batches: every statistic must equal the 1-process one even
  though DDP pads one example twice into each epoch and into the scoring pass.
- ``frozen_drop_last``: the same with ``drop_last=True`` and one full batch per process.
- ``trained``: full-batch SGD, N even: identical trajectories, so forgetting counts and EL2N match.
- ``pruned``: prune ``trained``'s table to an odd number of examples and train on it, recording the
  original indices each rank processed; rank 1 first selects a *different* subset on purpose, which
  the data module must replace by rank 0's when the Trainer starts.
- ``in_run``: ``trained`` with :class:`PruneDuringFit` after 2 of 3 epochs: one kept subset on every rank.
- ``sequences``: a frozen language model (logits ``(B, T, V)``), sequences of 3–8 tokens padded to the
  longest of each batch with ``-100`` labels, so that per-token state grows from batch to batch and the
  processes' longest sequences differ.
"""

from __future__ import annotations

import argparse
import math
import os
from pathlib import Path
from typing import Callable, Iterable

import lightning.pytorch as pl
import numpy as np
import torch
from torch import nn
from torch.utils.data import TensorDataset

from datadiet import DifficultyCallback, PruneDuringFit, PruningDataModule
from datadiet.models import Classifier
from datadiet.scores import get_score, list_scores

NUM_FEATURES, NUM_CLASSES = 6, 3
_NEED_OPTIONS = {"rho_loss", "prototype_distance"}
SCENARIOS = {
    # name: (num_examples, lr, epochs, batch per process or "full", drop_last)
    "sequences": (51, 0.0, 2, 8, False),
    "frozen": (51, 0.0, 2, 8, False),
    "frozen_drop_last": (51, 0.0, 2, "full", True),
    "trained": (42, 0.5, 3, "full", False),
}


def make_data(num_examples: int, seed: int = 0) -> TensorDataset:
    generator = torch.Generator().manual_seed(seed)
    y = torch.randint(NUM_CLASSES, (num_examples,), generator=generator)
    means = torch.randn(NUM_CLASSES, NUM_FEATURES, generator=generator)
    x = means[y] + 1.5 * torch.randn(num_examples, NUM_FEATURES, generator=generator)
    return TensorDataset(x.double(), y)


def make_model(lr: float, seed: int = 0) -> Classifier:
    torch.manual_seed(seed)
    net = nn.Sequential(nn.Linear(NUM_FEATURES, 16), nn.Tanh(), nn.Linear(16, NUM_CLASSES)).double()
    return Classifier(net, input_shape=[NUM_FEATURES], num_classes=NUM_CLASSES, optimizer="sgd", lr=lr, momentum=0.0)


class TokenLM(pl.LightningModule):
    """A float64 bigram language model trained with the token-mean cross-entropy."""

    def __init__(self, lr: float, vocab: int = 5, seed: int = 0) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.net = nn.Sequential(nn.Embedding(vocab, 8), nn.Tanh(), nn.Linear(8, vocab)).double()
        self.lr = lr

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.net(tokens)

    def training_step(self, batch, batch_idx):
        x, y = batch
        return nn.functional.cross_entropy(self(x).flatten(0, 1), y.flatten(), ignore_index=-100)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=self.lr)


def make_token_data(num_examples: int, seed: int = 0) -> list[tuple[torch.Tensor, torch.Tensor]]:
    generator = torch.Generator().manual_seed(seed)
    items = []
    for length in torch.randint(3, 9, (num_examples,), generator=generator).tolist():
        tokens = torch.randint(5, (length + 1,), generator=generator)
        items.append((tokens[:-1], tokens[1:]))
    return items


def pad_to_longest(items: list) -> tuple[torch.Tensor, torch.Tensor]:
    """Pads a batch to its longest sequence: inputs with 0, labels with -100 (as Hugging Face collators do)."""
    length = max(len(x) for x, _ in items)
    x = torch.stack([nn.functional.pad(x, (0, length - len(x))) for x, _ in items])
    y = torch.stack([nn.functional.pad(y, (0, length - len(y)), value=-100) for _, y in items])
    return x, y


def make_trainer(devices: int, epochs: int, callbacks: list) -> pl.Trainer:
    return pl.Trainer(
        accelerator="cpu",
        devices=devices,
        strategy="ddp" if devices > 1 else "auto",
        max_epochs=epochs,
        callbacks=callbacks,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        deterministic=True,
    )


class RecordIndices(pl.Callback):
    """Records the original indices of every training batch this process handled, per epoch."""

    def __init__(self) -> None:
        self.seen: list[list[int]] = []

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.seen.append([])

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self.seen[-1].extend(trainer.datamodule.batch_original_index.tolist())


def probe(name: str, devices: int, scores: list[str]):
    num_examples, lr, epochs, batch, drop_last = SCENARIOS[name]
    batch_size = math.ceil(num_examples / devices) if batch == "full" else batch
    if name == "sequences":
        dm = PruningDataModule(
            make_token_data(num_examples), batch_size=batch_size, eval_batch_size=7, collate_fn=pad_to_longest
        )
        model = TokenLM(lr)
        scores = [s for s in scores if s != "label_issue"]  # flags examples, not tokens: refused for sequences
    else:
        dm = PruningDataModule(make_data(num_examples), batch_size=batch_size, eval_batch_size=7, drop_last=drop_last)
        model = make_model(lr)
    callback = DifficultyCallback(scores=scores)
    trainer = make_trainer(devices, epochs, [callback])
    trainer.fit(model, datamodule=dm)
    table = callback.score_table
    arrays = {f"{name}/score/{s}": table[s] for s in table.names}
    arrays.update({f"{name}/raw/{s}": table.raw(s) for s in table.names})
    arrays[f"{name}/weights"] = torch.cat([p.detach().flatten() for p in model.parameters()]).numpy()
    arrays[f"{name}/epochs_recorded"] = np.array(callback.epochs_recorded)
    return dm, table, arrays, trainer.global_rank


def all_scores() -> list[str]:
    """Every registered score that needs nothing beyond logits and labels (no holdout model, no k-means)."""
    return [name for name in list_scores() if name not in _NEED_OPTIONS and not getattr(get_score(name), "needs", None)]


def run_all(out: str | os.PathLike, devices: int) -> None:
    out = Path(out)
    scores = all_scores()
    arrays: dict[str, np.ndarray] = {"scores": np.array(scores)}
    for name in SCENARIOS:
        dm, table, scenario_arrays, rank = probe(name, devices, scores)
        arrays.update(scenario_arrays)

    # Pruned training on the "trained" probe's table (identical on every rank after the merge).
    kept = dm.prune(table, score="el2n", keep_fraction=0.5, strategy="hard")
    if rank == 1:  # a rank that decided differently must still train on rank 0's subset
        dm.prune(table, score="el2n", keep_fraction=0.5, strategy="random", seed=123)
    arrays["pruned/kept_before_fit"] = dm.kept_indices.copy()
    arrays["pruned/kept_rank0_rule"] = kept
    recorder = RecordIndices()
    dm.batch_size = 4
    trainer = make_trainer(devices, 2, [recorder])
    trainer.fit(make_model(0.1, seed=1), datamodule=dm)
    arrays["pruned/kept_after_fit"] = dm.kept_indices.copy()
    for epoch, seen in enumerate(recorder.seen):
        arrays[f"pruned/seen_epoch{epoch}"] = np.array(seen, dtype=np.int64)

    # In-run pruning (PruneDuringFit) of the "trained" scenario after 2 of 3 full-batch epochs.
    num_examples, lr, _, _, _ = SCENARIOS["trained"]
    dm = PruningDataModule(make_data(num_examples), batch_size=math.ceil(num_examples / devices), eval_batch_size=7)
    recorder, in_run = RecordIndices(), PruneDuringFit(after_epochs=2, keep_fraction=0.5, mislabelled=None)
    make_trainer(devices, 3, [recorder, in_run]).fit(make_model(lr), datamodule=dm)
    arrays["in_run/kept"] = in_run.kept_indices
    arrays["in_run/el2n"] = in_run.score_table["el2n"]
    arrays["in_run/scored_examples"] = np.array(in_run.scored_examples)
    arrays["in_run/seen_epoch2"] = np.array(recorder.seen[2], dtype=np.int64)
    # mislabelled="auto" with any flag counting as noise: the decision comes from the merged table, so it is
    # the same on every rank; 7 epochs pay for the extra one (k' = (2.5 - 1 - 1/3) / 4 = 7/24)
    dm = PruningDataModule(make_data(num_examples), batch_size=math.ceil(num_examples / devices), eval_batch_size=7)
    from datadiet.callbacks import noisy_labels

    auto = PruneDuringFit(after_epochs=2, keep_fraction=0.5, mislabelled="auto", noise_threshold=0.0)
    guard = noisy_labels.GUARD_MIN_EXAMPLES_PER_CLASS, noisy_labels.GUARD_MAX_UNRESOLVED_NOISE
    # this tiny set would be kept whole by auto's regime guard (too few examples; after 2 epochs on 42 examples
    # confident learning flags far more than the detector)
    noisy_labels.GUARD_MIN_EXAMPLES_PER_CLASS, noisy_labels.GUARD_MAX_UNRESOLVED_NOISE = 0, 1.0
    try:  # (the 1-process run is in the test's own process: restored after)
        make_trainer(devices, 7, [auto]).fit(make_model(lr), datamodule=dm)
    finally:
        noisy_labels.GUARD_MIN_EXAMPLES_PER_CLASS, noisy_labels.GUARD_MAX_UNRESOLVED_NOISE = guard
    arrays["in_run_auto/kept"] = auto.kept_indices
    arrays["in_run_auto/flagged"] = auto.label_issues.flagged
    arrays["in_run_auto/decision"] = np.array(
        [auto.noise_decision.estimate, auto.noise_decision.keep_fraction, auto.pruned_after_epoch, auto.scored_examples]
    )
    out.mkdir(parents=True, exist_ok=True)
    np.savez(out / f"rank{trainer.global_rank}_of{devices}.npz", **arrays)


def run_scenarios(
    run: Callable[[str, int], tuple[dict[str, np.ndarray], int]],
    names: Iterable[str],
    out: str | os.PathLike,
    devices: int,
) -> None:
    """Runs ``run(name, devices)`` for each scenario and saves the arrays to ``rank<r>_of<W>.npz``."""
    arrays: dict[str, np.ndarray] = {}
    for name in names:
        scenario_arrays, rank = run(name, devices)
        arrays.update(scenario_arrays)
    Path(out).mkdir(parents=True, exist_ok=True)
    np.savez(Path(out) / f"rank{rank}_of{devices}.npz", **arrays)


def main(run_all: Callable[[str, int], None], description: str) -> None:
    """The command line of an equivalence script: ``--out DIR --devices W``."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--out", required=True)
    parser.add_argument("--devices", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(1)
    run_all(args.out, args.devices)


if __name__ == "__main__":
    main(run_all, __doc__)
