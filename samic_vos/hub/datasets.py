"""Dataset downloads: a registry of official archives; download, atomic unpack, integrity check.

:func:`ensure_dataset` returns the folder of a dataset, downloading and unpacking it on first use:

1. the archive is downloaded into ``<samic home>/downloads`` by the same resumable fetcher as the
   weights (:func:`samic_vos.hub.fetch.download_resumable`: ``<file>.part`` kept after a cut
   connection and continued with an HTTP Range request, progress on stderr), then checked
   against the registry's size and SHA-256 where they are published;
2. it is unpacked (zip, tar, tar.gz) into a temporary folder beside the target
   (``.<name>.unpacking-*``), so a killed unpack never leaves a half tree under the dataset's
   name; leftovers of a killed run are removed by the next one;
3. the unpacked tree is checked: a DAVIS root has frames and annotations for every sequence of
   its ImageSets lists, one annotation per frame; another dataset has every path its entry
   requires (folders not empty); only then is its folder renamed into place
   (``<root>/<folder>``) and the archive deleted.

A corrupt archive (wrong size or hash, not a zip or tar, a damaged member, an inconsistent
tree) is refused with one line and removed, so that the next run downloads it again.
"""

from __future__ import annotations

import contextlib
import errno
import gzip
import logging
import os
import shutil
import tarfile
import tempfile
import zipfile
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from http.client import HTTPException
from pathlib import Path

