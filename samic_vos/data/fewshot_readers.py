"""One opener per use for every few-shot layout: the images a test queries
(:func:`open_test_set`) and the images a training learns from (:func:`open_training_set`).

Training sets, per kind (the paper: SAMIC trains on 20% of each class's training images,
:mod:`samic_vos.training.fewshot_pairs`):

- ``fss1000``: the classes of an FSS-1000 split (``train``: HSNet's 520); ``perseg``,
  ``folder``: every class of the folder;
- ``kvasir``, ``nwpu-vhr10``, ``labelme``: the ``train`` list (:mod:`samic_vos.data.listed_sets`);
- ``pascal5i`` fold F: HSNet's ``trn`` lists of the three other folds (their 15 classes; fold
  F's 5 classes are never a training class: their pixels are background in the label maps);
- ``coco20i`` fold F: the 60 classes of the other folds, each with every ``train2014`` image
  that holds one of its annotations in COCO's ``annotations/instances_train2014.json`` (HSNet's
  training pickles are not shipped; this is the same rule, images holding the class, without
  HSNet's own filtering).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from samic_vos.data.coco import COCO_CLASSES, Coco20iDataset, CocoInstances, coco_fold_classes
from samic_vos.data.fewshot_sets import FewShotDataset, FewShotItem, open_fewshot
from samic_vos.data.fold_sets import FOLDS, FoldDataset, check_fold, find_layout
from samic_vos.data.labelme import LabelmeDataset
from samic_vos.data.listed_sets import KvasirDataset, ListedDataset, NwpuDataset
from samic_vos.data.names import FEWSHOT_KINDS, TEST_KINDS
from samic_vos.data.pascal import Pascal5iDataset
from samic_vos.runtime.errors import UserError

LISTED_READERS: dict[str, type[ListedDataset]] = {
    "kvasir": KvasirDataset,
    "nwpu-vhr10": NwpuDataset,
    "labelme": LabelmeDataset,
}
COCO_TRAIN_IMAGES = "train2014"
COCO_TRAIN_INSTANCES = Path("annotations") / "instances_train2014.json"


def open_test_set(
    kind: str, root: str | os.PathLike[str], *, split: str, fold: int, coco_masks: str
) -> FewShotDataset:
    """The test side of ``kind`` under ``root``: FSS-1000's ``split``, a fold's val list, a
    listed set's ``test`` list, or the whole folder."""
    if kind == "pascal5i":
        return Pascal5iDataset(root, fold)
    if kind == "coco20i":
        return Coco20iDataset(root, fold, coco_masks)
    if kind in LISTED_READERS:
        return LISTED_READERS[kind](root, "test")
    return open_fewshot(kind, root, split)


class PascalTrainSet(FewShotDataset):
    """PASCAL-5i's training classes of fold ``fold``: HSNet's ``trn`` lists of the other
    three folds, read as fold datasets read their label maps (``label == c + 1``)."""

    kind = "pascal5i"

    def __init__(self, root: str | os.PathLike[str], fold: int) -> None:
        check_fold(fold, "PASCAL-5i")
        parts = [Pascal5iDataset(root, other, "train") for other in FOLDS if other != fold]
        items = {name: part.items(name) for part in parts for name in part.classes}
        super().__init__(parts[0].root, items)

    read_mask = FoldDataset.read_mask


class CocoTrainSet(FewShotDataset):
    """COCO-20i's training classes of a fold from ``instances_train2014.json`` (module docs)."""

    kind = "coco20i"

    def __init__(self, root: str | os.PathLike[str], fold: int) -> None:
        check_fold(fold, "COCO-20i")
        coco = find_layout(
            Path(root),
            "COCO2014",
            (COCO_TRAIN_IMAGES, "annotations"),
            f"a COCO 2014 folder holding {COCO_TRAIN_IMAGES}/ and {COCO_TRAIN_INSTANCES}",
        )
        path = coco / COCO_TRAIN_INSTANCES
        if not path.is_file():
            raise UserError(f"{path}: not found; COCO-20i trains from COCO's train2014 instances")
        self.instances = CocoInstances(path)
        held_out = set(coco_fold_classes(fold))
        items: dict[str, list[FewShotItem]] = {
            COCO_CLASSES[c]: [] for c in range(len(COCO_CLASSES)) if c not in held_out
        }
        for name in sorted(self.instances.image_names()):
            image = coco / COCO_TRAIN_IMAGES / f"{name}.jpg"
            for c in sorted(self.instances.classes_of(name) - held_out):
                items[COCO_CLASSES[c]].append(FewShotItem(image, path, ((path, c + 1),)))
        super().__init__(coco, {k: v for k, v in items.items() if v})

    def read_mask(self, item: FewShotItem) -> np.ndarray:
        """``bool (H, W)``: the union of the image's annotations of the item's class."""
        ((_, value),) = item.parts
        return self.instances.class_mask(item.image.stem, value - 1)

    def mask_size(self, item: FewShotItem) -> tuple[int, int]:
        """``(H, W)`` of the item's image, from the JSON."""
        return self.instances.size(item.image.stem)


def open_training_set(
    kind: str, root: str | os.PathLike[str], *, fold: int = 0, fss_split: str = "train"
) -> FewShotDataset:
    """The training side of ``kind`` under ``root`` (module docs); ``fold`` for PASCAL-5i and
    COCO-20i (the fold held out), ``fss_split`` for FSS-1000."""
    if kind == "pascal5i":
        return PascalTrainSet(root, fold)
    if kind == "coco20i":
        return CocoTrainSet(root, fold)
    if kind in LISTED_READERS:
        return LISTED_READERS[kind](root, "train")
    if kind not in FEWSHOT_KINDS:
        raise UserError(f"unknown few-shot dataset '{kind}': use one of {', '.join(TEST_KINDS)}")
    return open_fewshot(kind, root, fss_split)
