"""Scale, memory: what the callbacks hold per example and their peak at the table build, the checkpoint and the
epoch boundary, beside a numpy program doing the same work.

Each measurement runs in a fresh process (``python -m benchmarks.scale --memory-child KIND``). The process first
builds its inputs (a dataset of N examples with int64 labels, synthetic logits and losses); its resident set
then is the baseline. Bytes are counted from there: the state (the callback's tensors and arrays, their
``nbytes``), and the peak of the resident set (``VmHWM``, reset through ``/proc/self/clear_refs`` before each
phase) during a phase. A phase's peak includes what is held through it. glibc's mmap threshold is pinned at
128 KiB (``MALLOC_MMAP_THRESHOLD_``) so that a freed array leaves the resident set instead of staying as heap.

- ``DifficultyCallback`` (default scores el2n, forgetting, margin; state = score tensors + the presented
  ledger): two training epochs and a scoring pass of synthetic logits fill it, then
  *table build* (``_build_table``: the ScoreTable it keeps), *checkpoint, streamed* (``torch.save`` of its
  ``state_dict`` to a file, as datadiet's ``AtomicCheckpointIO`` writes) and *checkpoint, in memory*
  (``torch.save`` into a ``BytesIO``, as Lightning's default ``TorchCheckpointIO`` does before writing).
- ``DynamicPruning`` (InfoBatch, r = 0.5; state = scores float64 + epoch losses float32): the boundary from
  ``on_train_epoch_end`` of epoch 1 through the decision for epoch 2 and a full pass of epoch 2's
  ``EpochSampler`` (the DataLoader's index stream). It then holds the state plus epoch 2's kept subset and
  weights.
- numpy baselines: the same state as plain numpy arrays; the same columns built, the same arrays saved with
  ``np.savez`` to a file, the same merge / InfoBatch decision / permutation of the kept examples, handed out a
  chunk at a time.

``boundary_timing`` times DynamicPruning's boundary against the numpy baseline's in one process, alternating,
the minimum of the rounds.
"""

from __future__ import annotations

import collections
import io
import json
import os
import subprocess
import sys
import tempfile
import time
from types import SimpleNamespace
from typing import Any

import numpy as np

KINDS = ("difficulty", "numpy_difficulty", "dynamic", "numpy_dynamic")
NUM_CLASSES = 10
_CHUNK = 1 << 16


