"""Typed schemas of the app's config groups, registered in Hydra's ConfigStore.

A typo or a wrong type anywhere in a composed config (``pruning.keep_fracton=0.3``,
``trainer.devices=[a]``, ``data.num_samples=many``) fails at composition with OmegaConf's message,
which names the full key (``full_key: pruning.keep_fracton``) and the schema it is not in; a key added
with ``+`` that no schema has fails when the plan is built (:func:`datadiet.app.config_checks.check_known_keys`).

The fixed-shape groups (``probe``, ``pruning``, ``trainer``, ``paths``) are typed fields of
:class:`DataDietConfig`, the first entry of ``conf/config.yaml``'s defaults. Groups whose options
differ in shape (``data``, ``model``, ``logger``) name their schema in each option's own defaults list,
e.g. ``conf/data/mnist1d.yaml`` starts with ``defaults: [/datadiet_schema/data/mnist1d@_here_, _self_]``.
A new key in ``conf/`` therefore needs its field here (the error names the schema class to extend).
"""

from __future__ import annotations

import inspect
import typing
from dataclasses import dataclass, field, make_dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional

from hydra.core.config_store import ConfigStore
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import MISSING, SI, OmegaConf

from datadiet.callbacks.noisy_labels import DEFAULT_MISLABELLED, DEFAULT_NOISE_THRESHOLD, DEFAULT_NOISY_EXTRA_EPOCHS
from datadiet.detection import DEFAULT_DETECTOR
from datadiet.report.wandb_logging import sweep_name
from datadiet.report.wandb_mode import wandb_offline

SCHEMA_GROUP = "datadiet_schema"


# data ---------------------------------------------------------------------------------------------
@dataclass
class LoaderConfig:
    """:class:`~datadiet.PruningDataModule` loader arguments shared by every data source."""

    batch_size: int = 64
    eval_batch_size: Optional[int] = None
    num_workers: int = 0
    shuffle: bool = True
    drop_last: bool = False
    pin_memory: bool = False


@dataclass
class MNIST1DConfig(LoaderConfig):
    _target_: str = "datadiet.data.sources.mnist1d_datamodule"
    num_samples: int = 62500  # as conf/data/mnist1d.yaml: 45,000 training examples
    val_fraction: float = 0.1
    seed: int = 42
    cache_dir: Optional[str] = None
    num_train: Optional[int] = None
    label_noise: float = 0.0
    label_noise_kind: str = "symmetric"
    label_noise_seed: int = 0


@dataclass
class DigitsConfig(LoaderConfig):
    _target_: str = "datadiet.data.sources.digits_datamodule"
    test_fraction: float = 0.2
    val_fraction: float = 0.1
    seed: int = 0
    flatten: bool = True
    label_noise: float = 0.0
    label_noise_kind: str = "symmetric"
    label_noise_seed: int = 0


@dataclass
class FashionMNISTConfig(LoaderConfig):
    _target_: str = "datadiet.data.sources.fashion_mnist_datamodule"
    root: Optional[str] = None
    download: bool = True
    cache_dir: Optional[str] = None
    val_fraction: float = 0.1
    seed: int = 0
    num_train: Optional[int] = None
    flatten: bool = False
    label_noise: float = 0.0
    label_noise_kind: str = "symmetric"
    label_noise_seed: int = 0


@dataclass
class SyntheticConfig(LoaderConfig):
    _target_: str = "datadiet.data.sources.synthetic_datamodule"
    num_samples: int = 2000
    num_features: int = 20
    num_classes: int = 4
    separation: float = 3.0
    label_noise: float = 0.0
    label_noise_kind: str = "symmetric"
    label_noise_seed: int = 0
    test_fraction: float = 0.2
    val_fraction: float = 0.1
    seed: int = 0


@dataclass
class CIFARConfig(LoaderConfig):
    _target_: str = "datadiet.data.sources.vision.cifar10_datamodule"
    root: str = MISSING
    download: bool = False
    val_fraction: float = 0.1
    seed: int = 0
    augment: bool = True
    num_train: Optional[int] = None


@dataclass
class ImageFolderConfig(LoaderConfig):
    _target_: str = "datadiet.data.sources.vision.imagefolder_datamodule"
    root: str = MISSING
    test_root: Optional[str] = None
    image_size: int = 32
    test_fraction: float = 0.2
    val_fraction: float = 0.1
    seed: int = 0
    augment: bool = False
    num_train: Optional[int] = None


