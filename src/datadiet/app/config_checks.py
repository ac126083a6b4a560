"""Checks of single config values for :class:`~datadiet.app.plan.RunPlan`: keys the schema does not have,
counts, files that must exist. Each raises naming the key and what would be accepted."""

from __future__ import annotations

import difflib
import re
from contextlib import contextmanager
from dataclasses import fields, is_dataclass
from pathlib import Path
from typing import Any, Iterator, Optional

from omegaconf import DictConfig, OmegaConf


class SettingsError(ValueError):
    """A setting that cannot work, found before anything trains (a ``ValueError``): the ``datadiet`` command
    prints its message as one line, without a traceback."""


class SettingsTypeError(SettingsError, TypeError):
    """A :class:`SettingsError` that is also a ``TypeError`` (a setting that built the wrong kind of object)."""


#: Config nodes whose keys are free-form (a strategy's or a score's own keyword arguments): ``+`` may add keys there.
FREE_FORM = ("pruning.options", "probe.score_options")


def check_known_keys(cfg: Any) -> None:
    """Fails when a composed config has a key its schema does not (one added with ``+key=value``).

    Hydra lets ``+`` add a key to a typed node; the schema would not have it, so nothing reads it and the run
    would silently ignore it. Free-form nodes (:data:`FREE_FORM`, a network's ``net``, ``logger``) take any key.

    Raises:
        ValueError: naming the key, the schema, the close matches and where free-form keys go.
    """
    for node_path, node in _typed_nodes(cfg):
        schema = OmegaConf.get_type(node)
        if not is_dataclass(schema):
            continue
        known = [item.name for item in fields(schema)]
        for key in node.keys():
            if key not in known:
                prefix = f"{node_path}." if node_path else ""
                close = [f"`{prefix}{match}`" for match in difflib.get_close_matches(str(key), known, n=3)]
                raise ValueError(
                    f"`{prefix}{key}` is not a setting: {schema.__name__} has no `{key}`"
                    + (f" (did you mean {' or '.join(close)}?)" if close else "")
                    + f". `+key=value` adds keys only to the free-form {' and '.join(FREE_FORM)}; "
                    + (f"the keys of `{node_path}` are: " if node_path else "the top-level keys are: ")
                    + ", ".join(known)
                )


def _typed_nodes(node: Any, path: str = ""):
    """Every mapping node of a config with its dotted path, skipping :data:`FREE_FORM` subtrees."""
    if not isinstance(node, DictConfig) or path in FREE_FORM:
        return
    yield path, node
    for key in node.keys():
        child = node._get_node(key)
        if isinstance(child, DictConfig):
            yield from _typed_nodes(child, f"{path}.{key}" if path else str(key))


def count(value: Any, key: str, minimum: int = 1, what: str = "") -> int:
    """``value`` as an integer >= ``minimum``, else an error naming ``key``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        meaning = f" ({what})" if what else ""
        raise ValueError(f"`{key}`{meaning} must be an integer >= {minimum}, got {value!r}")
    return value


def existing_file(path: Optional[str], key: str, what: str) -> Optional[str]:
    """``path`` (``None`` when unset) if it is a file, else an error naming ``key``: a missing file would
    otherwise surface only after the phases before it had trained."""
    if path and not Path(path).is_file():
        raise FileNotFoundError(f"`{key}={path}` does not exist: give {what}, or leave {key} unset")
    return path or None


def container(node: Any) -> Any:
    return OmegaConf.to_container(node, resolve=True)


@contextmanager
def keys_under(node: str) -> Iterator[None]:
    """A library check run inside names its key by the config's full dotted path: a ``ValueError`` or
    ``TypeError`` whose message starts with a bare key in backquotes (``keep_fraction``) is raised again naming
    ``pruning.keep_fraction`` (same type, one line, no chained traceback)."""
    try:
        yield
    except (ValueError, TypeError) as error:
        message = str(error)
        named = key_named_under(node, message)
        if named == message:
            raise
        raise type(error)(named) from None


def key_named_under(node: str, message: str) -> str:
    """``message`` with the bare key in backquotes it starts with named by its full path under ``node``."""
    return re.sub(r"^`([A-Za-z_]\w*)(?=[`=])", lambda match: f"`{node}.{match.group(1)}", message, count=1)
