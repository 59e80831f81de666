"""Output folders of runs: recognise the same run, resume it, refuse another one.

Every job that writes a folder (``track``, ``train``, and the benchmark runs) keeps a manifest,
``run.json``, in it::

    {"format": "samic-vos/run", "command": "track", "version": "0.1.0",
     "inputs": {"video": {"path": ..., "size": ..., "sha256": ...}, ...},
     "config": {... the resolved config, as config.yaml ...},
     "finished": false}

Two runs are *the same run* when their command, package version, inputs (sizes and content
hashes: whole files up to :data:`FULL_HASH_BYTES`, beyond that the size and the hash of the
first and last :data:`EDGE_BYTES`) and resolved config are equal; ``finished`` is not
compared. Rerunning the same run into its folder continues it (``"resume"``) or, once it is
finished, does nothing (``"finished"``). Any other run is refused in one line, unless
``force``: then the folder's previous outputs (the names the job declares) are removed and the
run starts afresh. Another run that stopped before its first result (its outputs hold nothing
but manifests and configs) is replaced without ``force``: there is nothing to lose. A folder
that holds files but no manifest is refused likewise.

Shards (several processes writing one folder at once) cannot tell another run from a shard
starting beside them: for them ``force`` is refused, another run is refused even before its
first result (removing it could remove a starting shard's work), and the first manifest is
claimed atomically (:func:`open_run`'s ``shards``), so that a shard with other settings is
refused rather than mixed into the run.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from samic_vos.runtime.atomic import atomic_create_text, atomic_write_text, is_leftover
from samic_vos.runtime.errors import UserError
from samic_vos.runtime.version import __version__

MANIFEST = "run.json"
FORMAT = "samic-vos/run"
FULL_HASH_BYTES = 256 << 20  # files up to this size are hashed whole
EDGE_BYTES = 16 << 20  # larger files: size + hash of their first and last 16 MiB

CONFIG_FILE = "config.yaml"  # the resolved config every run writes beside its outputs
RECORDS = (MANIFEST, CONFIG_FILE)  # what a run writes about itself before any result
RunState = Literal["new", "resume", "finished"]


def fingerprint(path: str | os.PathLike[str] | None) -> dict[str, Any] | None:
    """What identifies an input file or folder: its path, size(s) and content hash.

    A folder is the list of its files (relative names, sizes, hashes), sorted.
    """
    if path is None:
        return None
    path = Path(path)
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file())
        digest = hashlib.sha256()
        for file in files:
            part = _file_digest(file)
            digest.update(f"{file.relative_to(path).as_posix()}\0{part}\n".encode())
        return {"path": str(path.resolve()), "files": len(files), "sha256": digest.hexdigest()}
    return {"path": str(path.resolve()), "size": path.stat().st_size, "sha256": _file_digest(path)}


def _file_digest(path: Path) -> str:
    size = path.stat().st_size
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        if size <= FULL_HASH_BYTES:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        else:
            digest.update(handle.read(EDGE_BYTES))
            handle.seek(size - EDGE_BYTES)
            digest.update(handle.read(EDGE_BYTES))
            digest.update(str(size).encode())
    return digest.hexdigest()


@dataclass
class RunManifest:
    """What makes a run the run it is (see the module docstring)."""

    command: str
    inputs: dict[str, Any]
    config: dict[str, Any]
    version: str = __version__
    finished: bool = False
    extra: dict[str, Any] = field(default_factory=dict)  # recorded, not compared

    def key(self) -> dict[str, Any]:
        """The compared part, as plain JSON values."""
        return json.loads(
            json.dumps(
                {
                    "command": self.command,
                    "version": self.version,
                    "inputs": self.inputs,
                    "config": self.config,
                }
            )
        )

    def to_json(self) -> dict[str, Any]:
        return {"format": FORMAT, **self.key(), "finished": self.finished, "extra": self.extra}


def read_manifest(folder: Path) -> RunManifest | None:
    """The manifest in ``folder`` (``None`` if there is none); UserError if it is damaged."""
    path = folder / MANIFEST
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
        if data.get("format") != FORMAT:
            raise ValueError("not a samic-vos run manifest")
        return RunManifest(
            command=data["command"],
            inputs=data["inputs"],
            config=data["config"],
            version=data["version"],
            finished=bool(data.get("finished")),
            extra=dict(data.get("extra") or {}),
        )
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as err:
        raise UserError(
            f"{path}: damaged run manifest ({err}); pass `force` to start the run afresh"
        ) from None


def write_manifest(folder: Path, manifest: RunManifest) -> None:
    """Write ``folder/run.json`` atomically."""
    atomic_write_text(folder / MANIFEST, _manifest_text(manifest))


def _manifest_text(manifest: RunManifest) -> str:
    return json.dumps(manifest.to_json(), indent=1) + "\n"


def _remove_outputs(folder: Path, outputs: tuple[str, ...]) -> None:
    """Remove the run's ``outputs`` (names in ``folder``) and its manifest."""
    for name in (*outputs, MANIFEST):
        target = folder / name
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target)
        elif target.exists() or target.is_symlink():
            target.unlink()


