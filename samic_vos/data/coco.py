"""COCO-20i as HSNet tests it (``juhongm999/hsnet``, ``data/coco.py``).

Layout: ``ROOT/val2014/<name>.jpg`` (COCO 2014 val images) and ``ROOT/annotations/``, or the same
under ``ROOT/COCO2014/`` (HSNet's ``datapath``). Masks come one of two ways (:data:`COCO_MASKS`):

- ``png``: HSNet's semantic label maps ``annotations/val2014/<name>.png`` (0 background,
  ``c + 1`` class ``c``); the mask of an entry is ``label == c + 1`` (other values, 255
  included, are background: HSNet's COCO has no void);
- ``json``: built from COCO's official ``annotations/instances_val2014.json`` with pycocotools:
  the mask of class ``c`` in an image is the union of every annotation of that category in the
  image, crowd regions included (:class:`CocoInstances`). HSNet's PNGs hold one class per pixel,
  so where instances of two classes overlap a PNG gives the pixel to one of them and the JSON
  route to both: the two routes differ there only.
- ``auto`` (default): ``png`` when ``annotations/val2014/`` exists, else ``json``.

HSNet's class ``c`` (0..79) is the ``c``-th COCO category in ascending category-id order
(:data:`COCO_CLASSES`, spaces written ``_``); fold F holds classes ``F, F+4, ..., F+76``
(HSNet's ``build_class_ids``: interleaved). Fold F is tested on HSNet's per-class lists
(``splits/coco/val/foldF.pkl``, shipped as text in ``samic_vos/data/splits/coco20i/``).
"""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from samic_vos.data.fewshot_sets import FewShotItem
from samic_vos.data.fold_sets import FoldDataset, check_fold, find_layout
from samic_vos.runtime.errors import UserError

COCO_CLASSES = tuple(
    name.replace(" ", "_")
    for name in (
        "person,bicycle,car,motorcycle,airplane,bus,train,truck,boat,traffic light,"
        "fire hydrant,stop sign,parking meter,bench,bird,cat,dog,horse,sheep,cow,elephant,bear,"
        "zebra,giraffe,backpack,umbrella,handbag,tie,suitcase,frisbee,skis,snowboard,"
        "sports ball,kite,baseball bat,baseball glove,skateboard,surfboard,tennis racket,"
        "bottle,wine glass,cup,fork,knife,spoon,bowl,banana,apple,sandwich,orange,broccoli,"
        "carrot,hot dog,pizza,donut,cake,chair,couch,potted plant,bed,dining table,toilet,tv,"
        "laptop,mouse,remote,keyboard,cell phone,microwave,oven,toaster,sink,refrigerator,"
        "book,clock,vase,scissors,teddy bear,hair drier,toothbrush"
    ).split(",")
)
COCO_MASKS = ("auto", "png", "json")
IMAGES = "val2014"
MASK_FOLDER = Path("annotations") / "val2014"
INSTANCES = Path("annotations") / "instances_val2014.json"


