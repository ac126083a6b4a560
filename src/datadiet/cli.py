"""``PruningCLI``: Lightning's ``LightningCLI`` with your data module wrapped in a :class:`~datadiet.PruningDataModule`,
so :class:`~datadiet.PruneDuringFit` and :class:`~datadiet.DynamicPruning` can be set in a YAML config.

(Not to be confused with :mod:`datadiet.app.cli`, the ``datadiet`` Hydra app.) Needs ``jsonargparse``
(``pip install datadiet[cli]``, as for ``LightningCLI`` itself).
"""

from __future__ import annotations

from typing import Any

import lightning.pytorch as pl
from lightning.pytorch.cli import LightningCLI
from typing_extensions import override

# imported so that `class_path: PruneDuringFit` / `DynamicPruning` (short names) resolve in configs and `--help`
from datadiet.callbacks import DynamicPruning, PruneDuringFit  # noqa: F401
from datadiet.data import PruningDataModule

__all__ = ["PruningCLI", "main", "wrap_datamodule"]


class PruningCLI(LightningCLI):
    """A ``LightningCLI`` whose data module is wrapped with :meth:`PruningDataModule.from_datamodule
    <datadiet.PruningDataModule.from_datamodule>` once the CLI has built it.

    Configure your model and data module as with ``LightningCLI`` (the ``data:`` entry is your own class:
    its ``save_hyperparameters()`` works as usual, and its hyperparameters are logged and checkpointed as
    before), and the pruning callbacks in ``trainer.callbacks`` with ``class_path`` / ``init_args``::

        trainer:
          max_epochs: 10
          callbacks:
            - class_path: datadiet.PruneDuringFit
              init_args: {after_epochs: 2, keep_fraction: 0.5}

    ``fit --trainer.callbacks.help PruneDuringFit`` (or ``DynamicPruning``) lists a callback's arguments;
    ``fit -c config.yaml --ckpt_path last.ckpt`` resumes on the same kept subset (it travels in the checkpoint).
    A data module that already is a ``PruningDataModule`` is used as it is. The config is saved to the log
    folder on every run (overwriting, so that a resumed run starts), unless ``save_config_kwargs`` say otherwise.

    Args:
        *args: ``LightningCLI``'s arguments (``model_class``, ``datamodule_class``, ...).
        wrap_options: keyword arguments of ``from_datamodule`` (e.g. ``{"shuffle": True}`` to replace a
            sampler it cannot carry over).
        **kwargs: ``LightningCLI``'s keyword arguments.

    Example::

        # train.py — then: python train.py fit -c config.yaml
        from datadiet.cli import PruningCLI

        if __name__ == "__main__":
            PruningCLI()  # model and data given by class_path in the config
    """

    def __init__(self, *args: Any, wrap_options: dict[str, Any] | None = None, **kwargs: Any) -> None:
        self.wrap_options = dict(wrap_options or {})
        kwargs.setdefault("save_config_kwargs", {"overwrite": True})
        super().__init__(*args, **kwargs)

    @override
    def instantiate_classes(self) -> None:
        super().instantiate_classes()
        self.datamodule = wrap_datamodule(self.datamodule, **self.wrap_options)


def wrap_datamodule(datamodule: pl.LightningDataModule | None, **options: Any) -> PruningDataModule | None:
    """``datamodule`` wrapped in a :class:`~datadiet.PruningDataModule` (``None`` and a ``PruningDataModule``
    are returned as they are), carrying its hyperparameters, so that Lightning logs and checkpoints them as the
    data module's, as it would without the wrapper."""
    if datamodule is None or isinstance(datamodule, PruningDataModule):
        return datamodule
    wrapper = PruningDataModule.from_datamodule(datamodule, **options)
    if datamodule.hparams:
        wrapper.save_hyperparameters(dict(datamodule.hparams), logger=True)
    return wrapper


def main() -> None:
    """The ``datadiet-cli`` console script: ``PruningCLI()``, model and data module given by ``class_path``."""
    PruningCLI()


if __name__ == "__main__":
    main()
