"""Where samic-vos keeps its files: ``$SAMIC_VOS_HOME``, else ``<user cache>/samic-vos``.

The user cache is ``$XDG_CACHE_HOME`` when set to an absolute path, else ``~/.cache``.
Subfolders: ``weights/`` (the weights registry), ``cache/flow/`` (optical-flow scores),
``downloads/`` (dataset archives) and ``datasets/`` (unpacked datasets).
"""

from __future__ import annotations

import os
from pathlib import Path


def samic_home() -> Path:
    """The samic-vos folder (not created here)."""
    home = os.environ.get("SAMIC_VOS_HOME")
    if home:
        return Path(home).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg) if xdg and Path(xdg).is_absolute() else Path.home() / ".cache"
    return base / "samic-vos"