def coco_fold_classes(fold: int) -> list[int]:
    """HSNet's class indices of fold ``fold``: ``[F, F+4, ..., F+76]``."""
    return [fold + 4 * k for k in range(len(COCO_CLASSES) // 4)]


class CocoInstances:
    """A COCO-format instances JSON, indexed by image: class masks as :mod:`pycocotools` draws
    them.

    ``path``: the JSON (COCO's ``instances_val2014.json``, NWPU VHR-10's ``annotations.json``).
    Class ``c`` is the ``c``-th category in ascending id order (names with spaces written
    ``_``: :attr:`class_names`); ``categories``: the names they must be (``None``: any).
    ``what`` names the file's role in messages. Raises :class:`UserError` naming the file when
    it cannot be read or holds other categories.
    """

    def __init__(
        self,
        path: Path,
        categories: tuple[str, ...] | None = COCO_CLASSES,
        what: str = "COCO's instances JSON",
    ) -> None:
        try:
            with path.open("rb") as file:
                data = json.load(file)
            found = sorted(data["categories"], key=lambda c: c["id"])
            names = tuple(str(c["name"]).replace(" ", "_") for c in found)
            images = data["images"]
            annotations = data["annotations"]
            index = {c["id"]: k for k, c in enumerate(found)}
            self._images = {
                Path(image["file_name"]).stem: (image["id"], image["height"], image["width"])
                for image in images
            }
            self._annotations: dict[int, list[tuple[int, Any]]] = {}
            for ann in annotations:
                entry = (index[ann["category_id"]], ann["segmentation"])
                self._annotations.setdefault(ann["image_id"], []).append(entry)
        except (OSError, ValueError, KeyError, TypeError) as err:
            raise UserError(f"{path}: cannot read {what} ({err})") from err
        if categories is not None and names != categories:
            raise UserError(f"{path}: its categories are not COCO's 80 (got {len(names)})")
        self.path, self.what, self.class_names = path, what, names

    def _image(self, name: str) -> tuple[int, int, int]:
        if name not in self._images:
            raise UserError(
                f"{self.path}: holds no image {name}; pass the {self.what} of these images"
            )
        return self._images[name]

    def size(self, name: str) -> tuple[int, int]:
        """``(H, W)`` of image ``name`` (file name without its suffix), from the JSON."""
        _, height, width = self._image(name)
        return height, width

    def image_names(self) -> list[str]:
        """Every image's name (file name without its suffix), in the JSON's order."""
        return list(self._images)

    def classes_of(self, name: str) -> set[int]:
        """The classes (indices) that image ``name`` holds at least one annotation of."""
        image_id, _, _ = self._image(name)
        return {found for found, _ in self._annotations.get(image_id, [])}

    def class_mask(self, name: str, class_index: int) -> np.ndarray:
        """``bool (H, W)``: the union of image ``name``'s annotations of class ``class_index``
        (HSNet's index, 0..79): polygons, RLE and crowd RLE alike."""
        image_id, height, width = self._image(name)
        union = np.zeros((height, width), dtype=bool)
        for found, segmentation in self._annotations.get(image_id, []):
            if found == class_index:
                union |= self._decode(name, segmentation, height, width)
        return union

    def label_map(self, name: str) -> np.ndarray:
        """``uint8 (H, W)``: image ``name``'s semantic label map, 0 background and ``c + 1``
        HSNet's class ``c``: every annotation (crowd included) drawn in the JSON's order, a
        later one over an earlier one where they overlap."""
        image_id, height, width = self._image(name)
        labels = np.zeros((height, width), dtype=np.uint8)
        for found, segmentation in self._annotations.get(image_id, []):
            labels[self._decode(name, segmentation, height, width)] = found + 1
        return labels

    def _decode(self, name: str, segmentation: Any, height: int, width: int) -> np.ndarray:
        """``bool (H, W)``: one COCO segmentation of image ``name`` (polygons, RLE or
        uncompressed RLE) drawn as :mod:`pycocotools` draws it; one that pycocotools cannot
        draw (it fails on it: a malformed polygon or RLE) is a :class:`UserError`."""
        from pycocotools import mask as coco_mask

        try:
            if isinstance(segmentation, list):  # polygons: one RLE each, merged
                rle = coco_mask.merge(coco_mask.frPyObjects(segmentation, height, width))
            elif isinstance(segmentation.get("counts"), list):  # uncompressed RLE
                rle = coco_mask.frPyObjects(segmentation, height, width)
            else:
                rle = segmentation
            with warnings.catch_warnings():  # pycocotools' own numpy-2 notice, not ours
                warnings.filterwarnings("ignore", "__array__ implementation", DeprecationWarning)
                return coco_mask.decode(rle).astype(bool)
        except Exception as err:  # pycocotools raises TypeError, ValueError, Exception ...
            raise UserError(
                f"{self.path}: an annotation of image {name} has a segmentation pycocotools "
                f"cannot draw ({err}); fix or remove it"
            ) from None


class Coco20iDataset(FoldDataset):
    """One fold of COCO-20i: HSNet's per-class val lists of the fold, masks from its PNGs or
    from COCO's instances JSON (``masks``: one of :data:`COCO_MASKS`)."""

    kind = "coco20i"
    class_names = COCO_CLASSES

    def __init__(self, root: str | os.PathLike[str], fold: int = 0, masks: str = "auto") -> None:
        root = Path(root)
        check_fold(fold, "COCO-20i")
        if masks not in COCO_MASKS:
            choices = ", ".join(COCO_MASKS)
            raise UserError(f"unknown COCO mask source '{masks}': use one of {choices}")
        coco = find_layout(
            root,
            "COCO2014",
            (IMAGES, "annotations"),
            f"a COCO 2014 folder holding {IMAGES}/ and annotations/, or the folder above it "
            "holding COCO2014/",
        )
        if masks == "auto":
            masks = "png" if (coco / MASK_FOLDER).is_dir() else "json"
        source = coco / (MASK_FOLDER if masks == "png" else INSTANCES)
        if not source.exists():
            raise UserError(
                f"{source}: not found; COCO-20i masks are HSNet's PNGs in {MASK_FOLDER}/ or "
                f"COCO's {INSTANCES}"
            )
        self.masks = masks
        self._instances: CocoInstances | None = None

        def files(name: str) -> tuple[Path, Path]:
            mask = source / f"{name}.png" if masks == "png" else source
            return coco / IMAGES / f"{name}.jpg", mask

        super().__init__(coco, fold, coco_fold_classes(fold), "val", files)

    def instances(self) -> CocoInstances:
        """The instances JSON, read on first use (``json`` masks only)."""
        if self._instances is None:
            self._instances = CocoInstances(self.root / INSTANCES)
        return self._instances

    def read_mask(self, item: FewShotItem) -> np.ndarray:
        """``bool (H, W)``: the pixels of the item's class (PNG: ``label == c + 1``; JSON: the
        union of the class's annotations)."""
        if self.masks == "png":
            return super().read_mask(item)
        ((_, value),) = item.parts
        return self.instances().class_mask(item.image.stem, value - 1)

    def mask_size(self, item: FewShotItem) -> tuple[int, int]:
        """``(H, W)`` of the item's mask: the PNG's header, or the JSON's image size."""
        if self.masks == "png":
            return super().mask_size(item)
        return self.instances().size(item.image.stem)