def resident_bytes(field: str) -> int:
    """``VmRSS`` (now) or ``VmHWM`` (peak) of this process, from /proc, in bytes."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"{field} not in /proc/self/status")


def _reset_peak() -> None:
    with open("/proc/self/clear_refs", "w") as handle:
        handle.write("5")


class _Items:
    """A map-style dataset of N (x, y) items that stores nothing per example."""

    def __init__(self, size: int) -> None:
        self.size = size

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, index: int) -> tuple[Any, int]:
        import torch

        return torch.zeros(1), int(index) % NUM_CLASSES


def datamodule_of(num_examples: int, labels: np.ndarray) -> Any:
    """A PruningDataModule over N placeholder items whose labels are known (no pass over the items)."""
    from datadiet import PruningDataModule

    datamodule = PruningDataModule(_Items(num_examples), batch_size=1024)
    datamodule._labels, datamodule._labels_read = labels, True  # known labels, as a TensorDataset gives them
    datamodule._fingerprint = (id(datamodule.train_dataset), "scale-benchmark")
    return datamodule


# DifficultyCallback --------------------------------------------------------------------------------------
def difficulty_child(num_examples: int) -> dict[str, Any]:
    import torch

    from datadiet import DifficultyCallback

    rng = np.random.default_rng(0)
    labels = rng.integers(0, NUM_CLASSES, num_examples)
    datamodule = datamodule_of(num_examples, labels)
    trainer = SimpleNamespace(datamodule=datamodule, world_size=1, is_global_zero=True)
    generator = torch.Generator().manual_seed(0)
    batch = 65536
    pool = [(torch.randn(batch, NUM_CLASSES, generator=generator) * 3,
             torch.randint(0, NUM_CLASSES, (batch,), generator=generator)) for _ in range(4)]  # fmt: skip
    order = torch.randperm(num_examples, generator=generator)
    path = os.path.join(tempfile.mkdtemp(prefix="datadiet-scale-"), "state.ckpt")
    baseline = resident_bytes("VmRSS")

    callback = DifficultyCallback()
    callback.setup(trainer, None, "fit")
    scores = callback.scores.values()
    state = sum(getattr(s, name).nbytes for s in scores for name in s._state_names) + callback._ledger.presented.nbytes

    def present(index_of: Any, group: list) -> None:
        for number, begin in enumerate(range(0, num_examples, batch)):
            index = index_of(begin, min(begin + batch, num_examples))
            logits, target = pool[number % len(pool)]
            for score in group:
                score.update(index, logits[: len(index)], target[: len(index)])

    train = [s for s in scores if s.phase == "train"]
    for _ in range(2):
        present(lambda a, b: order[a:b], train)
        callback._ledger.mark_presented(order)
        for score in train:
            score.end_epoch()
    present(lambda a, b: torch.arange(a, b), [s for s in scores if s.phase == "eval"])

    _reset_peak()
    table = callback._build_table(trainer, None, 0)
    build_peak = resident_bytes("VmHWM") - baseline
    held_table = _table_bytes(table) - labels.nbytes  # its labels are the data module's
    callback._score_table = table

    _reset_peak()
    with open(path, "wb") as handle:
        torch.save({"callbacks": {callback.state_key: callback.state_dict()}}, handle)
    streamed_peak = resident_bytes("VmHWM") - baseline
    _reset_peak()
    buffer = io.BytesIO()
    torch.save({"callbacks": {callback.state_key: callback.state_dict()}}, buffer)
    in_memory_peak = resident_bytes("VmHWM") - baseline
    del buffer
    os.unlink(path)
    return {"state": state, "table": held_table, "build_peak": build_peak, "checkpoint_peak": streamed_peak,
            "checkpoint_in_memory_peak": in_memory_peak}  # fmt: skip


def _table_bytes(table: Any) -> int:
    if hasattr(table, "nbytes"):
        return int(table.nbytes)
    arrays = [*table._scores.values(), *table._raw.values()]  # an older ScoreTable
    return sum(a.nbytes for a in arrays) + (0 if table.labels is None else table.labels.nbytes)


def numpy_difficulty_child(num_examples: int) -> dict[str, Any]:
    rng = np.random.default_rng(0)
    path = os.path.join(tempfile.mkdtemp(prefix="datadiet-scale-"), "state.npz")
    baseline = resident_bytes("VmRSS")
    state = {
        "el2n": rng.random(num_examples, dtype=np.float32),
        "margin": rng.normal(size=num_examples).astype(np.float32),
        "epoch_value": np.full(num_examples, np.nan, dtype=np.float32),
        "previous_correct": rng.random(num_examples) < 0.5,
        "ever_correct": rng.random(num_examples) < 0.9,
        "forgetting_count": rng.integers(0, 5, num_examples, dtype=np.int32),
        "presentations": np.full(num_examples, 2, dtype=np.int32),
        "presented": np.ones(num_examples, dtype=np.uint8),
    }
    state_bytes = sum(values.nbytes for values in state.values())
    _reset_peak()
    columns = {"el2n": state["el2n"].copy(), "margin": -state["margin"], "forgetting_raw": np.empty(num_examples, np.float32),
               "forgetting": np.empty(num_examples, np.float32)}  # fmt: skip
    for start in range(0, num_examples, 1 << 18):
        part = slice(start, start + (1 << 18))
        count = state["forgetting_count"][part]
        columns["forgetting_raw"][part] = count
        columns["forgetting"][part] = np.where(state["ever_correct"][part], count, np.float32(np.inf))
    build_peak = resident_bytes("VmHWM") - baseline
    _reset_peak()
    with open(path, "wb") as handle:
        np.savez(handle, **state)
    checkpoint_peak = resident_bytes("VmHWM") - baseline
    os.unlink(path)
    return {"state": state_bytes, "table": sum(values.nbytes for values in columns.values()),
            "build_peak": build_peak, "checkpoint_peak": checkpoint_peak}  # fmt: skip


# DynamicPruning --------------------------------------------------------------------------------------------
class DynamicRun:
    """DynamicPruning driven through its hooks at N examples, with synthetic losses; ``boundary()`` ends the
    current epoch and streams the next one's sampler."""

    def __init__(self, num_examples: int, losses: np.ndarray) -> None:
        import torch

        from datadiet import DynamicPruning

        self.torch, self.losses = torch, torch.from_numpy(losses)
        self.datamodule = datamodule_of(num_examples, np.zeros(0, dtype=np.int64))
        self.pruning = DynamicPruning(prune_ratio=0.5, anneal_fraction=0.0, stretch_step_schedules=False)
        self.trainer = SimpleNamespace(datamodule=self.datamodule, max_epochs=1000, world_size=1, current_epoch=0,
                                       callbacks=[self.pruning], lr_scheduler_configs=[])  # fmt: skip
        self.datamodule.trainer = self.trainer
        self.module = SimpleNamespace(device=torch.device("cpu"), log=lambda *args, **kwargs: None)
        self.pruning.setup(self.trainer, self.module, "fit")
        self.pruning._losses.values = torch.full((num_examples,), float("nan"))
        self._train_epoch()

    @property
    def state(self) -> int:
        return self.pruning._scores.nbytes + self.pruning._losses.values.nbytes

    @property
    def held(self) -> int:
        _, subset, weights = self.pruning._decide(self.trainer.current_epoch)
        return self.state + sum(a.nbytes for a in (subset, weights) if a is not None)

    def _train_epoch(self) -> None:
        from datadiet.data.epoch_sampler import EpochSampler

        epoch = self.trainer.current_epoch
        _, subset, _ = self.pruning._decide(epoch)
        sampler = EpochSampler(self.datamodule._current_train_set(), self.datamodule._epoch_positions, lambda: epoch,
                               seed=0)  # fmt: skip
        collections.deque(iter(sampler), maxlen=0)  # the DataLoader's index stream, consumed
        presented = self.torch.arange(len(self.losses)) if subset is None else self.torch.from_numpy(subset)
        for start in range(0, len(presented), 1 << 20):
            index = presented[start : start + (1 << 20)]
            self.pruning._losses.values[index] = self.losses[index]

    def boundary(self) -> None:
        self.pruning.on_train_epoch_end(self.trainer, self.module)
        self.trainer.current_epoch += 1
        self._train_epoch()