# model --------------------------------------------------------------------------------------------
@dataclass
class ClassifierConfig:
    """:class:`~datadiet.models.Classifier`; ``net`` is a ``_partial_`` network factory."""

    _target_: str = "datadiet.models.Classifier"
    net: Any = MISSING
    optimizer: str = "adam"
    lr: float = 1e-3
    weight_decay: float = 0.0
    momentum: float = 0.9
    cosine_schedule: bool = False
    schedule_interval: str = "epoch"


# probe and pruning --------------------------------------------------------------------------------
@dataclass
class RhoLossConfig:
    holdout_fraction: float = 0.5
    cross_fit: bool = True
    epochs: int = SI("${probe.epochs}")
    cache_dir: Optional[str] = None


@dataclass
class ProbeConfig:
    model: Any = MISSING
    mode: str = "separate"
    epochs: int = 5
    scores: List[str] = field(default_factory=lambda: ["el2n", "forgetting", "margin"])
    skip_when_keeping_all: bool = True
    seeds: int = 1
    scores_path: Optional[str] = None
    score_options: Dict[str, Any] = field(default_factory=dict)
    feature_module: Optional[str] = None
    rho_loss: RhoLossConfig = field(default_factory=RhoLossConfig)


@dataclass
class PruningConfig:
    score: str = "el2n"
    strategy: str = "hard"
    keep_fraction: float = 0.5
    class_balanced: bool = False
    seed: int = SI("${seed}")
    options: Dict[str, Any] = field(default_factory=dict)
    subset_path: Optional[str] = None
    budget: str = "epochs"
    compute_fraction: Optional[float] = None
    epochs_scale: float = 1.0
    mode: str = "static"
    prune_ratio: float = 0.5
    anneal_fraction: float = 0.125
    mislabelled: Optional[str] = DEFAULT_MISLABELLED  # one default for the app and PruneDuringFit
    detector: str = DEFAULT_DETECTOR
    noise_threshold: float = DEFAULT_NOISE_THRESHOLD
    noisy_extra_epochs: int = DEFAULT_NOISY_EXTRA_EPOCHS


# trainer ------------------------------------------------------------------------------------------
#: Set by the app per phase (probe / full training), so a value in ``trainer`` would be ignored.
#: (``trainer.max_epochs`` stays: it sets the full training's epochs, like ``max_epochs``.)
_SET_BY_APP = ("self", "callbacks", "logger", "default_root_dir")
_PLAIN = (bool, int, float, str)


def _schema_type(annotation: Any) -> Any:
    """A Trainer argument's annotation as a type OmegaConf can check: a plain type, Optional of one, or Any."""
    if annotation in _PLAIN:
        return annotation
    args = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
    if typing.get_origin(annotation) is typing.Union and len(args) == 1 and args[0] in _PLAIN:
        return Optional[args[0]]
    return Any


def _trainer_schema() -> type:
    """Every ``lightning.pytorch.Trainer`` argument (types where they are plain), so a typo names the key."""
    from lightning.pytorch import Trainer

    fields: list[tuple[str, Any, Any]] = [("_target_", str, "lightning.pytorch.Trainer")]
    for name, parameter in inspect.signature(Trainer.__init__).parameters.items():
        if name in _SET_BY_APP or parameter.kind in (parameter.VAR_KEYWORD, parameter.VAR_POSITIONAL):
            continue
        default = parameter.default if isinstance(parameter.default, (*_PLAIN, type(None))) else None
        fields.append((name, _schema_type(parameter.annotation), field(default=default)))
    return make_dataclass("TrainerConfig", fields)


TrainerConfig = _trainer_schema()


# logger and paths ---------------------------------------------------------------------------------
@dataclass
class CSVLoggerConfig:
    _target_: str = "lightning.pytorch.loggers.CSVLogger"
    save_dir: str = MISSING
    name: Optional[str] = "csv"
    version: Optional[str] = None
    prefix: str = ""
    flush_logs_every_n_steps: int = 100


@dataclass
class WandbLoggerConfig:
    _target_: str = "lightning.pytorch.loggers.WandbLogger"
    project: Optional[str] = "datadiet"
    entity: Optional[str] = None
    save_dir: str = MISSING
    name: Optional[str] = None
    group: Optional[str] = None
    job_type: Optional[str] = None
    tags: Optional[List[str]] = None
    notes: Optional[str] = None
    offline: bool = False
    log_model: Any = False
    prefix: str = ""


