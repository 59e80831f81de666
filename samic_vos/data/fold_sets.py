"""Few-shot datasets split into folds of classes, as HSNet tests them (PASCAL-5i, COCO-20i).

Such a dataset is one semantic-segmentation set whose classes are cut into 4 folds; fold F is
tested on images of its own classes, the network having been trained on the other folds. Its
test list (HSNet's, shipped in ``samic_vos/data/splits/<kind>/``) names ``(image, class)``
entries; an image holding two classes of a fold is one entry per class. The readers
(:mod:`samic_vos.data.pascal`, :mod:`samic_vos.data.coco`) turn the list into a
:class:`FoldDataset`: the fold's classes, and per class its entries in list order
(:meth:`FewShotDataset.items`), which is the order HSNet draws from.

Masks are label maps (one value per pixel: 0 background, ``c + 1`` HSNet's class ``c``, 255 the
void band of PASCAL's boundaries), read raw as :func:`read_label_map`; the mask of an item is
``label == value`` for the item's class (other classes are background), its void the pixels
:meth:`FoldDataset.read_void` names (PASCAL: 255; COCO: none).
"""

from __future__ import annotations

from collections.abc import Callable
from importlib import resources
from pathlib import Path

import numpy as np
from PIL import Image

from samic_vos.data.fewshot_sets import FewShotDataset, FewShotItem
from samic_vos.runtime.errors import UserError

FOLDS = (0, 1, 2, 3)  # HSNet's nfolds = 4
VOID_LABEL = 255  # HSNet's Evaluator.ignore_index: PASCAL's boundary band


def check_fold(fold: int, what: str) -> None:
    """Raise :class:`UserError` unless ``fold`` is one of :data:`FOLDS` (``what``: the set)."""
    if fold not in FOLDS:
        raise UserError(f"fold {fold} is out of range: {what} has folds 0, 1, 2 and 3")


def read_split_list(kind: str, split: str, fold: int) -> list[tuple[str, int]]:
    """The shipped list ``splits/<kind>/<split>_fold<fold>.txt``: ``(image name, class)`` per
    line ``<name>__<NN>``, in file order; ``class`` is HSNet's 0-based index ``NN - 1``."""
    path = f"splits/{kind}/{split}_fold{fold}.txt"
    text = resources.files("samic_vos.data").joinpath(path).read_text("utf-8")
    entries = []
    for line in text.splitlines():
        if line:
            name, _, number = line.rpartition("__")
            entries.append((name, int(number) - 1))
    return entries


def read_label_map(path: Path) -> np.ndarray:
    """The raw values of a label-map PNG (grayscale ``L`` or palette ``P``): ``uint8 (H, W)``.

    Palette PNGs give their indices, as HSNet's ``np.array(Image.open(path))`` does. Raises
    :class:`UserError` naming the file when it is missing, undecodable or of another mode.
    """
    if not path.is_file():
        raise UserError(f"{path}: mask file not found")
    try:
        with Image.open(path) as image:
            if image.mode not in ("L", "P"):
                raise UserError(
                    f"{path}: is a {image.mode} image; a label map is a grayscale or palette PNG "
                    "(0 background, c + 1 class c, 255 void)"
                )
            return np.asarray(image, dtype=np.uint8).copy()
    except OSError as err:
        raise UserError(f"{path}: cannot decode the mask image ({err})") from err


def find_layout(root: Path, parent: str, children: tuple[str, ...], hint: str) -> Path:
    """``root`` or ``root/parent``, whichever holds every folder of ``children``.

    Raises :class:`UserError` (``root`` and ``hint``, which says what was expected) otherwise.
    """
    if not root.is_dir():
        raise UserError(f"{root}: folder not found; pass {hint}")
    for folder in (root, root / parent):
        if all((folder / child).is_dir() for child in children):
            return folder
    raise UserError(f"{root}: not the expected layout; pass {hint}")


class FoldDataset(FewShotDataset):
    """The classes of one fold and their images, as a fold's test list names them.

    Attributes:
        fold: 0..3.
        class_names: every class of the set, HSNet's index order (``class_names[c]``: class
            ``c``, mask value ``c + 1``).
        fold_classes: HSNet's indices of the fold's classes, in HSNet's order.
        entries: ``(class name, item)`` of every list line, in list order (the query cycle of
            PASCAL-5i's test), whatever :meth:`select` keeps.
        pools: per class of the fold, its items in list order (the draws' population).
        list_file: the shipped list's name, for messages.
    """

    class_names: tuple[str, ...] = ()

    def __init__(
        self,
        root: Path,
        fold: int,
        fold_classes: list[int],
        split: str,
        files: Callable[[str], tuple[Path, Path]],
    ) -> None:
        """Read list ``<split>_fold<fold>.txt`` of the set: ``files`` gives a listed image
        name's ``(image path, label map path)`` under ``root``; ``fold_classes`` are the
        fold's HSNet indices. Raises :class:`UserError` when the list names another class."""
        self.fold, self.fold_classes, self.split = fold, fold_classes, split
        self.list_file = f"{self.kind} {split}_fold{fold}.txt"
        wanted = {c: self.class_names[c] for c in fold_classes}
        self.pools: dict[str, list[FewShotItem]] = {name: [] for name in wanted.values()}
        self.entries: list[tuple[str, FewShotItem]] = []
        for name, class_index in read_split_list(self.kind, split, fold):
            if class_index not in wanted:
                raise UserError(
                    f"{self.list_file}: names class {class_index + 1}, not one of fold {fold}"
                )
            image, mask = files(name)
            item = FewShotItem(image, mask, ((mask, class_index + 1),))
            self.entries.append((wanted[class_index], item))
            self.pools[wanted[class_index]].append(item)
        super().__init__(root, {name: items for name, items in self.pools.items() if items})

    def read_mask(self, item: FewShotItem) -> np.ndarray:
        """``bool (H, W)``: the pixels of the item's class (other classes and void are not)."""
        ((path, value),) = item.parts
        return read_label_map(path) == value
