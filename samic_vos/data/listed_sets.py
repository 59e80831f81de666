"""Few-shot sets split by image lists: Kvasir-SEG and NWPU VHR-10 (LabelMe folders likewise,
:mod:`samic_vos.data.labelme`).

Such a set names its images in two lists, ``train`` and ``test`` (:data:`LIST_SPLITS`); every
image holds one or more classes. A :class:`ListedDataset` opened on one split is the
:class:`~samic_vos.data.fewshot_sets.FewShotDataset` of that split (classes and, per class, the
listed images that hold it, in list order), and keeps the other split's items beside it
(:meth:`ListedDataset.split_items`): test episodes draw their supports from the train list or
from the test list (:mod:`samic_vos.data.fewshot_episodes`), training uses the train list only.

- ``kvasir`` (:class:`KvasirDataset`): ``ROOT/images/<name>.jpg`` + ``ROOT/masks/<name>.jpg``
  (or the same under ``ROOT/Kvasir-SEG/``); one class, ``polyp``; the official 880/120 lists
  (``train.txt``, ``val.txt``: our ``test`` is Kvasir's ``val``) shipped in
  ``samic_vos/data/splits/kvasir/``. Masks are JPEGs: grayscale ``/ 255 > 0.5`` is the polyp,
  as Jha et al.'s own code binarises them (``cv2.imread(..., GRAYSCALE) / 255``, then ``> 0.5``);
  the grayscale is the JPEG's luma as libjpeg decodes it (Pillow's ``draft("L")``, what OpenCV's
  ``GRAYSCALE`` reads), not Pillow's RGB-to-``L`` of the decoded colours, which differs where a
  colour saturates.
- ``nwpu-vhr10`` (:class:`NwpuDataset`): ``ROOT/positive image set/NNN.jpg`` (650 images) and
  Su et al.'s COCO-format instance masks ``ROOT/annotations.json`` (or the image folder under
  ``ROOT/NWPU VHR-10 dataset/``); 10 classes, the JSON's categories in id order (spaces written
  ``_``); the mask of a class is the union of its instances (pycocotools). There is no official
  split: ours (every fifth image a test image) is shipped in ``samic_vos/data/splits/nwpu-vhr10/``.

Every listed image must be there: a list naming a missing image is refused when the set is
opened, in one line naming the image and the list.
"""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path

import numpy as np

from samic_vos.data.coco import CocoInstances
from samic_vos.data.davis import read_image
from samic_vos.data.fewshot_sets import FewShotDataset, FewShotItem
from samic_vos.runtime.errors import UserError

LIST_SPLITS = ("train", "test")
KVASIR_CLASS = "polyp"
KVASIR_LISTS = {"train": "train", "test": "val"}  # our split -> the official list's name
KVASIR_THRESHOLD = 0.5  # Jha et al.: mask / 255 > 0.5 is the polyp
NWPU_IMAGES = "positive image set"
NWPU_ANNOTATIONS = "annotations.json"
NWPU_FOLDER = "NWPU VHR-10 dataset"  # the archive's folder, as torchgeo and others unpack it

Splits = dict[str, dict[str, list[FewShotItem]]]  # split -> class -> items


def read_names(kind: str, name: str) -> list[str]:
    """The shipped list ``splits/<kind>/<name>.txt``: one image name per line, file order."""
    text = resources.files("samic_vos.data").joinpath(f"splits/{kind}/{name}.txt").read_text()
    return [line.strip() for line in text.splitlines() if line.strip()]


def check_split(split: str, what: str) -> None:
    """Raise :class:`UserError` unless ``split`` is one of :data:`LIST_SPLITS`."""
    if split not in LIST_SPLITS:
        raise UserError(f"unknown {what} split '{split}': use train or test")


def require_listed(image: Path, list_file: str) -> None:
    """Raise :class:`UserError` naming ``image`` and the list that names it, unless it exists."""
    if not image.is_file():
        raise UserError(
            f"{image}: image not found, named by {list_file}; complete the dataset, or pass "
            "the folder that holds it"
        )


class ListedDataset(FewShotDataset):
    """One split of a set named by image lists; the other split's items are kept beside it.

    Attributes:
        split: ``train`` or ``test``: the split whose classes and items this dataset is.
        list_file: the list of ``split``, for messages.
        supports: where test episodes draw their supports by default (``train`` or ``test``).
    """

    supports = "test"

    def __init__(self, root: Path, split: str, splits: Splits, list_files: dict[str, str]) -> None:
        self.split, self._splits = split, splits
        self.list_files = list_files
        self.list_file = list_files[split]
        super().__init__(root, {k: v for k, v in splits[split].items() if v})

    def split_items(self, split: str, class_name: str) -> list[FewShotItem]:
        """The items of ``class_name`` in list ``split`` (empty when the list has none)."""
        return list(self._splits[split].get(class_name, []))