@dataclass
class PathsConfig:
    #: The run (or multirun job) directory.
    output_dir: str = MISSING
    #: Where probe scores are cached by fingerprint and shared between the jobs of a sweep.
    cache_dir: str = MISSING


@dataclass
class DataDietConfig:
    """The whole app config; ``data``, ``model`` and ``logger`` are typed by their options' own schemas;
    ``callbacks`` is free-form (each entry a ``_target_`` config, checked when the plan is built)."""

    data: Any = MISSING
    model: Any = MISSING
    probe: ProbeConfig = field(default_factory=ProbeConfig)
    pruning: PruningConfig = field(default_factory=PruningConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)  # type: ignore[valid-type]
    logger: Optional[Dict[str, Any]] = None
    #: Your own Lightning callbacks (``_target_`` entries) for the full training and the comparison runs.
    callbacks: Optional[Dict[str, Any]] = None
    paths: PathsConfig = field(default_factory=PathsConfig)
    seed: int = 0
    max_epochs: int = 30
    task_name: str = "datadiet"
    task: str = "train"
    resume: bool = True
    ckpt_path: Optional[str] = None
    baseline: bool = False
    test_metric: str = "test/acc"
    test_metric_mode: str = "max"


def _first_set(*values: Any) -> Any:
    """``${datadiet.first_set:a,b,...}``: the first value that is not null."""
    return next((value for value in values if value is not None), None)


def register_configs() -> None:
    """Stores the schemas in Hydra's ConfigStore (idempotent); ``datadiet.app`` calls it on import."""
    store = ConfigStore.instance()
    store.store(name=SCHEMA_GROUP, node=DataDietConfig)
    for group, name, node in [
        ("data", "mnist1d", MNIST1DConfig),
        ("data", "digits", DigitsConfig),
        ("data", "fashion_mnist", FashionMNISTConfig),
        ("data", "synthetic", SyntheticConfig),
        ("data", "cifar", CIFARConfig),
        ("data", "imagefolder", ImageFolderConfig),
        ("model", "classifier", ClassifierConfig),
        ("logger", "csv", CSVLoggerConfig),
        ("logger", "wandb", WandbLoggerConfig),
    ]:
        store.store(group=f"{SCHEMA_GROUP}/{group}", name=name, node=node)


def _multirun_sweep_dir() -> Optional[Path]:
    """The sweep directory while a Hydra multirun job runs, else ``None``."""
    if not HydraConfig.initialized():
        return None
    hydra_cfg = HydraConfig.get()
    if hydra_cfg.mode != RunMode.MULTIRUN:
        return None
    return Path(hydra_cfg.sweep.dir).resolve()


def _sweep_group() -> Optional[str]:
    sweep_dir = _multirun_sweep_dir()
    return None if sweep_dir is None else sweep_name(sweep_dir)


def _run_group(subset_path: Optional[str] = None) -> Optional[str]:
    """The W&B group: the jobs of one foundation subset (``pruning.subset_path``) together, else the sweep's."""
    if subset_path:
        from datadiet.subset import subset_group

        return f"subset_{subset_group(subset_path)}"
    return _sweep_group()


def _default_cache_dir(output_dir: str) -> str:
    sweep_dir = _multirun_sweep_dir()
    return str((sweep_dir if sweep_dir is not None else Path(output_dir)) / "probe_cache")


def register_resolvers() -> None:
    """``${datadiet.sweep_group:}``, ``${datadiet.run_group:<subset path>}``,
    ``${datadiet.default_cache_dir:<run dir>}``
    and ``${datadiet.wandb_offline:}`` (see ``conf/``)."""
    OmegaConf.register_new_resolver("datadiet.wandb_offline", wandb_offline, replace=True)
    OmegaConf.register_new_resolver("datadiet.sweep_group", _sweep_group, replace=True)
    OmegaConf.register_new_resolver("datadiet.run_group", _run_group, replace=True)
    OmegaConf.register_new_resolver("datadiet.default_cache_dir", _default_cache_dir, replace=True)
    OmegaConf.register_new_resolver("datadiet.first_set", _first_set, replace=True)


register_configs()
register_resolvers()