def _holds_work(folder: Path, outputs: tuple[str, ...]) -> bool:
    """Whether the run's ``outputs`` in ``folder`` hold any result: a non-empty file other than
    a run's own records (:data:`RECORDS`: its manifest and resolved config, at any depth)."""
    for name in outputs:
        target = folder / name
        files = [target] if target.is_file() else target.rglob("*") if target.is_dir() else []
        if any(p.is_file() and p.name not in RECORDS and p.stat().st_size for p in files):
            return True
    return False


def differences(old: Any, new: Any, prefix: str = "") -> list[str]:
    """Dotted keys where two JSON values differ."""
    if isinstance(old, dict) and isinstance(new, dict):
        keys = sorted(set(old) | set(new))
        found: list[str] = []
        for key in keys:
            found += differences(old.get(key), new.get(key), f"{prefix}{key}.")
        return found
    return [] if old == new else [prefix.rstrip(".")]


def open_run(
    folder: Path,
    manifest: RunManifest,
    *,
    force: bool,
    outputs: tuple[str, ...],
    shards: int = 1,
    may_change: tuple[str, ...] = (),
    other_settings_fix: str | None = None,
) -> RunState:
    """How a run with ``manifest`` goes on in ``folder``; nothing is written here, except a
    new run's manifest when ``shards`` > 1.

    Args:
        folder: the output folder (may not exist yet).
        manifest: this run's manifest.
        force: start afresh even over another or a finished run: removes ``outputs``
            (names inside ``folder``) and the manifest.
        outputs: the names the job writes in ``folder`` (files or folders).
        shards: how many processes write ``folder`` at once (see the module docstring):
            above 1, ``force`` is refused, another run is never replaced, and a new run's
            manifest is written here, by the first shard to get there (the others resume it).
        may_change: dotted keys of the manifest (e.g. ``"config.train.max_epochs"``), each
            with everything under it (``"inputs"``: every input path), in which the same run
            may differ: it goes on with the new value.
        other_settings_fix: what the refusal of a run with other settings suggests besides
            another ``out_dir`` (default: ``force``, or removing it when sharded).

    Returns:
        ``"new"`` (nothing to keep), ``"resume"`` (the same run, unfinished) or
        ``"finished"`` (the same run, complete).

    Raises:
        UserError: ``folder`` is a file, or holds another run or foreign files (without
            ``force``); ``force`` with ``shards``.
    """
    if folder.exists() and not folder.is_dir():
        raise UserError(f"{folder}: exists and is not a folder; choose another `out_dir`")
    if force and shards > 1:
        raise UserError(
            f"{folder}: `force` with shards would let each shard remove what the others "
            "write; remove the folder (or choose another `out_dir`), then launch the shards"
        )
    # A process killed while writing the first manifest leaves its temporary file alone.
    if not folder.exists() or all(is_leftover(p.name) for p in folder.iterdir()):
        if shards == 1:
            return "new"
        folder.mkdir(parents=True, exist_ok=True)
        if atomic_create_text(folder / MANIFEST, _manifest_text(manifest)):
            return "new"
        # Another shard claimed the folder first: go on as its run, or be refused.
    old = read_manifest(folder) if not force else None
    if force:
        _remove_outputs(folder, outputs)
        return "new"
    if old is None:
        raise UserError(
            f"{folder}: not empty and holds no samic-vos run; choose another `out_dir` "
            "(or pass `force` to write into it)"
        )
    if old.command != manifest.command:
        raise UserError(
            f"{folder}: holds a '{old.command}' run, not a '{manifest.command}' run; choose "
            "another `out_dir`"
        )
    changed = [
        k
        for k in differences(old.key(), manifest.key())
        if not any(k == p or k.startswith(f"{p}.") for p in may_change)
    ]
    if changed and shards == 1 and not _holds_work(folder, outputs):
        # A run that stopped before its first output (a missing weight, a wrong flag) blocks
        # nothing: the corrected run takes its place.
        _remove_outputs(folder, outputs)
        return "new"
    if changed:
        shown = ", ".join(changed[:4]) + (
            f" and {len(changed) - 4} more" if len(changed) > 4 else ""
        )
        fix = other_settings_fix or (
            "remove it (shards cannot `force`)" if shards > 1 else "pass `force` to replace it"
        )
        raise UserError(
            f"{folder}: holds another run (it differs in {shown}); choose another `out_dir`, "
            f"or {fix}"
        )
    return "finished" if old.finished else "resume"
