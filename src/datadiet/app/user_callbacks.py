"""The ``callbacks`` config group: your own Lightning callbacks (``EarlyStopping``, ``LearningRateMonitor``, a
class of yours), each a ``_target_`` entry built with ``hydra.utils.instantiate``.

They join the full training and the comparison runs of ``baseline=true`` (which train the same way, so the
comparison stays fair), not the probe or the one-batch check: the app's own pruning and checkpoint callbacks
are added beside them, as before. Every entry is built once when the plan is made, so a ``_target_`` that does
not import, is not a ``Callback`` or refuses its arguments fails before anything trains, naming its key.
"""

from __future__ import annotations

from typing import Any

from hydra.utils import get_object, instantiate
from lightning.pytorch.callbacks import Callback, DeviceStatsMonitor, LearningRateMonitor
from omegaconf import DictConfig

from datadiet.app.config_checks import SettingsError, container

#: Callbacks that only write to the run's loggers: refused when the run has none, and left out of the unlogged
#: comparison runs of ``baseline=true`` (:meth:`RunPlan.full_data <datadiet.app.plan.RunPlan.full_data>`), where
#: they would have nothing to write to.
LOGGING_ONLY = (LearningRateMonitor, DeviceStatsMonitor)


def read_callbacks(cfg: DictConfig, logged: bool) -> dict[str, dict[str, Any]]:
    """The ``callbacks`` group's entries (none when empty; an entry set to ``null`` is removed), each checked.

    Raises:
        SettingsError: an entry without ``_target_``, one whose ``_target_`` does not import or is not a
            ``Callback``, arguments it refuses, or a logging-only callback in a run without a logger — naming
            ``callbacks.<name>`` and what would be accepted.
    """
    entries = {}
    for name, node in (cfg.get("callbacks") or {}).items():
        key = f"callbacks.{name}"
        if node is None:
            continue
        if not isinstance(node, DictConfig) or "_target_" not in node:
            raise SettingsError(
                f"`{key}` has no `_target_`: each entry of `callbacks` is a Lightning callback's config, e.g. "
                f"`+{key}._target_=lightning.pytorch.callbacks.EarlyStopping` (or `callbacks=early_stopping`)"
            )
        target = node._target_
        try:
            cls = get_object(target)
        except Exception as error:  # noqa: BLE001  (Hydra wraps ImportError and AttributeError alike)
            reason = str(error.__cause__ or error).splitlines()[0]
            raise SettingsError(
                f"`{key}._target_={target}` cannot be imported ({reason}): give the full dotted path of a "
                "Lightning Callback class importable here, e.g. lightning.pytorch.callbacks.EarlyStopping"
            ) from None
        if not callable(cls):
            raise SettingsError(f"`{key}._target_={target}` is a {type(cls).__name__}, not a Lightning Callback class")
        entry = container(node)
        built = _build(key, entry)
        if isinstance(built, LOGGING_ONLY) and not logged:
            raise SettingsError(
                f"`{key}` ({type(built).__name__}) writes to the run's loggers, but `logger` is empty: add one "
                f"(logger=csv) or drop it (`{key}=null`)"
            )
        entries[str(name)] = entry
    return entries


def make_callbacks(entries: dict[str, dict[str, Any]]) -> list[Callback]:
    """Fresh instances of the plan's callbacks, for one training."""
    return [_build(f"callbacks.{key}", entry) for key, entry in entries.items()]


def logging_only(entries: dict[str, dict[str, Any]]) -> list[str]:
    """The names of the entries whose class only writes to loggers (:data:`LOGGING_ONLY`): the unlogged comparison
    runs of ``baseline=true`` leave them out, having nothing for them to write to."""
    names = []
    for name, entry in entries.items():
        target = get_object(entry["_target_"])
        if isinstance(target, type) and issubclass(target, LOGGING_ONLY):
            names.append(name)
    return names


def _build(key: str, entry: dict[str, Any]) -> Callback:
    try:
        callback = instantiate(entry)
    except Exception as error:  # noqa: BLE001  (the callback's own argument checks)
        reason = " ".join(str(error.__cause__ or error).split())
        raise SettingsError(f"`{key}` ({entry['_target_']}) cannot be built from its config: {reason}") from None
    if not isinstance(callback, Callback):
        raise SettingsError(
            f"`{key}._target_={entry['_target_']}` built a {type(callback).__name__}, not a Lightning Callback"
        )
    return callback
