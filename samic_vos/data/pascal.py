"""PASCAL-5i as HSNet tests it (``juhongm999/hsnet``, ``data/pascal.py``).

Layout: ``ROOT/JPEGImages/<name>.jpg`` and ``ROOT/SegmentationClassAug/<name>.png`` (VOC2012
with the SBD-augmented label maps: 0 background, ``c + 1`` VOC class ``c``, 255 the boundary
band), or the same under ``ROOT/VOC2012/`` (HSNet's ``datapath``).

The 20 VOC classes (:data:`PASCAL_CLASSES`) are cut into 4 folds of 5 contiguous classes
(fold F: classes ``5F .. 5F+4``, HSNet's ``build_class_ids``); fold F is tested on HSNet's list
``val/foldF.txt`` (``samic_vos/data/splits/pascal5i/val_foldF.txt``). A mask is the pixels of its
entry's class; pixels of other classes are background and the 255 band is void (left out of
every area, :meth:`Pascal5iDataset.read_void`), as HSNet's ``extract_ignore_idx`` and
``Evaluator.classify_prediction`` treat them.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from samic_vos.data.fewshot_sets import FewShotItem
from samic_vos.data.fold_sets import (
    VOID_LABEL,
    FoldDataset,
    check_fold,
    find_layout,
    read_label_map,
)
from samic_vos.runtime.errors import UserError

PASCAL_CLASSES = (
    "aeroplane",
    "bicycle",
    "bird",
    "boat",
    "bottle",
    "bus",
    "car",
    "cat",
    "chair",
    "cow",
    "diningtable",
    "dog",
    "horse",
    "motorbike",
    "person",
    "pottedplant",
    "sheep",
    "sofa",
    "train",
    "tvmonitor",
)
PASCAL_SPLITS = ("val", "train")  # HSNet's val and trn lists
IMAGES, MASKS = "JPEGImages", "SegmentationClassAug"


def pascal_fold_classes(fold: int) -> list[int]:
    """HSNet's class indices of fold ``fold``: ``[5F, 5F+1, ..., 5F+4]``."""
    per_fold = len(PASCAL_CLASSES) // 4
    return [fold * per_fold + k for k in range(per_fold)]


class Pascal5iDataset(FoldDataset):
    """One fold of PASCAL-5i: the images of HSNet's list of the fold and their label maps.

    ``split``: ``val`` (HSNet's test list of the fold) or ``train`` (HSNet's ``trn`` list of
    the fold: training images of the fold's own classes; HSNet trains fold F on the other
    three folds' lists).
    """

    kind = "pascal5i"
    class_names = PASCAL_CLASSES

    def __init__(self, root: str | os.PathLike[str], fold: int = 0, split: str = "val") -> None:
        root = Path(root)
        check_fold(fold, "PASCAL-5i")
        if split not in PASCAL_SPLITS:
            raise UserError(f"unknown PASCAL-5i list '{split}': use one of val, train")
        voc = find_layout(
            root,
            "VOC2012",
            (IMAGES, MASKS),
            f"a PASCAL VOC2012 folder holding {IMAGES}/ and {MASKS}/ (the SBD-augmented masks), "
            "or the folder above it holding VOC2012/",
        )

        def files(name: str) -> tuple[Path, Path]:
            return voc / IMAGES / f"{name}.jpg", voc / MASKS / f"{name}.png"

        super().__init__(voc, fold, pascal_fold_classes(fold), split, files)

    def read_void(self, item: FewShotItem) -> np.ndarray | None:
        """``bool (H, W)``: the 255 boundary band, left out of every area."""
        return read_label_map(item.mask) == VOID_LABEL
