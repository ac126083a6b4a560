"""The registry of per-example scores: every score is found by name (``el2n``, ``forgetting``, ...)."""

from __future__ import annotations

from typing import Callable

from datadiet.registry import Registry
from datadiet.scores.base import PerExampleScore

SCORES: Registry[type[PerExampleScore]] = Registry("score")


def register_score(name: str) -> Callable[[type[PerExampleScore]], type[PerExampleScore]]:
    """Class decorator registering a :class:`PerExampleScore` subclass under ``name``."""

    def decorator(cls: type[PerExampleScore]) -> type[PerExampleScore]:
        cls.name = name
        return SCORES.register(name)(cls)

    return decorator


def get_score(name: str) -> type[PerExampleScore]:
    """The score class registered as ``name``; the error lists the available names."""
    return SCORES.get(name)


def list_scores() -> list[str]:
    """Names of all registered scores."""
    return SCORES.names()