def _find_root(root: Path, parent: str, child: str, hint: str) -> Path:
    """``root`` or ``root/parent``, whichever holds folder ``child``; else a one-line error."""
    if not root.is_dir():
        raise UserError(f"{root}: folder not found; pass {hint}")
    for folder in (root, root / parent):
        if (folder / child).is_dir():
            return folder
    raise UserError(f"{root}: not the expected layout; pass {hint}")


class KvasirDataset(ListedDataset):
    """Kvasir-SEG: one class (``polyp``), the official train/val lists; JPEG masks binarised as
    Jha et al. binarise them."""

    kind = "kvasir"
    supports = "train"

    def __init__(self, root: str | os.PathLike[str], split: str = "test") -> None:
        check_split(split, "Kvasir-SEG")
        hint = "the Kvasir-SEG folder holding images/ and masks/"
        found = _find_root(Path(root), "Kvasir-SEG", "images", hint)
        if not (found / "masks").is_dir():
            raise UserError(f"{root}: not the expected layout; pass {hint}")
        splits: Splits = {}
        files: dict[str, str] = {}
        for ours, theirs in KVASIR_LISTS.items():
            files[ours] = f"kvasir {theirs}.txt"
            items = []
            for name in read_names("kvasir", theirs):
                image, mask = found / "images" / f"{name}.jpg", found / "masks" / f"{name}.jpg"
                item = FewShotItem(image, mask)
                require_listed(item.image, files[ours])
                require_listed(item.mask, files[ours])
                items.append(item)
            splits[ours] = {KVASIR_CLASS: items}
        super().__init__(found, split, splits, files)

    def read_mask(self, item: FewShotItem) -> np.ndarray:
        """Jha et al.'s rule: grayscale / 255 > 0.5 is the polyp; ``bool (H, W)``."""
        return read_image(item.mask, mode="L", what="mask", luma=True) / 255.0 > KVASIR_THRESHOLD


class NwpuDataset(ListedDataset):
    """NWPU VHR-10's positive images with Su et al.'s instance masks; classes: the JSON's
    categories; our train/test lists."""

    kind = "nwpu-vhr10"

    def __init__(self, root: str | os.PathLike[str], split: str = "test") -> None:
        check_split(split, "NWPU VHR-10")
        root = Path(root)
        hint = f"the NWPU VHR-10 folder holding '{NWPU_IMAGES}/' and {NWPU_ANNOTATIONS}"
        images = _find_root(root, NWPU_FOLDER, NWPU_IMAGES, hint) / NWPU_IMAGES
        candidates = [p / NWPU_ANNOTATIONS for p in (root, images.parent)]
        json_path = next((p for p in candidates if p.is_file()), None)
        if json_path is None:
            raise UserError(
                f"{root}: {NWPU_ANNOTATIONS} not found; put Su et al.'s instance masks "
                f"(COCO JSON) beside '{NWPU_IMAGES}/'"
            )
        self.instances = CocoInstances(json_path, None, "NWPU VHR-10 instances JSON")
        names = self.instances.class_names
        splits: Splits = {}
        files: dict[str, str] = {}
        for split_name in LIST_SPLITS:
            files[split_name] = f"nwpu-vhr10 {split_name}.txt"
            classes: dict[str, list[FewShotItem]] = {name: [] for name in names}
            for stem in read_names("nwpu-vhr10", split_name):
                image = images / f"{stem}.jpg"
                require_listed(image, files[split_name])
                for index in sorted(self.instances.classes_of(stem)):
                    item = FewShotItem(image, json_path, ((json_path, index + 1),))
                    classes[names[index]].append(item)
            splits[split_name] = classes
        super().__init__(images.parent, split, splits, files)

    def read_mask(self, item: FewShotItem) -> np.ndarray:
        """``bool (H, W)``: the union of the image's instances of the item's class."""
        ((_, value),) = item.parts
        return self.instances.class_mask(item.image.stem, value - 1)

    def mask_size(self, item: FewShotItem) -> tuple[int, int]:
        """``(H, W)`` of the item's image, from the JSON."""
        return self.instances.size(item.image.stem)
