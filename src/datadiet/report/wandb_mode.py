"""Deciding whether W&B runs online: only when the user configured it, so no run ever prompts for a login."""

from __future__ import annotations

import netrc
import os
from pathlib import Path


def wandb_configured() -> bool:
    """True when W&B has credentials: ``WANDB_API_KEY`` or a ``~/.netrc`` entry from ``wandb login``."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    path = Path(os.environ.get("NETRC", Path.home() / ".netrc"))
    try:
        hosts = netrc.netrc(path).hosts
    except (FileNotFoundError, netrc.NetrcParseError, PermissionError):
        return False
    return any("wandb" in host for host in hosts)


def wandb_offline() -> bool:
    """Offline unless ``WANDB_MODE`` says otherwise or W&B credentials exist."""
    mode = os.environ.get("WANDB_MODE", "").lower()
    if mode in ("offline", "dryrun", "disabled"):
        return True
    if mode == "online":
        return False
    return not wandb_configured()