from samic_vos.data.davis import DavisDataset
from samic_vos.data.names import RESOLUTIONS
from samic_vos.hub.fetch import (
    check_free_space,
    describe_error,
    download_lock,
    download_resumable,
    refuse_folder,
    retry_may_help,
    sha256_file,
)
from samic_vos.runtime.errors import UserError
from samic_vos.runtime.home import samic_home
from samic_vos.runtime.output_paths import (
    check_writable_dir,
    removing_new_folders,
    write_error,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DatasetArchive:
    """One downloadable dataset archive (a zip, tar or tar.gz, by its file name).

    Attributes:
        name: registry key, what users type.
        filename: the archive's official file name, also its name in the downloads cache.
        url: where it is downloaded from (HTTP/HTTPS; Range requests resume it).
        sha256: lowercase hex SHA-256 of the archive, or ``None`` where none is published.
        size: the archive's bytes, or ``None`` where unknown.
        year: DAVIS year its ImageSets lists are read as (``"2016"`` or ``"2017"``); ``None``
            for a dataset that is not a DAVIS root (checked by ``required`` instead).
        splits: the ImageSets lists whose sequences are checked after unpacking (DAVIS).
        top: the folder inside the archive that becomes the dataset's folder.
        description: one line for ``samic-vos data list``.
        folder: where the dataset lands under the root (``None``: ``name``), e.g. the layout
            the readers expect (``VOC2012``, ``COCO2014/val2014``).
        required: paths inside the folder that must exist (a folder: with something in it).
    """

    name: str
    filename: str
    url: str
    sha256: str | None
    size: int | None
    year: str | None
    splits: tuple[str, ...]
    top: str
    description: str
    folder: str | None = None
    required: tuple[str, ...] = ()


ARCHIVES: dict[str, DatasetArchive] = {
    entry.name: entry
    for entry in (
        # Linked from davischallenge.org (DAVIS 2017, semi-supervised TrainVal 480p). Size and
        # SHA-256 as published in TensorFlow Datasets' checksums (video/davis/checksums.tsv).
        DatasetArchive(
            "davis-2017-trainval-480p",
            "DAVIS-2017-trainval-480p.zip",
            "https://data.vision.ee.ethz.ch/csergi/share/davis/DAVIS-2017-trainval-480p.zip",
            "e3d0b5b77c3d031b000a19e0e25e3e2cac65d183755601bc2cf066df1a2aa492",
            832_766_765,
            "2017",
            ("train", "val"),
            "DAVIS",
            "DAVIS 2017 train + val, 480p (90 sequences, multi-object; ~0.8 GB)",
        ),
        # Linked from davischallenge.org (DAVIS 2016, TrainVal images and annotations; the zip
        # also holds the 1080p frames, ~1.9 GB). No SHA-256 or exact size is published (only an
        # MD5 in old scripts, of an unknown version of the file): the archive is checked by its
        # zip CRCs and the integrity check of the unpacked tree only.
        DatasetArchive(
            "davis-2016-trainval-480p",
            "DAVIS-data.zip",
            "https://graphics.ethz.ch/Downloads/Data/Davis/DAVIS-data.zip",
            None,
            None,
            "2016",
            ("train", "val"),
            "DAVIS",
            "DAVIS 2016 train + val (50 sequences, one object each; 480p and 1080p, ~1.9 GB)",
        ),
        # host.robots.ox.ac.uk (PASCAL VOC 2012, "training/validation data"; served over HTTP
        # only). Size and SHA-256 as torchvision's VOC dataset pins them.
        DatasetArchive(
            "voc2012",
            "VOCtrainval_11-May-2012.tar",
            "http://host.robots.ox.ac.uk/pascal/VOC/voc2012/VOCtrainval_11-May-2012.tar",
            "e14f763270cf193d0b5f74b169f44157a4b0c6efa708f4dd0ff78ee691763bcb",
            1_999_639_040,
            None,
            (),
            "VOCdevkit/VOC2012",
            "PASCAL VOC 2012 trainval (17,125 images, 2,913 segmentation masks; ~2.0 GB)",
            "VOC2012",
            ("JPEGImages", "SegmentationClass", "ImageSets/Segmentation/val.txt"),
        ),
        # Berkeley's Semantic Boundaries Dataset (benchmark.tgz; its class masks are .mat files
        # that `data prepare pascal5i` merges into SegmentationClassAug). Size and SHA-256 as
        # torchvision's SBD dataset pins them.
        DatasetArchive(
            "sbd",
            "benchmark.tgz",
            "https://www2.eecs.berkeley.edu/Research/Projects/CS/vision/grouping/"
            "semantic_contours/benchmark.tgz",
            "6a5a2918d5c73ce032fdeba876574d150d9d04113ab87540a1304cbcc715be53",
            1_419_539_633,
            None,
            (),
            "benchmark_RELEASE/dataset",
            "SBD, the Semantic Boundaries Dataset (11,355 VOC images' class masks; ~1.4 GB)",
            "SBD",
            ("cls", "img", "train.txt", "val.txt"),
        ),
        # images.cocodataset.org (COCO 2014). Sizes as served; SHA-256 as torchvision's COCO
        # dataset pins them.
        DatasetArchive(
            "coco2014-val",
            "val2014.zip",
            "http://images.cocodataset.org/zips/val2014.zip",
            "fe9be816052049c34717e077d9e34aa60814a55679f804cd043e3cbee3b9fde0",
            6_645_013_297,
            None,
            (),
            "val2014",
            "COCO 2014 val images (40,504; ~6.6 GB): COCO-20i's test images",
            "COCO2014/val2014",
        ),
        DatasetArchive(
            "coco2014-train",
            "train2014.zip",
            "http://images.cocodataset.org/zips/train2014.zip",
            "ede4087e640bddba550e090eae701092534b554b42b05ac33f0300b984b31775",
            13_510_573_713,
            None,
            (),
            "train2014",
            "COCO 2014 train images (82,783; ~13.5 GB): COCO-20i's training images",
            "COCO2014/train2014",
        ),
        DatasetArchive(
            "coco2014-annotations",
            "annotations_trainval2014.zip",
            "http://images.cocodataset.org/annotations/annotations_trainval2014.zip",
            "031296bbc80c45a1d1f76bf9a90ead27e94e99ec629208449507a4917a3bf009",
            252_872_794,
            None,
            (),
            "annotations",
            "COCO 2014 train + val annotations (instances JSON; ~253 MB)",
            "COCO2014/annotations",
            ("instances_train2014.json", "instances_val2014.json"),
        ),
        # datasets.simula.no (Kvasir-SEG: "starts download, size 46.2 MB"); no checksum is
        # published: checked by its zip CRCs and the tree.
        DatasetArchive(
            "kvasir-seg",
            "kvasir-seg.zip",
            "https://datasets.simula.no/downloads/kvasir-seg.zip",
            None,
            None,
            None,
            (),
            "Kvasir-SEG",
            "Kvasir-SEG (1,000 polyp images and masks; ~46 MB)",
            "Kvasir-SEG",
            ("images", "masks"),
        ),
    )
}

# The archive of each DAVIS year's train and val sets.
DAVIS_BY_YEAR: dict[str, str] = {
    "2017": "davis-2017-trainval-480p",
    "2016": "davis-2016-trainval-480p",
}
# The checked (and only complete) resolution of every archive above.
RESOLUTION = RESOLUTIONS[0]


def get_archive(name: str) -> DatasetArchive:
    """The registry entry ``name``; an unknown name raises :class:`UserError` listing the known."""
    try:
        return ARCHIVES[name]
    except KeyError:
        raise UserError(f"unknown dataset '{name}' (known: {', '.join(ARCHIVES)})") from None


def downloads_dir() -> Path:
    """Where archives are downloaded: ``<samic home>/downloads`` (not created here)."""
    return samic_home() / "downloads"


def default_root() -> Path:
    """Where datasets are unpacked by default: ``<samic home>/datasets`` (not created here)."""
    return samic_home() / "datasets"


def dataset_dir(name: str, root: str | os.PathLike[str] | None = None) -> Path:
    """The folder dataset ``name`` is (or will be) unpacked into: ``<root>/<folder>``."""
    folder = Path(root).expanduser() if root is not None else default_root()
    entry = get_archive(name)
    return folder / (entry.folder or entry.name)


def require_root(root: str | os.PathLike[str]) -> Path:
    """``root`` (``~`` expanded) where it is an existing folder of datasets.

    Raises:
        UserError: naming ``root`` and the flag, when it is no folder.
    """
    root = Path(root).expanduser()
    if not root.is_dir():
        raise UserError(f"{root}: folder not found; pass the `root` the archives went to")
    return root


def check_required(tree: Path, required: Sequence[str]) -> dict[str, int]:
    """Check that ``tree`` is a folder holding something and every ``required`` path (a
    folder: not empty); returns the number of entries of each required folder (files: 1).

    Raises:
        UserError: the first missing path, relative to ``tree``.
    """
    if not tree.is_dir():
        raise UserError("it is not a folder")
    if not any(tree.iterdir()):
        raise UserError("the folder is empty")
    counts: dict[str, int] = {}
    for name in required:
        path = tree / name
        if path.is_dir():
            counts[name] = sum(1 for _ in path.iterdir())
            if not counts[name]:
                raise UserError(f"{name}/ is empty")
        elif path.is_file():
            counts[name] = 1
        else:
            raise UserError(f"{name} not found")
    return counts


def check_unpacked(entry: DatasetArchive, tree: Path) -> dict[str, int]:
    """Check ``entry``'s unpacked ``tree``: a DAVIS root by :func:`check_tree`, another by
    :func:`check_required`; returns what was counted."""
    if entry.year is not None:
        return check_tree(tree, entry.year, entry.splits)
    return check_required(tree, entry.required)


def check_tree(tree: Path, year: str, splits: Sequence[str]) -> dict[str, int]:
    """Check an unpacked DAVIS tree; returns the number of sequences of each split.

    Every sequence of each ImageSets list must have a folder of ``.jpg`` frames and a folder of
    ``.png`` annotations holding one annotation per frame (same file stems).

    Raises:
        UserError: the first problem, naming the sequence; paths are relative to ``tree``.
    """
    counts: dict[str, int] = {}
    try:
        for split in splits:
            dataset = DavisDataset(tree, year, split, RESOLUTION)
            for sequence in dataset.sequences:
                frames = [p.stem for p in dataset.frame_paths(sequence)]
                annotations = [p.stem for p in dataset.annotation_paths(sequence)]
                if frames != annotations:
                    raise UserError(
                        f"sequence '{sequence}' ({split}) has {len(frames)} frames but "
                        f"{len(annotations)} annotations, not one per frame"
                    )
            counts[split] = len(dataset.sequences)
    except UserError as err:
        raise UserError(str(err).replace(f"{tree}{os.sep}", "")) from err
    return counts


def ensure_dataset(
    name: str, root: str | os.PathLike[str] | None = None, *, keep_archive: bool = False
) -> Path:
    """The unpacked, checked folder of dataset ``name`` (a DAVIS root), downloaded if needed.

    ``root``: the folder datasets are unpacked into (default :func:`default_root`); the
    dataset is ``<root>/<name>``. A folder already there is checked and returned. Otherwise the
    archive is downloaded (resuming a partial download), unpacked atomically and checked (see
    the module docstring); ``keep_archive`` keeps the archive in :func:`downloads_dir`
    afterwards (default: deleted once the tree is in place).

    Raises:
        UserError: unknown name, an incomplete folder already at ``<root>/<name>``, the download
            failed (the partial file is kept for the next call), or the archive is corrupt
            (removed).
    """
    entry = get_archive(name)
    target = dataset_dir(name, root)
    if target.exists():
        return _check_existing(entry, target)
    check_writable_dir(target.parent, "pass another `root`")
    check_writable_dir(downloads_dir(), "set SAMIC_VOS_HOME to a writable folder")
    # A failed run leaves no empty folder behind (the partial download stays, to resume).
    with removing_new_folders(target.parent), removing_new_folders(downloads_dir()):
        return _download_and_unpack(entry, target, keep_archive)


def _download_and_unpack(entry: DatasetArchive, target: Path, keep_archive: bool) -> Path:
    """:func:`ensure_dataset` once its places are checked."""
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        downloads_dir().mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise UserError(
            f"cannot create {target.parent} or {downloads_dir()} ({describe_error(err)}); pass "
            "another `root`, or set SAMIC_VOS_HOME to a writable folder"
        ) from err
    with download_lock(target):
        if target.exists():  # another process just finished it
            return _check_existing(entry, target)
        for stale in target.parent.glob(f".{entry.name}.unpacking-*"):
            shutil.rmtree(stale, ignore_errors=True)  # left by a killed unpack
        archive = downloads_dir() / entry.filename
        # Held until the archive is unpacked and deleted: another root's download of the same
        # archive waits, and never unpacks a file deleted under it.
        with download_lock(archive):
            _download(entry, archive)
            counts = _unpack(entry, archive, target)
            if not keep_archive:
                archive.unlink()
    listed = ", ".join(f"{n} {part}" for part, n in counts.items())
    log.info(f"{entry.name}: checked ({listed or 'not empty'}), in {target}")
    return target


def _check_existing(entry: DatasetArchive, target: Path) -> Path:
    try:
        check_unpacked(entry, target)
    except UserError as err:
        raise UserError(
            f"{target}: not a complete {entry.name} ({err}); remove the folder and download it "
            "again, or pass another `root`"
        ) from err
    return target


def _download(entry: DatasetArchive, final: Path) -> None:
    """Download ``entry``'s archive to ``final`` (resumable) unless it is there, and verify size
    and hash; the caller holds ``final``'s download lock."""
    part = final.with_name(final.name + ".part")
    fix = f"download {entry.url} yourself into {downloads_dir()}"
    refuse_folder(final)
    if not final.is_file():
        if entry.size is not None:
            have = part.stat().st_size if part.is_file() else 0
            check_free_space(final.parent, entry.size - have, entry.filename, fix)
        try:
            download_resumable(entry.url, part, entry.filename, entry.size)
        except (OSError, HTTPException, ValueError) as err:
            if isinstance(err, OSError) and (disk_error := write_error(part, err)) is not None:
                raise disk_error from err
            again = "run again to resume, or " if retry_may_help(err) else ""
            raise UserError(
                f"{entry.filename} could not be downloaded from {entry.url} "
                f"({describe_error(err)}); {again}{fix}"
            ) from err
        os.replace(part, final)
    problem = _archive_mismatch(final, entry)
    if problem is not None:
        final.unlink()
        raise UserError(
            f"{entry.filename} from {entry.url} is corrupt ({problem}); removed it: run "
            "again to download it anew"
        )


def _archive_mismatch(path: Path, entry: DatasetArchive) -> str | None:
    """Why ``path`` is not ``entry``'s published archive, or ``None`` (unknown: accepted)."""
    size = path.stat().st_size
    if entry.size is not None and size != entry.size:
        return f"{size} bytes, expected {entry.size}"
    if entry.sha256 is not None:
        digest = sha256_file(path, entry.filename)
        if digest != entry.sha256:
            return f"SHA-256 {digest[:12]}…, expected {entry.sha256[:12]}…"
    return None


class _CorruptArchive(Exception):
    """The archive is not what it should be (not a zip or tar, a damaged member, an
    inconsistent tree)."""


# How writing a member fails when its name cannot be a file on disk: a file and a folder of
# the same name (in the archive, or differing only in case on a case-insensitive disk), a name
# too long (for the disk: eCryptfs allows 143 bytes).
_MEMBER_NAME_ERRNOS = frozenset({errno.EEXIST, errno.ENOTDIR, errno.EISDIR, errno.ENAMETOOLONG})


@contextlib.contextmanager
def _unpack_errors(scratch: Path, fix: str, verified: bool) -> Iterator[None]:
    """Within the block, a member that cannot be written under its name (named relative to
    ``scratch``) is the disk's limit when the archive's checksum was ``verified`` (the official
    bytes: a :class:`UserError`, the archive kept), else a :class:`_CorruptArchive`; a full
    disk or a folder that is not writable is a :class:`UserError` on ``scratch``'s folder
    (``fix``: what to do)."""
    try:
        yield
    except OSError as err:
        if err.errno in _MEMBER_NAME_ERRNOS:
            member = os.path.relpath(err.filename, scratch) if err.filename else "a member"
            if verified:
                raise UserError(
                    f"{scratch.parent}: cannot unpack {member} ({err.strerror}): this disk "
                    "cannot hold the archive's names (too long, or differing only in case); "
                    f"{fix}"
                ) from err
            raise _CorruptArchive(f"cannot unpack {member}: {err.strerror}") from err
        disk_error = write_error(scratch.parent, err, fix)
        if disk_error is None:
            raise
        raise disk_error from err


def _unpack(entry: DatasetArchive, archive: Path, target: Path) -> dict[str, int]:
    """Unpack ``archive`` beside ``target``, check it, rename it into place; split counts.

    On any failure (and on Ctrl-C) the temporary folder is removed; a corrupt archive is
    removed too and refused with a :class:`UserError`.
    """
    scratch = Path(tempfile.mkdtemp(prefix=f".{entry.name}.unpacking-", dir=target.parent))
    try:
        try:
            counts = _extract_checked(entry, archive, scratch)
        except _CorruptArchive as err:
            archive.unlink()
            raise UserError(
                f"{entry.filename} from {entry.url} is corrupt or incomplete ({err}); removed "
                "it: run again to download it anew"
            ) from err
        os.rename(scratch / entry.top, target)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return counts


def _extract_checked(entry: DatasetArchive, archive: Path, scratch: Path) -> dict[str, int]:
    """Extract ``archive`` into ``scratch`` and check ``scratch/<top>``; what was counted.

    Raises:
        _CorruptArchive: the archive or its tree is damaged.
        UserError: not enough free space for the unpacked files, or the disk filled up.
    """
    fix = "pass another `root`, or set SAMIC_VOS_HOME to another disk"
    label = f"unpacking {entry.filename}"
    with _unpack_errors(scratch, fix, verified=entry.sha256 is not None):
        if entry.filename.endswith(".zip"):
            _extract_zip(archive, scratch, label, fix)
        else:
            _extract_tar(archive, scratch, label, fix)
    tree = scratch / entry.top
    if not tree.is_dir():
        raise _CorruptArchive(f"it holds no {entry.top}/ folder")
    try:
        return check_unpacked(entry, tree)
    except UserError as err:
        raise _CorruptArchive(str(err)) from err


def _extract_zip(archive: Path, scratch: Path, label: str, fix: str) -> None:
    from samic_vos.runtime.console import bar

    try:
        with zipfile.ZipFile(archive) as zf:
            members = zf.infolist()
            total = sum(m.file_size for m in members)
            check_free_space(scratch, total, label, fix)
            with bar(desc=label, total=total, unit="B", unit_scale=True, unit_divisor=1024) as pb:
                for member in members:
                    zf.extract(member, scratch)  # names are sanitised: never outside scratch
                    pb.update(member.file_size)
    except (zipfile.BadZipFile, zlib.error, EOFError) as err:
        raise _CorruptArchive(f"not a valid zip: {err}") from err
    except RuntimeError as err:  # encrypted, or compressed by a method zipfile lacks
        raise _CorruptArchive(f"cannot unpack it: {err}") from err


def _extract_tar(archive: Path, scratch: Path, label: str, fix: str) -> None:
    """A tar or tar.gz: members streamed once (a .tgz has no index); regular files and
    folders only, none outside ``scratch``. Free space is checked against the archive's size
    (the unpacked size of a .tgz is unknown before the end)."""
    from samic_vos.runtime.console import bar

    check_free_space(scratch, archive.stat().st_size, label, fix)
    try:
        with (
            tarfile.open(archive, "r:*") as tf,
            bar(desc=label, unit="B", unit_scale=True, unit_divisor=1024) as pb,
        ):
            for member in tf:
                name = Path(member.name)
                if name.is_absolute() or ".." in name.parts:
                    raise _CorruptArchive(f"member {member.name} points outside the archive")
                if member.isdir():
                    (scratch / name).mkdir(parents=True, exist_ok=True)
                elif member.isfile():
                    (scratch / name).parent.mkdir(parents=True, exist_ok=True)
                    source = tf.extractfile(member)
                    with source, open(scratch / name, "wb") as out:
                        shutil.copyfileobj(source, out, 1 << 20)
                    pb.update(member.size)
    except (tarfile.TarError, gzip.BadGzipFile, zlib.error, EOFError) as err:
        raise _CorruptArchive(f"not a valid tar: {err}") from err
