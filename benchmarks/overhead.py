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
"""

from __future__ import annotations

from typing import Any, Optional

import lightning.pytorch as pl
from torch.utils.data import DataLoader

from benchmarks._setups import add_fit_options, fit_settings, make_datamodule, make_model
from benchmarks._timing import (
    EpochTimer, base_parser, interleave, median, print_figures, quiet_trainer, results_dir, timed, verdict, write_csv,
)
from benchmarks.scale import available_scores
from datadiet import DifficultyCallback


class _WithDatamodule:
    """The fitted trainer, seen with the data module attached (``trainer.predict(dataloaders=...)`` detaches it)."""

    def __init__(self, trainer: pl.Trainer, datamodule: Any) -> None:
        self._trainer, self.datamodule = trainer, datamodule

    def __getattr__(self, name: str) -> Any:
        return getattr(self._trainer, name)


def main(argv: Optional[list[str]] = None) -> dict[str, Any]:
    parser = base_parser(__doc__.splitlines()[0])
    add_fit_options(parser)
    args = parser.parse_args(argv)
    num_examples, batch_size = fit_settings(args)
    cuda = args.device == "cuda"
    names, note = available_scores()

    dm = make_datamodule(args.device, num_examples, batch_size)
    plain_loader = DataLoader(dm.train_dataset, batch_size=batch_size, shuffle=True, pin_memory=cuda)
    last: dict[str, Any] = {}

    def fit(variant: str) -> float:
        pl.seed_everything(0, verbose=False)
        model = make_model(args.device, args.model, dm)
        timer = EpochTimer()
        callbacks = [timer]
        if variant == "callback":
            callbacks = [DifficultyCallback(scores=names), timer]
        trainer = quiet_trainer(args.device, args.epochs, callbacks=callbacks)
        if variant == "plain":
            trainer.fit(model, train_dataloaders=plain_loader)
        else:
            trainer.fit(model, datamodule=dm)
        if variant == "callback":
            last.update(trainer=trainer, model=model, callback=callbacks[0])
        return timer.median_epoch

    epochs = interleave({v: (lambda v=v: fit(v)) for v in ("plain", "datamodule", "callback")}, args.repeats)

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
    plain, with_dm, with_cb = (median(epochs[v]) for v in ("plain", "datamodule", "callback"))
    predict, scoring = median(passes["predict"]), median(passes["scoring"])
    setup = (f"{args.device}, {'ResNet-18 bf16 on random 32x32' if cuda else f'MNIST-1D {args.model}'}, "
             f"N={num_examples:,}, batch {batch_size}, scores {'+'.join(names)}")
    rows = [
        dict(setup=setup, figure="epoch seconds plain", value=plain),
        dict(setup=setup, figure="epoch seconds datamodule", value=with_dm),
        dict(setup=setup, figure="epoch seconds datamodule+callback", value=with_cb),
        dict(setup=setup, figure="epoch ratio callback/plain", value=with_cb / plain),
        dict(setup=setup, figure="epoch ratio callback/datamodule", value=with_cb / with_dm),
        dict(setup=setup, figure="scoring pass seconds", value=scoring),
        dict(setup=setup, figure="predict pass seconds", value=predict),
        dict(setup=setup, figure="scoring/predict ratio", value=scoring / predict),
    ]
    out = results_dir(args)
    write_csv(out / f"overhead_{args.device}_{'resnet18' if cuda else args.model}.csv" if out else None, rows)
    if note:
        print(note)
    print_figures(
        f"overhead: {setup}; {args.epochs - 1} timed epochs per fit, median of {args.repeats} interleaved fits",
        [
            ("epoch s, plain DataLoader", f"{plain:.4f}", ""),
            ("epoch s, PruningDataModule", f"{with_dm:.4f}", ""),
            ("epoch s, PruningDataModule + callback", f"{with_cb:.4f}", ""),
            ("epoch ratio callback / plain", f"{with_cb / plain:.3f}", verdict(with_cb / plain, target_epoch)),
            ("epoch ratio callback / datamodule", f"{with_cb / with_dm:.3f}", ""),
            ("scoring pass s (el2n+margin)", f"{scoring:.4f}", ""),
            ("trainer.predict s, same data", f"{predict:.4f}", ""),
            ("scoring / predict", f"{scoring / predict:.3f}", verdict(scoring / predict, 1.10)),
        ],
    )
    return {row["figure"]: row["value"] for row in rows}


if __name__ == "__main__":
    main()
