"""The DAVIS dataset reader (DAVIS-2016 and DAVIS-2017 layouts).

A DAVIS root holds::

    JPEGImages/<resolution>/<sequence>/00000.jpg ...   frames
    Annotations/<resolution>/<sequence>/00000.png ...  ground-truth masks
    ImageSets/<year>/<split>.txt                       sequence names, one per line

with ``<resolution>`` ``480p`` or ``Full-Resolution``. Annotations are DAVIS-2017 indexed
palette PNGs (0 background, 1..K objects, 255 void) or the original DAVIS-2016 grayscale
masks (0/255). DAVIS-2016 (``year="2016"``) has one object per sequence: its masks are
binarised (value > 0 is the object).

Accepted variations: a root whose ``ImageSets`` holds a single year folder (e.g. a
DAVIS-2016 subset laid out like DAVIS-2017, with ``ImageSets/2016`` only) serves either year;
the original DAVIS-2016 lists (``ImageSets/480p/<split>.txt``, lines of frame/mask paths) are
read too, the sequence being the folder of each frame.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

import numpy as np

from samic_vos.data.indexed_png import read_ids
from samic_vos.data.mask_io import VOID_ID
from samic_vos.data.names import DEFAULT_YEAR, RESOLUTIONS, YEARS
from samic_vos.runtime.config import require, require_choice
from samic_vos.runtime.errors import UserError
from samic_vos.runtime.input_paths import require_input

if TYPE_CHECKING:  # Pillow is imported where a frame is read: scoring reads masks only
    from PIL import Image


def require_davis_root(root: str | os.PathLike[str] | None) -> None:
    """A given DAVIS root (``None``: not given) must be a folder; else one line saying so."""
    require_input(
        root,
        "DAVIS root",
        kind="folder",
        detail="; pass the folder that holds JPEGImages/, Annotations/ and ImageSets/",
    )


@dataclass
class DavisSelection:
    """Which part of a DAVIS root a job reads; the key ``davis:`` of every job's config.

    ``split`` is the ImageSets list (flag ``--set``); ``sequences`` a subset of it (``None``:
    the whole list).
    """

    year: str = DEFAULT_YEAR
    split: str = "val"
    resolution: str = RESOLUTIONS[0]
    sequences: list[str] | None = None

    def __post_init__(self) -> None:
        require_choice("year", self.year, YEARS)
        require(bool(self.split), "split", "the name of an ImageSets list (val, train)", self.split)
        require_choice("resolution", self.resolution, RESOLUTIONS)
        seqs = self.sequences
        require(seqs is None or len(seqs) > 0, "sequences", "a non-empty list of names", seqs)

    def open(self, root: str | os.PathLike[str]) -> DavisDataset:
        """The :class:`DavisDataset` of this selection under ``root``."""
        return DavisDataset(root, self.year, self.split, self.resolution)


# EXIF orientations (tag 0x0112) that turn an image a quarter: its shown width is its stored height.
_QUARTER_TURNS = frozenset({5, 6, 7, 8})
_ORIENTATION_TAG = 0x0112


def upright_size(image: Image.Image) -> tuple[int, int]:
    """``(H, W)`` of an opened image as viewers show it: its EXIF orientation applied (the
    header alone: nothing is decoded)."""
    width, height = image.size
    if image.getexif().get(_ORIENTATION_TAG) in _QUARTER_TURNS:
        return width, height
    return height, width


def read_image(
    path: str | os.PathLike[str],
    mode: str = "RGB",
    what: str = "image",
    luma: bool = False,
    upright: bool = False,
) -> np.ndarray:
    """Read a frame as ``uint8`` RGB, shape ``(H, W, 3)`` (row, column, channel); 16-bit
    grayscale keeps its top 8 bits (:func:`~samic_vos.data.frame_source.rgb_pixels`).

    ``mode``: another Pillow mode to convert to, e.g. ``"L"`` (grayscale, ``(H, W)``);
    ``what`` names the file in error messages. ``luma`` (with ``"L"``): a JPEG's grayscale as
    libjpeg decodes it, its luma alone, which is what OpenCV's ``IMREAD_GRAYSCALE`` reads
    (Pillow's ``draft("L")``), not Pillow's ``L`` of the decoded colours, which differs from
    it where a colour saturates; other formats are converted as without it. ``upright``: the
    EXIF orientation applied, as viewers and SAMBOX show the image (a phone's portrait photo);
    without it, the stored pixels, as the benchmarks' reference code reads them.
    """
    from PIL import Image, ImageOps

    from samic_vos.data.frame_source import rgb_pixels

    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: {what} file not found")
    try:
        with Image.open(path) as image:
            if luma:
                image.draft("L", image.size)  # JPEG: decode Y alone, at full size
            if upright:
                image = ImageOps.exif_transpose(image)
            if mode == "RGB":
                return rgb_pixels(image).copy()
            return np.asarray(image.convert(mode), dtype=np.uint8).copy()
    except (OSError, ValueError, Image.DecompressionBombError) as err:
        raise UserError(f"{path}: cannot decode the {what} ({err})") from err


def _sequence_names(list_file: Path) -> list[str]:
    """Sequence names of an ImageSets file, in file order, without repeats.

    A line is a sequence name (DAVIS-2017), or frame and mask paths such as
    ``/JPEGImages/480p/bear/00000.jpg /Annotations/480p/bear/00000.png`` (DAVIS-2016).
    """
    names: dict[str, None] = {}
    for line in list_file.read_text().splitlines():
        fields = line.split()
        if not fields:
            continue
        token = fields[0]
        names[PurePosixPath(token).parent.name if "/" in token else token] = None
    return list(names)


class DavisDataset:
    """One split of a DAVIS root: sequence names, frame and annotation files, masks.

    ``year``: ``"2016"`` (one object, binarised masks) or ``"2017"`` (ids 1..K, 255 void).
    ``split``: the ImageSets list, e.g. ``"train"`` or ``"val"``. ``resolution``: ``"480p"``
    or ``"Full-Resolution"``. Missing folders and files raise :class:`UserError` naming them.
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        year: str | int = "2017",
        split: str = "val",
        resolution: str = "480p",
    ) -> None:
        self.root = Path(root)
        self.year = str(year)
        self.split = split
        self.resolution = resolution
        if self.year not in YEARS:
            raise UserError(f"unknown DAVIS year '{year}': use 2016 or 2017")
        require_davis_root(self.root)
        self.image_dir = self._resolution_dir("JPEGImages")
        self.annotation_dir = self._resolution_dir("Annotations")
        self.list_file = self._find_list_file()
        self.sequences: list[str] = _sequence_names(self.list_file)
        if not self.sequences:
            raise UserError(f"{self.list_file}: lists no sequence")
        for sequence in self.sequences:
            for folder in (self.image_dir, self.annotation_dir):
                if not (folder / sequence).is_dir():
                    raise UserError(
                        f"{folder / sequence}: folder of sequence '{sequence}' (listed in "
                        f"{self.list_file}) not found; complete the DAVIS download or remove "
                        "the sequence from the list"
                    )
        self._annotation_paths: dict[str, list[Path]] = {}

    def _resolution_dir(self, kind: str) -> Path:
        folder = self.root / kind / self.resolution
        if folder.is_dir():
            return folder
        parent = self.root / kind
        if not parent.is_dir():
            raise UserError(
                f"{self.root}: not a DAVIS root ({kind}/ is missing); pass the folder that "
                "holds JPEGImages/, Annotations/ and ImageSets/"
            )
        found = sorted(p.name for p in parent.iterdir() if p.is_dir())
        hint = f"resolutions found: {', '.join(found)}" if found else f"{parent} is empty"
        raise UserError(f"{folder}: folder not found ({hint}); choose one of those resolutions")

    def _find_list_file(self) -> Path:
        sets = self.root / "ImageSets"
        if not sets.is_dir():
            raise UserError(
                f"{sets}: folder not found; a DAVIS root lists its sequences in "
                "ImageSets/<year>/<split>.txt"
            )
        folders = sorted(p for p in sets.iterdir() if p.is_dir())
        candidates = [sets / self.year, sets / self.resolution]
        if len(folders) == 1:
            candidates.append(folders[0])  # a root shipped with one year serves both
        for folder in candidates:
            path = folder / f"{self.split}.txt"
            if path.is_file():
                return path
        splits = sorted({p.stem for folder in candidates for p in folder.glob("*.txt")})
        wanted = sets / self.year / f"{self.split}.txt"
        if splits:
            raise UserError(
                f"{wanted}: sequence list of split '{self.split}' not found (splits available: "
                f"{', '.join(splits)}); pass one of those"
            )
        raise UserError(f"{wanted}: sequence list not found, nor any other list for {self.year}")

    def _require(self, sequence: str) -> None:
        if sequence not in self.sequences:
            shown = ", ".join(self.sequences[:8]) + (", ..." if len(self.sequences) > 8 else "")
            raise UserError(
                f"unknown sequence '{sequence}': not listed in {self.list_file} ({shown})"
            )

    def frame_paths(self, sequence: str) -> list[Path]:
        """The sequence's JPEG frames, sorted by name (= frame order)."""
        self._require(sequence)
        paths = sorted((self.image_dir / sequence).glob("*.jpg"))
        if not paths:
            raise UserError(f"{self.image_dir / sequence}: no .jpg frames")
        return paths

    def annotation_paths(self, sequence: str) -> list[Path]:
        """The sequence's ground-truth PNGs, sorted by name.

        DAVIS-2016 annotates every frame; DAVIS-2017 splits may annotate only some (the file
        stem is the frame name: ``00012.png`` annotates ``00012.jpg``).
        """
        self._require(sequence)
        if sequence not in self._annotation_paths:
            paths = sorted((self.annotation_dir / sequence).glob("*.png"))
            if not paths:
                raise UserError(f"{self.annotation_dir / sequence}: no .png annotations")
            self._annotation_paths[sequence] = paths
        return list(self._annotation_paths[sequence])

    def read_annotation(self, sequence: str, index: int) -> np.ndarray:
        """The ``index``-th annotation of :meth:`annotation_paths` as an id map.

        ``uint8``, shape ``(H, W)``. Year 2017: 0 background, 1..K objects, 255 void.
        Year 2016: 0/1 (every value > 0 is the object).
        """
        ids = read_ids(self.annotation_paths(sequence)[index])
        return (ids > 0).astype(np.uint8) if self.year == "2016" else ids

    def num_objects(self, sequence: str) -> int:
        """Number of objects: the largest id in the first annotation, void (255) ignored."""
        ids = self.read_annotation(sequence, 0)
        return int(ids[ids != VOID_ID].max(initial=0))


def copy_short_root(
    source: str | os.PathLike[str],
    dest: str | os.PathLike[str],
    sequences: list[str],
    frames: int,
    year: str = DEFAULT_YEAR,
    split: str = "val",
    resolution: str = "480p",
) -> Path:
    """A DAVIS root at ``dest`` of the first ``frames`` frames and annotations of ``sequences``
    of the root ``source`` (files copied), listed in ``ImageSets/<year>/<split>.txt``: a short
    set for quick runs, tests and benchmarks. Called again with another ``split``, it adds that
    split to ``dest``. Returns ``dest``."""
    source, dest = Path(source), Path(dest)
    for name in sequences:
        for kind, suffix in (("JPEGImages", "jpg"), ("Annotations", "png")):
            folder = dest / kind / resolution / name
            folder.mkdir(parents=True, exist_ok=True)
            for path in sorted((source / kind / resolution / name).glob(f"*.{suffix}"))[:frames]:
                shutil.copy(path, folder / path.name)
    (dest / "ImageSets" / year).mkdir(parents=True, exist_ok=True)
    (dest / "ImageSets" / year / f"{split}.txt").write_text("".join(f"{n}\n" for n in sequences))
    return dest
