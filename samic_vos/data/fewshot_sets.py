"""Few-shot image datasets: FSS-1000, PerSeg, plain image/mask folders and SAMBOX folders.

Every reader is a :class:`FewShotDataset`: a list of class names and, per class, its labelled
images (:class:`FewShotItem`, image path + mask path) in natural file-name order (``2`` before
``10``). :meth:`FewShotDataset.read_mask` turns an item's mask file into a ``bool`` array of
shape ``(H, W)`` (row, column; ``True`` = the class), with the rule of that dataset's reference
toolkit, and :meth:`FewShotDataset.load` reads image and mask together and checks their sizes.

Layouts (``ROOT`` is the folder passed in):

- ``fss1000``: ``ROOT/<class>/<n>.jpg`` with mask ``<n>.png`` (or ``ROOT/FSS-1000/<class>/``,
  HSNet's ``datapath``); masks are read as grayscale (Pillow ``L``) and values ``>= 128`` are
  foreground, as HSNet's ``data/fss.py`` reads them. The split (``train``/``val``/``test``,
  520/240/240 classes) is HSNet's class list (``data/splits/fss/{trn,val,test}.txt``), shipped in
  ``samic_vos/data/splits/fss1000/``; classes are sorted by name, as HSNet sorts them.
- ``perseg``: ``ROOT/Images/<object>/NN.jpg`` and ``ROOT/Annotations/<object>/NN.png``; the
  reference is ``00`` (:data:`PERSEG_REFERENCE`); masks: grayscale ``> 0`` is foreground, as
  PerSAM's ``eval_miou.py`` reads them.
- ``folder``: ``ROOT/images/<class>/<name>.<jpg|jpeg|png>`` and ``ROOT/masks/<class>/<name>.png``
  (images directly in ``ROOT/images/`` form one class named after ``ROOT``); masks as
  :func:`samic_vos.data.mask_io.read_mask` reads them (palette, binary grayscale), every object id
  is foreground (void 255 is not).
- ``sambox``: the ``*.sambox.json`` annotations under ``ROOT``
  (:func:`samic_vos.data.sambox_format.find_annotations`); every object with a saved ``mask`` is an
  part of the class named by its ``label`` (objects without a label: ``id<N>``), the objects
  of one label in one image forming one item (their union); an object's pixels are its id in a
  palette mask, or non-zero in a binary one. Objects without a saved mask carry points only
  and are not items.

Each reader checks its tree when opened and raises a one-line
:class:`~samic_vos.runtime.errors.UserError` naming the first inconsistent file or folder.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np
from PIL import Image

from samic_vos.data.davis import read_image, upright_size
from samic_vos.data.frame_source import IMAGE_SUFFIXES, image_files
from samic_vos.data.mask_io import VOID_ID, read_mask
from samic_vos.data.names import FEWSHOT_KINDS, FSS_SPLITS
from samic_vos.data.sambox_format import find_annotations, natural_key, read_annotation
from samic_vos.runtime.errors import UserError
from samic_vos.runtime.input_paths import require_input

FSS_FOREGROUND = 128  # HSNet data/fss.py: grayscale mask values >= 128 are foreground
PERSEG_REFERENCE = "00"  # PerSAM's ref_idx: the one labelled image of each PerSeg object


@dataclass(frozen=True)
class FewShotItem:
    """One labelled image of a class: ``image`` and its ``mask`` file.

    ``parts``: ``(mask file, value)`` pairs whose union is the class: SAMBOX, every object of
    the class in the image (``mask`` is the first one's file); PASCAL-5i and COCO-20i, the
    label of the item's class in its label map. Empty when the dataset's own rule says which
    pixels of ``mask`` are foreground.
    """

    image: Path
    mask: Path
    parts: tuple[tuple[Path, int], ...] = ()

    @property
    def name(self) -> str:
        """The image's file name without its suffix (``"3"`` for ``.../3.jpg``)."""
        return self.image.stem


def _read_gray(path: Path) -> np.ndarray:
    """A mask file as Pillow grayscale ``L`` values, ``uint8`` ``(H, W)``."""
    return read_image(path, mode="L", what="mask")


def _sub_folders(folder: Path) -> list[Path]:
    """The sub-folders of ``folder`` (not hidden), natural order."""
    found = [p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")]
    return sorted(found, key=lambda p: natural_key(p.name))


def _require_dir(folder: Path, what: str) -> None:
    require_input(folder, "folder", kind="folder", detail=f"; {what}")


class FewShotDataset:
    """Classes and their labelled images; subclasses say how a tree is laid out and read.

    ``classes``: the class names in the dataset's order. ``kind``: one of
    :data:`~samic_vos.data.names.FEWSHOT_KINDS`. ``upright``: images are read with their EXIF
    orientation applied (SAMBOX's, annotated as shown), else as stored (the benchmarks', as
    their reference code reads them).
    """

    kind: str = ""
    upright: bool = False

    def __init__(self, root: Path, items: dict[str, list[FewShotItem]]) -> None:
        self.root = root
        self._items = items
        if not items:
            raise UserError(f"{root}: holds no class of labelled images")

    @property
    def classes(self) -> list[str]:
        """Class names, in the dataset's order."""
        return list(self._items)

    def items(self, class_name: str) -> list[FewShotItem]:
        """The labelled images of ``class_name``, natural file-name order."""
        if class_name not in self._items:
            raise UserError(f"unknown class '{class_name}' in {self.root} ({self.kind})")
        return list(self._items[class_name])

    def select(self, classes: Sequence[str]) -> FewShotDataset:
        """The same dataset with only ``classes`` (kept in the dataset's order).

        Raises :class:`UserError` naming the first class the dataset does not have.
        """
        for name in classes:
            self.items(name)
        subset = copy.copy(self)
        subset._items = {k: v for k, v in self._items.items() if k in set(classes)}
        return subset

    def __len__(self) -> int:
        """The number of labelled images over all classes."""
        return sum(len(v) for v in self._items.values())

    def read_mask(self, item: FewShotItem) -> np.ndarray:
        """The mask of ``item``: ``bool`` ``(H, W)``, ``True`` where the class is.

        This rule (the ``folder`` layout's): every object id of a palette or binary mask,
        void (255) excluded.
        """
        ids = read_mask(item.mask)
        return (ids > 0) & (ids != VOID_ID)

    def read_void(self, item: FewShotItem) -> np.ndarray | None:
        """``bool (H, W)``: the pixels of ``item`` left out of every score, or ``None`` (this
        rule: none; PASCAL-5i: its 255 boundary band)."""
        return None

    def mask_size(self, item: FewShotItem) -> tuple[int, int]:
        """``(H, W)`` of ``item``'s mask, from the file's header (nothing decoded)."""
        return header_size(item.mask, "mask")

    def image_size(self, item: FewShotItem) -> tuple[int, int]:
        """``(H, W)`` of ``item``'s image as :meth:`load` reads it, from the file's header."""
        return header_size(item.image, upright=self.upright)

    def load(self, item: FewShotItem) -> tuple[np.ndarray, np.ndarray]:
        """Image (``uint8`` RGB ``(H, W, 3)``) and mask (``bool`` ``(H, W)``) of ``item``.

        Raises :class:`UserError` naming the mask when the two sizes differ.
        """
        image, mask = read_image(item.image, upright=self.upright), self.read_mask(item)
        check_mask_size(item, mask.shape, image.shape[:2])
        return image, mask


def header_size(path: Path, what: str = "image", upright: bool = False) -> tuple[int, int]:
    """``(H, W)`` of the image file at ``path``, from its header (nothing decoded); ``upright``:
    as shown, its EXIF orientation applied (:func:`~samic_vos.data.davis.upright_size`).

    Raises :class:`UserError` naming the file (``what``: its role) when it cannot be read.
    """
    try:
        with Image.open(path) as image:
            return upright_size(image) if upright else (image.height, image.width)
    except (OSError, ValueError, Image.DecompressionBombError) as err:
        raise UserError(f"{path}: cannot read the {what} ({err})") from err


def check_mask_size(
    item: FewShotItem, mask_shape: tuple[int, ...], image_shape: tuple[int, ...]
) -> None:
    """Raise :class:`UserError` naming ``item.mask`` unless the two (H, W) shapes agree."""
    if tuple(mask_shape) != tuple(image_shape):
        (mask_h, mask_w), (image_h, image_w) = mask_shape, image_shape
        raise UserError(
            f"{item.mask}: mask is {mask_w}x{mask_h} but its image {item.image} is "
            f"{image_w}x{image_h}; masks have their image's size"
        )


def fss_split_classes(split: str) -> list[str]:
    """HSNet's FSS-1000 class list of ``split`` (``train``: 520, ``val``: 240, ``test``: 240),
    sorted by name as HSNet sorts it."""
    if split not in FSS_SPLITS:
        raise UserError(f"unknown FSS-1000 split '{split}': use one of {', '.join(FSS_SPLITS)}")
    text = (
        resources.files("samic_vos.data").joinpath(f"splits/fss1000/{split}.txt").read_text("utf-8")
    )
    return sorted(line for line in text.splitlines() if line)


class Fss1000Dataset(FewShotDataset):
    """One split of FSS-1000: ``<class>/<n>.jpg`` + ``<n>.png``; masks ``>= 128`` foreground."""

    kind = "fss1000"

    def __init__(self, root: str | os.PathLike[str], split: str = "test") -> None:
        root = Path(root)
        _require_dir(root, "pass the FSS-1000 folder that holds one folder per class")
        if (root / "FSS-1000").is_dir():
            root = root / "FSS-1000"
        self.split = split
        items: dict[str, list[FewShotItem]] = {}
        for name in fss_split_classes(split):
            folder = root / name
            _require_dir(
                folder,
                f"class '{name}' of the FSS-1000 {split} split is missing; complete the download",
            )
            images = image_files(folder, (".jpg",))
            if not images:
                raise UserError(f"{folder}: class folder holds no .jpg image")
            for image in images:
                if not image.with_suffix(".png").is_file():
                    raise UserError(
                        f"{image}: image has no mask {image.with_suffix('.png').name} beside it"
                    )
            items[name] = [FewShotItem(p, p.with_suffix(".png")) for p in images]
        super().__init__(root, items)

    def read_mask(self, item: FewShotItem) -> np.ndarray:
        """HSNet's rule: grayscale ``>= 128`` is foreground; ``bool`` ``(H, W)``."""
        return _read_gray(item.mask) >= FSS_FOREGROUND


def _pair_files(image_dir: Path, mask_dir: Path, suffixes: tuple[str, ...]) -> list[FewShotItem]:
    """Images of ``image_dir`` with the mask of the same stem (``.png``) in ``mask_dir``.

    Raises :class:`UserError` for the first image without a mask, mask without an image, or
    stem given by two images.
    """
    by_stem = {p.stem: p for p in image_files(image_dir, suffixes)}
    if not by_stem:
        raise UserError(f"{image_dir}: holds no image ({', '.join(suffixes)})")
    masks = {p.stem: p for p in image_files(mask_dir, (".png",))} if mask_dir.is_dir() else {}
    for stem, image in by_stem.items():
        if stem not in masks:
            raise UserError(f"{image}: image has no mask {mask_dir / (stem + '.png')}")
    for stem, mask in masks.items():
        if stem not in by_stem:
            raise UserError(f"{mask}: mask has no image of the same name in {image_dir}")
    return [FewShotItem(image, masks[stem]) for stem, image in by_stem.items()]


def _class_folders(
    image_root: Path, mask_root: Path, suffixes: tuple[str, ...], hint: str
) -> dict[str, list[FewShotItem]]:
    """One class per sub-folder of ``image_root``, paired with the same folder of ``mask_root``.

    Raises :class:`UserError` for a missing root (with ``hint``), a class without its mask
    folder, an unpaired file (:func:`_pair_files`) or a mask folder without images.
    """
    _require_dir(image_root, hint)
    _require_dir(mask_root, hint)
    items: dict[str, list[FewShotItem]] = {}
    for folder in _sub_folders(image_root):
        masks = mask_root / folder.name
        _require_dir(masks, f"class '{folder.name}' has images but no masks")
        items[folder.name] = _pair_files(folder, masks, suffixes)
    for folder in _sub_folders(mask_root):
        if folder.name not in items:
            raise UserError(f"{folder}: masks of a class with no folder in {image_root}")
    return items


class PerSegDataset(FewShotDataset):
    """PerSeg: ``Images/<object>/NN.jpg`` + ``Annotations/<object>/NN.png``; reference ``00``.

    Masks: grayscale ``> 0`` is foreground (PerSAM's ``eval_miou.py``).
    """

    kind = "perseg"

    def __init__(self, root: str | os.PathLike[str]) -> None:
        root = Path(root)
        hint = "pass the PerSeg folder that holds Images/ and Annotations/"
        items = _class_folders(root / "Images", root / "Annotations", (".jpg",), hint)
        for name, pairs in items.items():
            if not any(item.name == PERSEG_REFERENCE for item in pairs):
                raise UserError(
                    f"{root / 'Images' / name / (PERSEG_REFERENCE + '.jpg')}: reference image "
                    f"of object '{name}' not found; PerSeg's reference is {PERSEG_REFERENCE}"
                )
        super().__init__(root, items)

    def reference(self, class_name: str) -> FewShotItem:
        """The labelled reference (``00``) of ``class_name``."""
        return next(i for i in self.items(class_name) if i.name == PERSEG_REFERENCE)

    def targets(self, class_name: str) -> list[FewShotItem]:
        """Every image of ``class_name`` but the reference: PerSAM's scored targets."""
        return [i for i in self.items(class_name) if i.name != PERSEG_REFERENCE]

    def read_mask(self, item: FewShotItem) -> np.ndarray:
        """PerSAM's rule: grayscale ``> 0`` is foreground; ``bool`` ``(H, W)``."""
        return _read_gray(item.mask) > 0


class FolderDataset(FewShotDataset):
    """``images/<class>/<name>.<ext>`` + ``masks/<class>/<name>.png`` (or one flat class)."""

    kind = "folder"

    def __init__(self, root: str | os.PathLike[str]) -> None:
        root = Path(root)
        hint = "pass a folder holding images/ and masks/ (same names, masks .png)"
        items = _class_folders(root / "images", root / "masks", IMAGE_SUFFIXES, hint)
        if image_files(root / "images"):
            flat = _pair_files(root / "images", root / "masks", IMAGE_SUFFIXES)
            items = {root.resolve().name: flat, **items}
        super().__init__(root, items)


class SamboxDataset(FewShotDataset):
    """The SAMBOX annotations under a folder: objects with a saved mask, classes by label."""

    kind = "sambox"
    upright = True  # SAMBOX shows, annotates and sizes images upright

    def __init__(self, root: str | os.PathLike[str]) -> None:
        root = Path(root)
        items: dict[str, list[FewShotItem]] = {}
        for path in find_annotations(root):
            annotation = read_annotation(path)
            parts: dict[str, list[tuple[Path, int]]] = {}
            for obj in annotation.objects:
                mask = annotation.mask_path(obj)
                if mask is not None:
                    label = obj.label if obj.label is not None else f"id{obj.id}"
                    parts.setdefault(label, []).append((mask, obj.id))
            for label, found in parts.items():
                item = FewShotItem(annotation.image_path(), found[0][0], tuple(found))
                items.setdefault(label, []).append(item)
        if not items:
            raise UserError(
                f"{root}: no SAMBOX object with a saved mask (*.sambox.json 'mask'); "
                "save masks in SAMBOX"
            )
        super().__init__(root, {k: items[k] for k in sorted(items, key=natural_key)})

    def read_mask(self, item: FewShotItem) -> np.ndarray:
        """The union of the parts: each object's id in a palette mask, non-zero in a binary one."""
        parts = [sambox_object_mask(path, object_id) for path, object_id in item.parts]
        return np.logical_or.reduce(parts)  # one size: read_annotation checked every mask


def sambox_object_mask(path: Path, object_id: int) -> np.ndarray:
    """(H, W) bool pixels of SAMBOX object ``object_id`` in its saved mask PNG ``path``: its id
    in a palette mask, non-zero in a binary one."""
    ids = read_mask(path)  # checks the file first
    with Image.open(path) as image:
        return ids == object_id if image.mode == "P" else ids > 0


def open_fewshot(kind: str, root: str | os.PathLike[str], split: str = "test") -> FewShotDataset:
    """The reader of ``kind`` (one of :data:`~samic_vos.data.names.FEWSHOT_KINDS`) on ``root``;
    ``split`` for FSS-1000 only."""
    if kind == "fss1000":
        return Fss1000Dataset(root, split)
    readers = {"perseg": PerSegDataset, "folder": FolderDataset, "sambox": SamboxDataset}
    if kind not in readers:
        raise UserError(f"unknown few-shot dataset '{kind}': use one of {', '.join(FEWSHOT_KINDS)}")
    return readers[kind](root)
