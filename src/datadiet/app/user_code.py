"""What the app needs from your own LightningModule and data, checked before anything trains.

- ``data._target_`` builds a :class:`~datadiet.PruningDataModule` (the built-in sources; or
  ``datadiet.PruningDataModule`` itself, whose ``train_dataset`` / ``val_dataset`` / ``test_dataset`` can be
  dataset factories) or any ``LightningDataModule`` (wrapped with ``PruningDataModule.from_datamodule``).
- ``model._target_`` is any ``LightningModule``. The app passes it ``input_shape`` and ``num_classes`` (from
  the data module) only when its constructor takes them and the config does not set them — as the
  built-in ``Classifier`` does.
- The model logs the test metric the app reports, ``test_metric`` (``test/acc`` by default), in its
  ``test_step``; ``test_metric_mode`` says whether larger (``max``) or smaller (``min``) is better. One test
  batch of the untrained model shows it does, before the probe or the training start.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Mapping

import lightning.pytorch as pl
from hydra.utils import get_object, instantiate
from lightning.pytorch.utilities.seed import isolate_rng

from datadiet.data import PruningDataModule

if TYPE_CHECKING:
    from datadiet.app.plan import RunPlan

#: The built-in models' test metric: accuracy, a fraction, compared in percentage points.
ACCURACY = "test/acc"
MODES = ("max", "min")
_MODEL_ARGUMENTS = ("input_shape", "num_classes")


@dataclass(frozen=True)
class TestMetric:
    """``test_metric`` / ``test_metric_mode``: what the run reports and compares, and which way is better."""

    __test__ = False  # not a pytest test class

    name: str = ACCURACY
    mode: str = "max"

    @classmethod
    def read(cls, name: Any, mode: Any) -> "TestMetric":
        """Checks the two keys.

        Raises:
            ValueError: a name that is not a non-empty string, or a mode other than max / min.
        """
        if not isinstance(name, str) or not name.strip():
            raise ValueError(
                f"`test_metric` must name a metric your model logs in test_step (e.g. test/acc), got {name!r}"
            )
        if mode not in MODES:
            raise ValueError(f"`test_metric_mode` can be max (larger is better) or min, got {mode!r}")
        return cls(name, mode)

    @property
    def is_accuracy(self) -> bool:
        return self.name == ACCURACY

    def value(self, metrics: Mapping[str, Any]) -> float:
        """The metric among those ``trainer.test`` returned.

        Raises:
            ValueError: it was not logged (the message lists what was).
        """
        if self.name not in metrics:
            logged = ", ".join(sorted(metrics)) or "nothing"
            raise ValueError(
                f"the model's test_step logs {logged}, not `test_metric={self.name}`: log it with "
                f"`self.log({self.name!r}, value)` in test_step, or set test_metric= one of those (and "
                "test_metric_mode=min if smaller is better)"
            )
        return float(metrics[self.name])

    def better_by(self, value: float, other: float) -> float:
        """How much better ``value`` is than ``other`` (negative: worse); in points for accuracy."""
        difference = (value - other) * (1 if self.mode == "max" else -1)
        return 100.0 * difference if self.is_accuracy else difference

    def describe(self, difference: float) -> str:
        """A :meth:`better_by` difference in words: ``+0.5 pt`` for accuracy, else ``0.031 better in test/bpb``."""
        if self.is_accuracy:
            from datadiet.app.reference import signed

            return f"{signed(difference)} pt"
        return f"{abs(difference):.4g} {'better' if difference > 0 else 'worse'} in {self.name}"

    def objective(self, value: float) -> float:
        """What sweepers minimise: the test error ``1 − accuracy``, the metric (``min``) or its negation (``max``)."""
        if self.is_accuracy:
            return 1.0 - value
        return value if self.mode == "min" else -value


def make_datamodule(data_cfg: Mapping[str, Any]) -> PruningDataModule:
    """Instantiates ``data``: a :class:`PruningDataModule`, or a ``LightningDataModule`` it wraps.

    Raises:
        TypeError: ``data._target_`` built something else.
    """
    built = instantiate(data_cfg)
    if isinstance(built, PruningDataModule):
        return built
    if isinstance(built, pl.LightningDataModule):
        return PruningDataModule.from_datamodule(built)
    raise TypeError(
        f"`data._target_={data_cfg.get('_target_')}` built a {type(built).__name__}; the app needs a LightningDataModule "
        "(or a function returning one). For datasets, use `data=custom data._target_=datadiet.PruningDataModule` with "
        "`+data.train_dataset._target_=...` and `+data.test_dataset._target_=...` (factories of map-style datasets)"
    )


def model_arguments(model_cfg: Mapping[str, Any], datamodule: PruningDataModule) -> dict[str, Any]:
    """``input_shape`` / ``num_classes`` from the data module, for a model that takes them and is not given them.

    Raises:
        ValueError: the model takes them, the config does not set them, and the data module does not know them.
    """
    target = model_cfg.get("_target_")
    try:
        parameters = inspect.signature(get_object(target)).parameters if target else {}
    except (ImportError, AttributeError, ValueError, TypeError) as error:
        raise ValueError(f"`model._target_={target}` cannot be imported: {error}") from error
    wanted = [name for name in _MODEL_ARGUMENTS if name in parameters and name not in model_cfg]
    values = {"input_shape": datamodule.input_shape, "num_classes": datamodule.num_classes}
    missing = [name for name in wanted if values[name] is None]
    if missing:
        raise ValueError(
            f"the model {target} takes {' and '.join(missing)}, which the app reads from the data module, but "
            f"{datamodule.name!r} does not set them: add them to the data (`+data.input_shape=[...]`, "
            "`+data.num_classes=...` with datadiet.PruningDataModule, or `input_shape` / `num_classes` attributes on "
            f"your LightningDataModule), or to the model (`+model.{missing[0]}=...`)"
        )
    return {name: (list(values[name]) if name == "input_shape" else values[name]) for name in wanted}


def make_model(model_cfg: Mapping[str, Any], datamodule: PruningDataModule, **extra: Any) -> pl.LightningModule:
    """Instantiates ``model_cfg``, with the data module's input shape and classes where the model takes them,
    and those of the ``extra`` arguments it takes (e.g. the app's ``log_prefix`` for its probe's metrics)."""
    parameters = inspect.signature(get_object(model_cfg["_target_"])).parameters
    extra = {name: value for name, value in extra.items() if name in parameters}
    model = instantiate(model_cfg, **model_arguments(model_cfg, datamodule), **extra)
    if not isinstance(model, pl.LightningModule):
        raise TypeError(f"`{model_cfg.get('_target_')}` built a {type(model).__name__}, not a LightningModule")
    return model


def check_before_training(plan: "RunPlan", datamodule: PruningDataModule) -> None:
    """Builds the run's models and tests the main one on one batch: whatever the run will need from your code
    fails here, before the probe or the training start (with the random state left as it was).

    Raises:
        ValueError: a model that cannot be built for this data, or a test metric the model does not log.
        TypeError: a model that is not a LightningModule.
    """
    with isolate_rng():  # building models draws their initial weights: the run's own draws stay as they were
        if plan.probe_source == "probe":
            make_model(plan.probe.model, datamodule)
        model = make_model(plan.model, datamodule)
        trainer = instantiate(
            plan.trainer,
            devices=1,
            num_nodes=1,
            strategy="auto",
            logger=False,
            callbacks=[],
            limit_test_batches=1,
            enable_checkpointing=False,
            enable_progress_bar=False,
            enable_model_summary=False,
            default_root_dir=str(plan.paths.output_dir / "test_metric_check"),
        )
        try:
            metrics = trainer.test(model, datamodule=datamodule, verbose=False)
        except Exception as error:
            raise ValueError(
                f"testing the model on one batch before training failed ({type(error).__name__}: {error}); the app "
                f"tests the trained model and reports `test_metric={plan.test_metric.name}`: the data needs a test set "
                "and the model a test_step that logs it"
            ) from error
    plan.test_metric.value(metrics[0] if metrics else {})
