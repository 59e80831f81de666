"""The weights registry: names → file, URL, SHA-256; a cache folder; verified, resumable downloads.

Every official checkpoint the tool can load has an entry in :data:`REGISTRY`. :func:`resolve`
turns a name (and optionally the user's own copy, passed through a command-line flag) into the
file to load:

- a local copy is checked against the registry when it claims to be the official file (same
  file name or same size) and refused on a checksum mismatch; any other file is taken as the
  user's own checkpoint, unverified, and a one-line note on stderr says so;
- otherwise the cached copy in :func:`cache_dir` is used, or downloaded on first use: progress
  bar on stderr, resumable (``<file>.part`` kept, continued with an HTTP Range request), checked
  against the registry's SHA-256 and only then renamed into place. When it cannot be
  downloaded (offline, server down) the :class:`UserError` names the file, the URL and the flag
  that passes a local copy.

A verified file's size, mtime and hash are remembered in ``<cache_dir>/verified.json``, so a
2.5 GB checkpoint is hashed once, not on every run; it is hashed again only when it changes.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import warnings
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from http.client import HTTPException
from pathlib import Path
from typing import TYPE_CHECKING, Any

from samic_vos.hub.fetch import (
    check_free_space,
    describe_error,
    download_lock,
    download_resumable,
    refuse_folder,
    sha256_file,
)
from samic_vos.runtime.atomic import atomic_write_text
from samic_vos.runtime.errors import UserError
from samic_vos.runtime.home import samic_home
from samic_vos.runtime.output_paths import (
    check_writable_dir,
    removing_new_folders,
    write_error,
)

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class WeightsEntry:
    """One downloadable checkpoint.

    Attributes:
        name: registry key (``sam_vit_b`` ...), what users type.
        filename: the official file name, also its name in the cache.
        url: where it is downloaded from (HTTP/HTTPS; Range requests are used to resume).
        sha256: lowercase hex SHA-256 of the whole file; ``None`` where the authors publish
            none: such a file is never downloaded by us (it could not be verified), the user
            downloads it and passes it with the flag.
        description: one line for ``samic-vos weights list``.
        size: file size in bytes, or ``None`` when unknown.
        licence: the weights' licence, as their authors state it.
    """

    name: str
    filename: str
    url: str
    sha256: str | None
    description: str
    size: int | None = None
    licence: str = "Apache-2.0"


_SAM_URL = "https://dl.fbaipublicfiles.com/segment_anything/"
_SAM2_URL = "https://dl.fbaipublicfiles.com/segment_anything_2/092824/"
_HQ_URL = "https://huggingface.co/lkeab/hq-sam/resolve/main/"

REGISTRY: dict[str, WeightsEntry] = {
    entry.name: entry
    for entry in (
        # SAM checkpoints: hashes from the foundation issue, sizes as Meta's server reports them.
        WeightsEntry(
            "sam_vit_b",
            "sam_vit_b_01ec64.pth",
            _SAM_URL + "sam_vit_b_01ec64.pth",
            "ec2df62732614e57411cdcf32a23ffdf28910380d03139ee0f4fcbe91eb8c912",
            "Segment Anything ViT-B (Meta): smallest and fastest SAM",
            375_042_383,
        ),
        WeightsEntry(
            "sam_vit_l",
            "sam_vit_l_0b3195.pth",
            _SAM_URL + "sam_vit_l_0b3195.pth",
            "3adcc4315b642a4d2101128f611684e8734c41232a17c648ed1693702a49a622",
            "Segment Anything ViT-L (Meta)",
            1_249_524_607,
        ),
        WeightsEntry(
            "sam_vit_h",
            "sam_vit_h_4b8939.pth",
            _SAM_URL + "sam_vit_h_4b8939.pth",
            "a7bf3b02f3ebf1267aba913ff637d9a2d5c33d3173bb679e46d9f338c26f262e",
            "Segment Anything ViT-H (Meta): largest SAM, best masks",
            2_564_550_879,
        ),
        # torchvision's ResNet50_Weights.IMAGENET1K_V1 (the weights HSNet uses). PyTorch
        # publishes only the hash prefix in the file name (0676ba61); the full SHA-256 below is
        # the one recorded, identically, by several independent public projects that hashed
        # the download, and it starts with that prefix (size: torchvision's _file_size 97.781 MiB).
        WeightsEntry(
            "resnet50_imagenet",
            "resnet50-0676ba61.pth",
            "https://download.pytorch.org/models/resnet50-0676ba61.pth",
            "0676ba61b6795bbe1773cffd859882e5e297624d384b6993f7c9e683e722fb8a",
            "torchvision ResNet-50 ImageNet-1k (IMAGENET1K_V1): SAMIC's frozen backbone",
            102_530_333,
            "BSD-3-Clause",
        ),
        # SAM 2.1 (Meta, checkpoints/download_ckpts.sh of facebookresearch/sam2). Meta publishes
        # no SHA-256 for them (nor sizes): see _UNPUBLISHED_SHA256.
        *(
            WeightsEntry(
                f"sam2.1_hiera_{short}",
                f"sam2.1_hiera_{size}.pt",
                f"{_SAM2_URL}sam2.1_hiera_{size}.pt",
                None,
                f"SAM 2.1 Hiera {label} (Meta), as an image segmenter",
            )
            for short, size, label in (
                ("t", "tiny", "tiny"),
                ("s", "small", "small"),
                ("b+", "base_plus", "base+"),
                ("l", "large", "large"),
            )
        ),
        # HQ-SAM (SysCV/sam-hq README: the Hugging Face copies of its checkpoints); no SHA-256
        # published.
        *(
            WeightsEntry(
                f"sam_hq_{size}",
                f"sam_hq_{size}.pth",
                f"{_HQ_URL}sam_hq_{size}.pth",
                None,
                f"HQ-SAM {size.replace('_', '-').upper()} (SysCV): SAM with a high-quality token",
            )
            for size in ("vit_b", "vit_l", "vit_h")
        ),
        # MedSAM (bowang-lab/MedSAM README): a Google Drive folder, no SHA-256 published.
        WeightsEntry(
            "medsam_vit_b",
            "medsam_vit_b.pth",
            "https://drive.google.com/drive/folders/1ETWmi4AiniJeWOt6HAsYgTjYv_fkgzoN",
            None,
            "MedSAM ViT-B (bowang-lab): SAM fine-tuned on medical images, box prompts",
        ),
    )
}


def get_entry(name: str) -> WeightsEntry:
    """The registry entry ``name``; an unknown name raises :class:`UserError` listing the known."""
    try:
        return REGISTRY[name]
    except KeyError:
        known = ", ".join(REGISTRY)
        raise UserError(f"unknown weights '{name}' (known: {known})") from None


def cache_dir() -> Path:
    """The weights cache: ``$SAMIC_VOS_HOME/weights``, else ``<user cache>/samic-vos/weights``.

    The user cache is ``$XDG_CACHE_HOME`` when set to an absolute path, else ``~/.cache``.
    The folder is not created here.
    """
    return samic_home() / "weights"


def cache_state(name: str) -> str:
    """What the cache holds for ``name``, without hashing anything.

    ``"yes"``: the file is there and verified; ``"unverified"``: there, to be checked on first
    use; ``"partial N%"``: an interrupted download that the next one resumes; ``"no"``.
    """
    entry = get_entry(name)
    final = cache_dir() / entry.filename
    if final.is_file():
        return "yes" if _recorded_digest(final) == entry.sha256 else "unverified"
    part = _part_path(final)
    if part.is_file():
        if entry.size:
            return f"partial {100 * part.stat().st_size // entry.size}%"
        return "partial"
    return "no"


def resolve(
    name: str,
    path: str | os.PathLike[str] | None = None,
    *,
    flag: str | None,
    download: bool = True,
    note: Callable[[str], None] | None = None,
) -> Path:
    """The checkpoint file to load for registry entry ``name``.

    Args:
        name: registry key, e.g. ``"sam_vit_b"``.
        path: the user's local copy (from ``flag``), or ``None`` for the cache.
        flag: the argument that passes a local copy, in backticks (``"`sam_checkpoint`"``;
            the CLI shows it as its flag); error messages name it as the fix (``None``: none).
        download: download into the cache when the file is missing (else raise).
        note: takes the note on a local file used unverified (default: shown on stderr at
            once; a caller that checks the file further can show it once the file passed).

    A local ``path`` must exist. It is checksum-verified when it claims to be the official
    file (its name is the registry file name, or its size is the registry size) and refused
    on a mismatch; any other file is accepted as the user's own checkpoint, unverified, with a
    note on stderr. Without ``path``, a verified cached file is returned; a corrupt cached
    file is downloaded again and replaced once the new copy is verified (kept until then, so
    a failed download loses nothing).

    Raises:
        UserError: unknown name, missing or corrupt local file, file not cached and
            ``download`` is false, or the download failed or did not verify.
    """
    entry = get_entry(name)
    if path is not None:
        return _check_local(entry, Path(path).expanduser(), flag, note or _note)
    or_flag = f", or pass {flag} PATH" if flag else ""
    final = cache_dir() / entry.filename
    if entry.sha256 is None:  # only the user's own copy, in the cache or passed with the flag
        if final.is_file():
            return final
        _refuse_unverifiable(entry, flag)
    if final.is_file():
        if _matches(final, entry):
            return final
        if not download:
            raise UserError(
                f"{final}: not the official {entry.filename} (checksum differs); run "
                f"`samic-vos weights download {name} --force`{or_flag}"
            )
        # Kept until its replacement is downloaded and verified (os.replace in _fetch_locked).
        _note(f"{final}: checksum differs from the official file; downloading it again")
    elif not download:
        raise UserError(
            f"{entry.filename} is not in the cache ({cache_dir()}); run "
            f"`samic-vos weights download {name}`{or_flag}"
        )
    return _fetch(entry, flag)


def require_weights(needed: Sequence[tuple[str, str]]) -> None:
    """Every registry entry of ``needed`` (``(name, flag)`` pairs, e.g. ``("sam_vit_b",
    "`sam_checkpoint`")``) is in the cache, downloaded where it can be, before a job loads any.

    Raises:
        UserError: one line naming every entry that cannot be had (its file, its URL and the
            argument that takes a local copy), not only the first; one entry's own message
            when it is the only one.
    """
    failed: list[UserError] = []
    for name, flag in needed:
        try:
            resolve(name, flag=flag)
        except UserError as err:
            failed.append(err)
    if len(failed) == 1:
        raise failed[0]
    if failed:
        each = " — and ".join(map(str, failed))
        raise UserError(f"{len(failed)} weights files are missing: {each}")


def download(name: str, *, force: bool = False) -> Path:
    """Download ``name`` into the cache (unless a verified copy is there) and return its path.

    ``force`` downloads it afresh (a partial download is discarded first); the cached copy is
    replaced only once the new one is verified.
    """
    entry = get_entry(name)
    if entry.sha256 is None:
        _refuse_unverifiable(entry, None)
    final = cache_dir() / entry.filename
    if not force and final.is_file() and _matches(final, entry):
        return final
    return _fetch(entry, None, replace=force)


def load_checkpoint(
    path: str | os.PathLike[str], map_location: str | torch.device = "cpu"
) -> dict[str, Any]:
    """Load a PyTorch checkpoint file as a dict, its tensors moved to ``map_location``.

    Uses ``torch.load(weights_only=True)``: only tensors and plain containers/numbers/strings
    are decoded, never arbitrary Python objects. ``map_location`` (default CPU) makes
    checkpoints saved on a GPU load on CPU-only machines.

    Raises:
        UserError: the file is missing, cannot be decoded, holds objects that
            ``weights_only`` refuses, or is not a dict.
    """
    import torch

    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: checkpoint file not found")
    try:
        with warnings.catch_warnings():  # e.g. "Detected pickle protocol 4": not the user's concern
            warnings.simplefilter("ignore")
            data = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # any decoding failure of a user's file is a user error
        refused = re.search(r"Unsupported global: GLOBAL (\S+)", str(err))
        if refused:
            raise UserError(
                f"{path}: holds a Python object ({refused.group(1)}) that is not loaded for "
                "safety (torch.load weights_only); re-save it with tensors and plain values only"
            ) from err
        raise UserError(_undecodable(path, err)) from err
    if not isinstance(data, dict):
        raise UserError(f"{path}: expected a checkpoint dict, found {type(data).__name__}")
    return data


# --- verification --------------------------------------------------------------------------


def _refuse_unverifiable(entry: WeightsEntry, flag: str | None) -> None:
    """A checkpoint whose SHA-256 its authors do not publish is not downloaded (it could not
    be verified): one line saying where to get it and how to pass it."""
    fix = f"pass it with {flag} PATH" if flag else f"copy it to {cache_dir() / entry.filename}"
    raise UserError(
        f"{entry.filename}: its authors publish no SHA-256, so it is not downloaded "
        f"automatically; download it from {entry.url} and {fix}"
    )


def _note(message: str) -> None:
    log.info(message)


def _part_path(final: Path) -> Path:
    return final.with_name(final.name + ".part")


# How a file saved by torch.save starts: a zip archive (PyTorch >= 1.6), or the legacy format's
# pickled magic number (protocol 2, then the long 0x1950a86a20f9469cfc6c).
_ZIP_MAGIC = b"PK\x03\x04"
_LEGACY_MAGIC = b"\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19"


def _undecodable(path: Path, err: BaseException) -> str:
    """What is wrong with a file torch.load failed on, in our words (PyTorch's are paragraphs).

    ``err`` only tells the decoding error's type; the file's own bytes tell what it is.
    """
    with path.open("rb") as fh:
        head = fh.read(len(_LEGACY_MAGIC))
    fix = "save or download it again"
    if not head:
        return f"{path}: the checkpoint file is empty (0 bytes); {fix}"
    if head.startswith(_ZIP_MAGIC):
        try:
            whole = zipfile.is_zipfile(path)  # finds the archive's end record
        except zipfile.BadZipFile:
            whole = False
        if not whole:
            return (
                f"{path}: the checkpoint is truncated or corrupt (its zip archive has no valid "
                f"end); {fix}"
            )
        return f"{path}: the checkpoint is corrupt ({type(err).__name__} while reading it); {fix}"
    if head == _LEGACY_MAGIC:
        return (
            f"{path}: the checkpoint (legacy torch.save format) is truncated or corrupt "
            f"({type(err).__name__} while reading it); {fix}"
        )
    return (
        f"{path}: not a PyTorch checkpoint (neither torch.save's zip archive nor its legacy "
        "format); pass a file written by torch.save"
    )


def _records_file() -> Path:
    return cache_dir() / "verified.json"


def _load_records() -> dict[str, dict[str, Any]]:
    try:
        records = json.loads(_records_file().read_text())
    except (OSError, ValueError):
        return {}
    return records if isinstance(records, dict) else {}


def _recorded_digest(path: Path) -> str | None:
    """The SHA-256 remembered for ``path`` if the file has not changed since (size, mtime)."""
    record = _load_records().get(str(path.resolve()))
    stat = path.stat()
    if isinstance(record, dict) and (record.get("size"), record.get("mtime_ns")) == (
        stat.st_size,
        stat.st_mtime_ns,
    ):
        return record.get("sha256")
    return None


def _remember_digest(path: Path, digest: str) -> None:
    """Record ``path``'s hash; a cache that cannot be written only costs a re-hash later."""
    stat = path.stat()
    records = _load_records()
    records[str(path.resolve())] = {
        "size": stat.st_size,
        "mtime_ns": stat.st_mtime_ns,
        "sha256": digest,
    }
    with contextlib.suppress(OSError, UserError):  # UserError: the disk is full
        _records_file().parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(_records_file(), json.dumps(records, indent=1, sort_keys=True))


def _digest(path: Path, entry: WeightsEntry) -> str:
    """``path``'s SHA-256, from the record when the file is unchanged, else hashed (and kept)."""
    digest = _recorded_digest(path)
    if digest is None:
        digest = sha256_file(path, entry.filename)
        _remember_digest(path, digest)
    return digest


def _mismatch(path: Path, entry: WeightsEntry) -> str | None:
    """Why ``path`` is not ``entry``'s official file, or ``None`` when it is."""
    size = path.stat().st_size
    if entry.size is not None and size != entry.size:
        return f"{size} bytes, expected {entry.size}"
    if entry.sha256 is None:  # nothing published to check against
        return None
    digest = _digest(path, entry)
    if digest != entry.sha256:
        return f"SHA-256 {digest[:12]}…, expected {entry.sha256[:12]}…"
    return None


def _matches(path: Path, entry: WeightsEntry) -> bool:
    return _mismatch(path, entry) is None


def _check_local(
    entry: WeightsEntry, path: Path, flag: str | None, note: Callable[[str], None]
) -> Path:
    label = f"{flag} {path}" if flag else str(path)
    if not path.exists():
        raise UserError(f"{label}: file not found")
    if not path.is_file():
        raise UserError(f"{label}: not a file")
    claims_official = path.name == entry.filename or path.stat().st_size == entry.size
    if not claims_official or entry.sha256 is None:
        note(f"{label}: not the official {entry.filename}; used as is, unverified")
        return path
    problem = _mismatch(path, entry)
    if problem is not None:
        raise UserError(
            f"{label}: not the official {entry.filename} ({problem}); the file is corrupt "
            f"or incomplete, download it again from {entry.url}"
        )
    return path


# --- download ------------------------------------------------------------------------------


def _fetch(entry: WeightsEntry, flag: str | None, replace: bool = False) -> Path:
    """Download ``entry`` into the cache, verify it, rename it into place; return its path.

    A cached file is only ever replaced by a verified download (``replace``: even a verified
    one, and a partial download is discarded first), never removed before.
    """
    folder = cache_dir()
    final = folder / entry.filename
    fix = f"pass {flag} PATH" if flag else f"copy it to {final}"
    check_writable_dir(
        folder,
        f"set SAMIC_VOS_HOME to a writable folder, or download {entry.filename} yourself and {fix}",
    )
    with removing_new_folders(folder):  # a failed first download leaves no empty cache
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise UserError(
                f"cannot create the weights cache {folder} ({describe_error(err)}); set "
                f"SAMIC_VOS_HOME to a writable folder, or download {entry.filename} yourself "
                f"and {fix}"
            ) from err
        return _fetch_locked(entry, final, fix, replace)


def _fetch_locked(entry: WeightsEntry, final: Path, fix: str, replace: bool) -> Path:
    """:func:`_fetch` once the cache folder exists."""
    folder, part = final.parent, _part_path(final)
    with download_lock(final):
        refuse_folder(final)
        if replace:  # afresh; under the lock, so never another process's partial file
            with contextlib.suppress(FileNotFoundError):
                part.unlink()
        cached = final.is_file()
        if cached and not replace and _matches(final, entry):  # another process finished it
            return final
        missing = (
            f"{final}: not the official {entry.filename} (kept as it is), and a verified copy"
            if cached
            else f"{entry.filename} is not in the cache ({folder}) and"
        )
        if entry.size is not None:
            needed = entry.size - (part.stat().st_size if part.is_file() else 0)
            check_free_space(
                part.parent, needed, entry.filename, f"set SAMIC_VOS_HOME to another disk, or {fix}"
            )
        try:
            download_resumable(entry.url, part, entry.filename, entry.size)
        except (OSError, HTTPException, ValueError) as err:
            if isinstance(err, OSError) and (disk_error := write_error(part, err)) is not None:
                raise disk_error from err
            raise UserError(
                f"{missing} could not be downloaded from {entry.url} ({describe_error(err)}); "
                f"download it yourself and {fix}"
            ) from err
        digest = sha256_file(part, entry.filename)
        if digest != entry.sha256:
            part.unlink()
            raise UserError(
                f"downloaded {entry.filename} from {entry.url} but its SHA-256 is "
                f"{digest[:12]}…, not the official {entry.sha256[:12]}… (corrupt download or "
                f"changed server file); removed it: run again, or download it yourself and {fix}"
            )
        os.replace(part, final)
        _remember_digest(final, digest)
    return final
