"""The data and model the Trainer benchmarks time: MNIST-1D + MLP/CNN1D (CPU default), ResNet-18 on
random 32x32 images with bf16 AMP (CUDA default; also runs on CPU, slowly), and a byte-level causal
language model (``lm``: TinyGPT on 64-byte windows of the Python standard library's source)."""

from __future__ import annotations

import argparse
import functools
from typing import Any

import torch
from torch.utils.data import TensorDataset

from datadiet import PruningDataModule
from datadiet.models import CNN1D, MLP, CausalLM, Classifier


class BenchClassifier(Classifier):
    """The app's Classifier plus a ``predict_step`` returning logits (the plain pass we compare with)."""

    def predict_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        return self(batch[0])


class BenchLM(CausalLM):
    """The app's CausalLM plus a ``predict_step`` returning logits."""

    def predict_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        return self(batch[0])


def make_datamodule(model: str, num_examples: int, batch_size: int, pin_memory: bool = False) -> PruningDataModule:
    """MNIST-1D for the 1-D networks, random 32x32 RGB tensors standing in for CIFAR-10 for ResNet-18,
    64-byte windows of the standard library's source for the language model."""
    if model == "lm":
        from datadiet.data.sources import python_source_datamodule

        return python_source_datamodule(
            context=64,
            num_train=num_examples,
            num_test=64,
            batch_size=batch_size,
            eval_batch_size=2 * batch_size,
            pin_memory=pin_memory,
        )
    if model == "resnet18":
        generator = torch.Generator().manual_seed(0)
        x = torch.randn(num_examples, 3, 32, 32, generator=generator)
        y = torch.randint(0, 10, (num_examples,), generator=generator)
        dm = PruningDataModule(
            TensorDataset(x, y),
            batch_size=batch_size,
            eval_batch_size=2 * batch_size,
            pin_memory=pin_memory,
            name="random32",
        )
        dm.input_shape, dm.num_classes = (3, 32, 32), 10
        return dm
    from datadiet.data.sources import mnist1d_datamodule

    num_samples = max(5000, int(num_examples / 0.72) + 10)  # 80 % train, 10 % of that validation
    num_samples += -num_samples % 10
    return mnist1d_datamodule(num_samples=num_samples, num_train=num_examples, batch_size=batch_size)


def make_model(model: str, dm: PruningDataModule) -> BenchClassifier:
    if model == "lm":
        from datadiet.models import TinyGPT

        return BenchLM(functools.partial(TinyGPT, width=48, depth=2), dm.input_shape, dm.num_classes, lr=3e-3)
    if model == "resnet18":
        from torchvision.models import resnet18

        net = resnet18(num_classes=dm.num_classes).to(memory_format=torch.channels_last)
        return BenchClassifier(net, dm.input_shape, dm.num_classes, optimizer="sgd", lr=0.1)
    factory = functools.partial(MLP) if model == "mlp" else functools.partial(CNN1D)
    return BenchClassifier(factory, dm.input_shape, dm.num_classes)


def add_fit_options(parser: argparse.ArgumentParser) -> None:
    """The options of the benchmarks that time ``Trainer`` epochs (``overhead``, ``pruned_speed``)."""
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument(
        "--model",
        choices=("mlp", "cnn1d", "resnet18", "lm"),
        default=None,
        help="default mlp on CPU, resnet18 (bf16 AMP) on CUDA; lm: a byte-level causal LM",
    )
    parser.add_argument(
        "--num-examples", type=int, default=None, help="default 18000 (CPU), 50000 (CUDA), 4000 windows (lm)"
    )
    parser.add_argument("--batch-size", type=int, default=None, help="default 128 (CPU), 256 (CUDA), 64 (lm)")
    parser.add_argument("--epochs", type=int, default=4, help="epochs per fit (the first is not timed)")
    parser.add_argument("--repeats", type=int, default=7, help="interleaved rounds (one fit of every side each)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")


def fit_settings(args: argparse.Namespace) -> tuple[int, int]:
    """Applies ``--quick``, ``--threads`` and the per-device defaults; returns ``(num_examples, batch_size)``."""
    cuda = args.device == "cuda"
    args.model = args.model or ("resnet18" if cuda else "mlp")
    if args.quick:
        args.num_examples, args.epochs, args.repeats = {"resnet18": 64, "lm": 128}.get(args.model, 600), 2, 1
    torch.set_num_threads(args.threads)
    if args.model == "lm":
        return args.num_examples or 4000, args.batch_size or 64
    return args.num_examples or (50_000 if cuda else 18_000), args.batch_size or (256 if cuda else 128)


def precision(args: argparse.Namespace) -> str:
    """bf16 AMP for ResNet-18 (as users train it), full precision for the small MNIST-1D networks."""
    return "bf16-mixed" if args.model == "resnet18" else "32-true"


def describe(args: argparse.Namespace, num_examples: int, batch_size: int) -> tuple[str, str]:
    """The setup line printed above the figures, and the tag in the CSV's name."""
    data = {"resnet18": "ResNet-18 bf16 AMP on random 32x32", "lm": "byte-level TinyGPT LM on Python source"}.get(
        args.model, f"MNIST-1D {args.model}"
    )
    return f"{args.device}, {data}, N={num_examples:,}, batch {batch_size}", f"{args.device}_{args.model}"