class NumpyDynamicRun:
    """The same epochs in plain numpy: float64 scores, float32 epoch losses, InfoBatch, a permutation."""

    def __init__(self, num_examples: int, losses: np.ndarray) -> None:
        self.losses = losses
        self.scores = np.full(num_examples, np.nan)
        self.epoch_loss = np.full(num_examples, np.nan, dtype=np.float32)
        self.epoch, self.subset, self.weights = 0, None, None
        self._train_epoch()

    @property
    def state(self) -> int:
        return self.scores.nbytes + self.epoch_loss.nbytes

    def _train_epoch(self) -> None:
        rng = np.random.default_rng([0, self.epoch])
        seen = ~np.isnan(self.scores)
        self.subset = self.weights = None
        if seen.any():
            below = np.flatnonzero(self.scores < self.scores[seen].mean())
            keep = np.ones(len(self.scores), dtype=bool)
            keep[rng.choice(below, size=len(below) - len(below) // 2, replace=False)] = False
            self.weights = np.ones(len(self.scores), dtype=np.float32)
            self.weights[below[keep[below]]] = 2.0
            self.subset = np.flatnonzero(keep)
        del seen
        size = len(self.scores) if self.subset is None else len(self.subset)
        order = rng.permutation(size).astype(np.int32)
        for start in range(0, size, _CHUNK):  # handed out a chunk at a time, as the sampler does
            part = order[start : start + _CHUNK]
            _ = part if self.subset is None else self.subset[part]
        presented = slice(None) if self.subset is None else self.subset
        self.epoch_loss[presented] = self.losses[presented]

    def boundary(self) -> None:
        np.copyto(self.scores, self.epoch_loss, where=~np.isnan(self.epoch_loss))
        self.epoch_loss.fill(np.nan)
        self.epoch += 1
        self._train_epoch()


def dynamic_child(num_examples: int, kind: str) -> dict[str, Any]:
    losses = np.random.default_rng(1).exponential(size=num_examples).astype(np.float32)
    baseline = resident_bytes("VmRSS")
    run = DynamicRun(num_examples, losses) if kind == "dynamic" else NumpyDynamicRun(num_examples, losses)
    run.boundary()  # epoch 0 → 1: the first pruned epoch
    _reset_peak()
    run.boundary()  # epoch 1 → 2: measured (the previous epoch's subset is alive while the next one is made)
    peak = resident_bytes("VmHWM") - baseline
    held = run.held if kind == "dynamic" else run.state + run.subset.nbytes + run.weights.nbytes
    return {"state": run.state, "held": held, "boundary_peak": peak}


def boundary_timing(num_examples: int, rounds: int) -> dict[str, float]:
    """Seconds of one epoch boundary, DynamicPruning's vs the numpy baseline's, alternating, min of rounds."""
    losses = np.random.default_rng(1).exponential(size=num_examples).astype(np.float32)
    runs = {"datadiet": DynamicRun(num_examples, losses), "numpy": NumpyDynamicRun(num_examples, losses)}
    times: dict[str, list[float]] = {name: [] for name in runs}
    for round_index in range(rounds + 1):  # the first round warms up
        names = list(runs) if round_index % 2 == 0 else list(runs)[::-1]
        for name in names:
            start = time.perf_counter()
            runs[name].boundary()
            if round_index:
                times[name].append(time.perf_counter() - start)
    return {"datadiet_s": min(times["datadiet"]), "numpy_s": min(times["numpy"])}


# Orchestration ---------------------------------------------------------------------------------------------
def child(kind: str, num_examples: int) -> dict[str, Any]:
    """One measurement, after a run at 1,000 examples has loaded every module and warmed the allocator
    (``kind="all"``: each kind in turn, in this one process)."""
    if kind == "all":
        return {each: child(each, num_examples) for each in KINDS}
    measure = {"difficulty": difficulty_child, "numpy_difficulty": numpy_difficulty_child}.get(kind)
    if measure is None:
        dynamic_child(1000, kind)
        return dynamic_child(num_examples, kind)
    measure(1000)
    return measure(num_examples)


def run_child(kind: str, num_examples: int, scale: bool = True) -> dict[str, Any]:
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    command = [sys.executable, "-m", "benchmarks.scale", "--memory-child", kind, "--num-examples", str(num_examples)]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")])),
           # glibc raises its mmap threshold up to 32 MB after large frees, and then keeps freed heap pages
           # resident: pinned, freed arrays leave the resident set, so a phase's peak is what is live in it
           "MALLOC_MMAP_THRESHOLD_": "131072"}  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, cwd=root, env=env, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{done.stderr[-3000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    return {key: value / num_examples for key, value in result.items()} if scale else result


def measure(num_examples: int, rounds: int, one_process: bool = False) -> dict[str, Any]:
    """Every kind in a fresh process each (``one_process``: all in one, a smoke test that measures nothing)."""
    if one_process:
        per_example = {kind: {key: value / num_examples for key, value in row.items()}
                       for kind, row in run_child("all", num_examples, scale=False).items()}  # fmt: skip
    else:
        per_example = {kind: run_child(kind, num_examples) for kind in KINDS}
    print("  memory children done", flush=True)
    return {"num_examples": num_examples, "per_example": per_example, "timing": boundary_timing(num_examples, rounds)}


def figures(result: dict[str, Any], target: float) -> list[tuple[str, str, str]]:
    from benchmarks._timing import verdict

    per = result["per_example"]
    ours, numpy_ = per["difficulty"], per["numpy_difficulty"]
    held = ours["state"] + ours["table"]
    out = [
        ("DifficultyCallback state B/example", f"{ours['state']:.1f}", f"numpy {numpy_['state']:.1f}"),
        (
            "DifficultyCallback score table B/example",
            f"{ours['table']:.1f}",
            f"numpy {numpy_['table']:.1f} (labels are the data module's)",
        ),
    ]
    for phase, key in (("table build", "build_peak"), ("checkpoint, streamed", "checkpoint_peak")):
        out.append((f"DifficultyCallback peak B/example, {phase}", f"{ours[key]:.1f}",
                    f"{ours[key] / ours['state']:.2f}x state, {ours[key] / held:.2f}x state+table; numpy {numpy_[key]:.1f}; "
                    + verdict(ours[key] / held, target)))  # fmt: skip
    out.append(("DifficultyCallback peak B/example, checkpoint in memory", f"{ours['checkpoint_in_memory_peak']:.1f}",
                f"{ours['checkpoint_in_memory_peak'] / held:.2f}x state+table: Lightning's default TorchCheckpointIO "
                "serialises the whole checkpoint into memory before writing it"))  # fmt: skip
    dyn, numpy_dyn = per["dynamic"], per["numpy_dynamic"]
    out += [
        ("DynamicPruning state B/example", f"{dyn['state']:.1f}", f"held through an epoch {dyn['held']:.1f} (+ kept subset, weights); numpy {numpy_dyn['state']:.1f} / {numpy_dyn['held']:.1f}"),
        ("DynamicPruning peak B/example, epoch boundary", f"{dyn['boundary_peak']:.1f}",
         f"{dyn['boundary_peak'] / dyn['state']:.2f}x state, {dyn['boundary_peak'] / dyn['held']:.2f}x held; numpy {numpy_dyn['boundary_peak']:.1f}; "
         + verdict(dyn["boundary_peak"] / dyn["held"], target)),
    ]  # fmt: skip
    timing = result["timing"]
    ratio = timing["datadiet_s"] / timing["numpy_s"]
    out.append(
        (
            "DynamicPruning epoch boundary / numpy",
            f"{ratio:.2f}",
            f"{timing['datadiet_s']:.2f} s vs {timing['numpy_s']:.2f} s",
        )
    )
    return out
