"""Overhead: what recording difficulty costs a probe run, measured side by side in one process.

Epoch time: the same ``Trainer`` epoch three ways, interleaved, median over repetitions:
``plain`` (a plain DataLoader over the dataset, no datadiet), ``datamodule`` (through
:class:`~datadiet.PruningDataModule`, which carries the original indices) and ``callback`` (the data
module plus :class:`~datadiet.DifficultyCallback` recording el2n, forgetting, margin and aum). The
headline ratio is ``callback / plain`` (the whole cost of adopting datadiet).

Scoring pass: the callback's end-of-probe eval-mode pass over the training set (el2n + margin) against
``trainer.predict`` over the same examples with the same batch size, on the same fitted trainer.

    python -m benchmarks.overhead                    # CPU, MNIST-1D, MLP probe
    python -m benchmarks.overhead --model cnn1d
    python -m benchmarks.overhead --device cuda      # ResNet-18 on random 32x32 tensors, bf16 AMP
    python -m benchmarks.overhead --dynamic-pruning 0.5   # also DynamicPruning's own share of its epochs
    python -m benchmarks.overhead --model lm --dynamic-pruning 0.5   # a byte-level causal LM (logits B x T x 256)
"""

from __future__ import annotations

import time
from typing import Any, Optional

import lightning.pytorch as pl
from torch.utils.data import DataLoader

from benchmarks._setups import add_fit_options, describe, fit_settings, make_datamodule, make_model, precision
from benchmarks._timing import (
    EpochTimer,
    base_parser,
    interleave,
    median,
    print_figures,
    quiet_trainer,
    results_dir,
    synchronize,
    timed,
    verdict,
    write_csv,
)
from benchmarks.scale import available_scores
from datadiet import DifficultyCallback, DynamicPruning


