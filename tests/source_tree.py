"""The modules of the source tree under the names they install as."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# Folders of the tree and the package each installs as (setup.py).
FOLDERS = {"samic_vos": "samic_vos", "pipelines": "samic_vos.pipelines", "eval": "samic_vos.eval"}


def source_modules(repo: Path = REPO) -> dict[str, Path]:
    """Installed module name → file, for every module of the tree under ``repo``."""
    found = {}
    for folder, package in FOLDERS.items():
        for path in sorted((repo / folder).rglob("*.py")):
            parts = list(path.relative_to(repo / folder).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join([package, *parts])] = path
    return found
