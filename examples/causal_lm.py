"""A byte-level language model with datadiet: prune by perplexity during the fit, or skip well-learned windows.

The corpus is the Python standard library's own source (the ``.py`` files of the interpreter running this
script — nothing is downloaded), cut into 64-byte windows; held-out windows come from other files. The
LightningModule is written the way language models are (logits ``(B, T, 256)``, labels ``(B, T)``, the
token-mean cross-entropy): datadiet needs no adapter for it, and every example's score is the mean over its
tokens — its loss is its log perplexity.

The same model and epochs three ways, then held-out bits per byte and the compute each one spent
(training presentations at 3 forwards, the scoring pass at 1, relative to all data):

1. all data;
2. ``PruneDuringFit``: after 4 epochs the model scores every window by its own perplexity and the fit
   continues on the 70 % with the highest (``strategy="hard"``; ``"easy"`` keeps the lowest);
3. ``DynamicPruning``: each epoch skips 30 % of the windows whose last loss was below the mean, and
   re-weights the rest (InfoBatch).

    python examples/causal_lm.py             # a few minutes on 2 CPU cores
    python examples/causal_lm.py --quick     # seconds: checks it runs

Whether pruning pays here is measured on the compute frontier (all data for fewer epochs as the line to
beat, 3 seeds): ``python -m benchmarks.frontier --regimes e``. It barely does: dynamic pruning with r = 0.3
is 0.015 bits per byte better than all data at 0.88x the compute (about one seed's spread); perplexity
pruning, hard or easy, is below the line (the README's *Performance*, regime e).
"""

import argparse
import math

import lightning.pytorch as L
import torch
import torch.nn.functional as F

from datadiet import DynamicPruning, PruneDuringFit
from datadiet.compute import ComputeAccount, forward_flops_per_example, full_data_flops
from datadiet.data.sources import python_source_datamodule
from datadiet.models import TinyGPT


class LitByteLM(L.LightningModule):
    def __init__(self, context: int = 64, lr: float = 1e-2):
        super().__init__()
        self.net = TinyGPT((context,), num_classes=256, width=48, depth=2, heads=4)
        self.lr = lr

    def forward(self, x):
        return self.net(x)  # (B, T, 256)

    def training_step(self, batch, batch_idx):
        x, y = batch  # unchanged: the data module strips the original indices before the batch gets here
        logits = self(x)
        loss = F.cross_entropy(logits.flatten(0, 1), y.flatten(), ignore_index=-100)
        self.log("train/loss", loss)
        return loss

    def test_step(self, batch, batch_idx):
        x, y = batch
        loss = F.cross_entropy(self(x).flatten(0, 1), y.flatten(), ignore_index=-100)
        self.log("test/bits_per_byte", loss / math.log(2))

    def configure_optimizers(self):
        optimizer = torch.optim.AdamW(self.parameters(), lr=self.lr)
        return [optimizer], [torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=self.trainer.max_epochs)]


def run(name: str, epochs: int, num_train: int, callbacks=(), seed: int = 0) -> dict:
    L.seed_everything(seed, verbose=False)
    dm = python_source_datamodule(
        context=64, num_train=num_train, num_test=1000 if num_train >= 1000 else 64, batch_size=64
    )
    model = LitByteLM()
    trainer = L.Trainer(
        max_epochs=epochs,
        callbacks=list(callbacks),
        logger=False,
        enable_checkpointing=False,
        enable_model_summary=False,
        enable_progress_bar=False,
    )
    trainer.fit(model, datamodule=dm)
    bits = trainer.test(model, datamodule=dm, verbose=False)[0]["test/bits_per_byte"]
    scored = sum(getattr(callback, "scored_examples", 0) for callback in callbacks)
    flops = forward_flops_per_example(model.net, dm.train_dataset.tensors[0][:8])
    account = ComputeAccount(
        flops_per_example=flops, train_presentations=dm.train_examples_served, in_run_scored=scored
    )
    return {
        "run": name,
        "bits per byte": bits,
        "compute": account.ratio_to(full_data_flops(dm.num_examples, epochs, flops)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes: checks the example runs")
    args = parser.parse_args()
    torch.set_num_threads(1)  # a tiny model: one thread is faster on a busy CPU
    epochs, after, num_train = (3, 2, 256) if args.quick else (16, 4, 2000)
    results = [
        run("all data", epochs, num_train),
        run(
            f"PruneDuringFit: 70 % highest perplexity after {after} epochs",
            epochs,
            num_train,
            [PruneDuringFit(after_epochs=after, score="loss", keep_fraction=0.7, strategy="hard")],
        ),
        run("DynamicPruning r=0.3", epochs, num_train, [DynamicPruning(prune_ratio=0.3, anneal_fraction=0.125)]),
    ]
    for result in results:
        print(
            f"{result['run']:<55} held-out bits per byte {result['bits per byte']:.3f}   compute {result['compute']:.2f}"
        )


if __name__ == "__main__":
    main()