class _Stopwatch:
    """A stopwatch around a callback's per-step hooks, its forward hook and its epoch-end hook (mix in first).

    Their sum over an epoch, divided by that epoch's time, is the callback's own share of the epoch,
    measured inside one fit: unlike the ratio of two fits, no other process's noise enters it.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.hook_seconds = 0.0
        self.step_hook_seconds = 0.0  # the per-step part: batch start and end, forward hook

    def _timed(self, hook: Any, *args: Any, per_step: bool = True) -> Any:
        synchronize()
        start = time.perf_counter()
        result = hook(*args)
        synchronize()
        seconds = time.perf_counter() - start
        self.hook_seconds += seconds
        if per_step:
            self.step_hook_seconds += seconds
        return result

    def on_train_batch_start(self, *args: Any) -> None:
        self._timed(super().on_train_batch_start, *args)

    def on_train_batch_end(self, *args: Any) -> None:
        self._timed(super().on_train_batch_end, *args)

    def on_train_epoch_end(self, *args: Any) -> None:
        self._timed(super().on_train_epoch_end, *args, per_step=False)

    def _capture_output(self, *args: Any) -> None:
        self._timed(super()._capture_output, *args)


class _HookTimed(_Stopwatch, DifficultyCallback):
    """The DifficultyCallback with the stopwatch."""


class _DynamicTimed(_Stopwatch, DynamicPruning):
    """DynamicPruning with the stopwatch, also around its epoch start.

    The gradient hook's one multiply runs inside backward and is not in the sum.
    """

    def on_train_epoch_start(self, *args: Any) -> None:
        self._timed(super().on_train_epoch_start, *args, per_step=False)

    def _enter_forward(self, *args: Any) -> None:
        self._timed(super()._enter_forward, *args)


class _WithDatamodule:
    """The fitted trainer, seen with the data module attached (``trainer.predict(dataloaders=...)`` detaches it)."""

    def __init__(self, trainer: pl.Trainer, datamodule: Any) -> None:
        self._trainer, self.datamodule = trainer, datamodule

    def __getattr__(self, name: str) -> Any:
        return getattr(self._trainer, name)


def main(argv: Optional[list[str]] = None) -> dict[str, Any]:
    parser = base_parser(__doc__.splitlines()[0])
    add_fit_options(parser)
    parser.add_argument(
        "--dynamic-pruning",
        type=float,
        default=None,
        metavar="R",
        help="also fit with DynamicPruning(prune_ratio=R, anneal_fraction=0) and report its hooks' in-fit share",
    )
    args = parser.parse_args(argv)
    num_examples, batch_size = fit_settings(args)
    cuda = args.device == "cuda"
    names, note = available_scores()

    dm = make_datamodule(args.model, num_examples, batch_size, pin_memory=cuda)
    plain_loader = DataLoader(dm.train_dataset, batch_size=batch_size, shuffle=True, pin_memory=cuda)
    last: dict[str, Any] = {}
    hook_shares: list[float] = []  # the callback's own seconds / the fit's epoch seconds (timed epochs)
    dynamic_shares: list[float] = []  # the same for DynamicPruning
    dynamic_step_shares: list[float] = []  # its per-step hooks alone

    def fit(variant: str) -> tuple[float, float]:
        pl.seed_everything(0, verbose=False)
        model = make_model(args.model, dm)
        timer = EpochTimer()
        callbacks = [timer]
        if variant == "callback":
            callbacks = [_HookTimed(scores=names), timer]
        if variant == "dynamic":
            callbacks = [_DynamicTimed(prune_ratio=args.dynamic_pruning, anneal_fraction=0.0), timer]
        trainer = quiet_trainer(args.device, args.epochs, callbacks=callbacks, precision=precision(args))
        if variant == "plain":
            trainer.fit(model, train_dataloaders=plain_loader)
        else:
            trainer.fit(model, datamodule=dm)
        if variant == "callback":
            last.update(trainer=trainer, model=model, callback=callbacks[0])
            hook_shares.append(callbacks[0].hook_seconds / (sum(timer.epoch_seconds) + timer.first_epoch))
        if variant == "dynamic":
            fit_seconds = sum(timer.epoch_seconds) + timer.first_epoch
            dynamic_shares.append(callbacks[0].hook_seconds / fit_seconds)
            dynamic_step_shares.append(callbacks[0].step_hook_seconds / fit_seconds)
        return timer.median_epoch, timer.median_epoch_cpu

    variants = ("plain", "datamodule", "callback")
    extra = ("dynamic",) if args.dynamic_pruning is not None else ()
    measured = interleave({v: (lambda v=v: fit(v)) for v in variants + extra}, args.repeats)
    epochs = {v: [wall for wall, _ in measured[v]] for v in variants}
    cpu_epochs = {v: [cpu for _, cpu in measured[v]] for v in variants}

    trainer, model, callback = last["trainer"], last["model"], last["callback"]
    eval_scores = [score for score in callback.scores.values() if score.phase == "eval"]
    attached = _WithDatamodule(trainer, dm)
    predict_loader = DataLoader(dm.train_dataset, batch_size=dm.eval_batch_size, shuffle=False, pin_memory=cuda)
    passes = interleave(
        {
            "predict": lambda: timed(lambda: trainer.predict(model, dataloaders=predict_loader)),
            "scoring": lambda: timed(lambda: callback._scoring_pass(attached, model, eval_scores)),
        },
        max(args.repeats, 3) * 2,
    )

    target_epoch = 1.02 if cuda else 1.05
    predict, scoring = median(passes["predict"]), median(passes["scoring"])
    setup, tag = describe(args, num_examples, batch_size)
    setup += f", scores {'+'.join(names)}"
    rows, figures = [], []
    # Wall time always; on CPU also the process's CPU time, which a busy shared machine disturbs less.
    for clock, times in [("wall", epochs)] + ([] if cuda else [("CPU", cpu_epochs)]):
        plain, with_dm, with_cb = (median(times[v]) for v in variants)
        # the same ratio round by round (the fits of a round ran back to back): cancels slow drifts too
        paired = median(c / p for c, p in zip(times["callback"], times["plain"]))
        rows += [
            dict(setup=setup, clock=clock, figure="epoch seconds plain", value=plain),
            dict(setup=setup, clock=clock, figure="epoch seconds datamodule", value=with_dm),
            dict(setup=setup, clock=clock, figure="epoch seconds datamodule+callback", value=with_cb),
            dict(setup=setup, clock=clock, figure="epoch ratio callback/plain", value=with_cb / plain),
            dict(setup=setup, clock=clock, figure="epoch ratio callback/plain, median of rounds", value=paired),
            dict(setup=setup, clock=clock, figure="epoch ratio callback/datamodule", value=with_cb / with_dm),
        ]
        figures += [
            (f"epoch {clock} s, plain DataLoader", f"{plain:.4f}", ""),
            (f"epoch {clock} s, PruningDataModule", f"{with_dm:.4f}", ""),
            (f"epoch {clock} s, PruningDataModule + callback", f"{with_cb:.4f}", ""),
            (f"{clock} ratio callback / plain", f"{with_cb / plain:.3f}", verdict(with_cb / plain, target_epoch)),
            ("  the same, median of per-round ratios", f"{paired:.3f}", verdict(paired, target_epoch)),
            (f"{clock} ratio callback / datamodule", f"{with_cb / with_dm:.3f}", ""),
        ]
    hook_share = median(hook_shares[1:])  # the warm-up round's fit left out
    rows += [
        dict(setup=setup, clock="wall", figure="callback's own time / epoch time, in-fit", value=hook_share),
        dict(setup=setup, clock="wall", figure="scoring pass seconds", value=scoring),
        dict(setup=setup, clock="wall", figure="predict pass seconds", value=predict),
        dict(setup=setup, clock="wall", figure="scoring/predict ratio", value=scoring / predict),
    ]
    figures += [
        (
            "callback's own hooks, share of the epoch (in-fit)",
            f"{100 * hook_share:.2f} %",
            verdict(1 + hook_share, target_epoch).replace("target", "as a ratio, target"),
        ),
        ("scoring pass s (el2n+margin)", f"{scoring:.4f}", ""),
        ("trainer.predict s, same data", f"{predict:.4f}", ""),
        ("scoring / predict", f"{scoring / predict:.3f}", verdict(scoring / predict, 1.10)),
    ]
    if dynamic_shares:
        dynamic_share = median(dynamic_shares[1:] or dynamic_shares)
        rows.append(
            dict(
                setup=setup,
                clock="wall",
                value=dynamic_share,
                figure=f"DynamicPruning(r={args.dynamic_pruning})'s own time / epoch time, in-fit",
            )
        )
        step_share = median(dynamic_step_shares[1:] or dynamic_step_shares)
        figures.append(
            (
                f"DynamicPruning r={args.dynamic_pruning}: per-step hooks, share of the epoch (in-fit)",
                f"{100 * step_share:.2f} %",
                verdict(1 + step_share, 1.02).replace("target", "as a ratio, target"),
            )
        )
        figures.append(
            (
                f"DynamicPruning r={args.dynamic_pruning}: all its hooks (+ epoch start/end), share",
                f"{100 * dynamic_share:.2f} %",
                "",
            )
        )
    out = results_dir(args)
    write_csv(out / f"overhead_{tag}.csv" if out else None, rows)
    if note:
        print(note)
    print_figures(
        f"overhead: {setup}; {args.epochs - 1} timed epochs per fit, median of {args.repeats} interleaved fits",
        figures,
    )
    return {(row["clock"], row["figure"]): row["value"] for row in rows}


if __name__ == "__main__":
    main()
