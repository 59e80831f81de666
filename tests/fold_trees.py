"""Tiny PASCAL-5i and COCO-20i trees written by tests, for the images HSNet's lists name.

Images are small textured JPEGs; each class an image holds in a list is one coloured square,
labelled with the class's value in the label map (PASCAL: ringed by a 2-pixel 255 band; one
more square of a class outside the fold in every image).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

import numpy as np
from PIL import Image

SIZE = (40, 52)  # (H, W) of every image
OUTSIDE = 20  # a VOC class value of no fold-0 class (tvmonitor), in every PASCAL label map


def _square(slot: int) -> tuple[slice, slice]:
    """Rows and columns of the ``slot``-th square (0..3), away from the borders."""
    row, col = 4 + 18 * (slot // 2), 4 + 24 * (slot % 2)
    return slice(row, row + 12), slice(col, col + 16)


def _picture(path: Path, seed: int) -> None:
    rng = np.random.default_rng(seed)
    rgb = rng.integers(0, 80, (*SIZE, 3), dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rgb).save(path)


def label_map(values: list[int], void: bool) -> np.ndarray:
    """``uint8 SIZE`` label map: value ``values[k]`` on square ``k``; with ``void``, a 2-pixel
    255 band around each square and one square of :data:`OUTSIDE`."""
    labels = np.zeros(SIZE, dtype=np.uint8)
    for slot, value in enumerate(values):
        rows, cols = _square(slot)
        if void:
            labels[rows.start - 2 : rows.stop + 2, cols.start - 2 : cols.stop + 2] = 255
        labels[rows, cols] = value
    if void:
        rows, cols = _square(3)
        labels[rows, cols] = OUTSIDE
    return labels


def _classes_of(entries: Iterable[tuple[str, int]]) -> dict[str, list[int]]:
    """Per image name, the label values (class index + 1) it holds, in list order."""
    found: dict[str, list[int]] = {}
    for name, class_index in entries:
        found.setdefault(name, []).append(class_index + 1)
    return found


def pascal_tree(root: Path, fold: int = 0) -> Path:
    """``root/VOC2012`` with every image of HSNet's val list of ``fold`` and its label map."""
    from samic_vos.data.fold_sets import read_split_list

    voc = root / "VOC2012"
    found = _classes_of(read_split_list("pascal5i", "val", fold))
    for seed, (name, values) in enumerate(found.items()):
        _picture(voc / "JPEGImages" / f"{name}.jpg", seed)
        write_labels(voc / "SegmentationClassAug" / f"{name}.png", label_map(values, void=True))
    return root


def write_labels(path: Path, labels: np.ndarray) -> None:
    """``labels`` (uint8 (H, W)) as a grayscale PNG, as SBD's SegmentationClassAug saves them."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(labels, mode="L").save(path)


def coco_tree(root: Path, names: Iterable[str], fold: int = 0, masks: str = "png") -> Path:
    """``root/COCO2014`` with the images ``names`` (stems) of HSNet's val list of ``fold``:
    HSNet's semantic PNGs (``masks="png"``) or an instances JSON (``"json"``, category ids
    ``2k + 1`` so that HSNet's index is the rank of the id, not the id)."""
    from samic_vos.data.coco import COCO_CLASSES
    from samic_vos.data.fold_sets import read_split_list

    coco = root / "COCO2014"
    (coco / "annotations").mkdir(parents=True, exist_ok=True)
    wanted = set(names)
    found = {
        n: v for n, v in _classes_of(read_split_list("coco20i", "val", fold)).items() if n in wanted
    }
    images, annotations = [], []
    for seed, (name, values) in enumerate(found.items()):
        _picture(coco / "val2014" / f"{name}.jpg", seed)
        if masks == "png":
            write_labels(coco / "annotations/val2014" / f"{name}.png", label_map(values, False))
            continue
        images.append({"id": seed, "file_name": f"{name}.jpg", "height": SIZE[0], "width": SIZE[1]})
        for slot, value in enumerate(values):
            rows, cols = _square(slot)
            x0, y0, x1, y1 = cols.start, rows.start, cols.stop, rows.stop
            polygon = [x0, y0, x1, y0, x1, y1, x0, y1]
            category = 2 * (value - 1) + 1
            annotations.append(
                {"id": len(annotations), "image_id": seed, "category_id": category,
                 "segmentation": [polygon], "iscrowd": 0}
            )  # fmt: skip
    if masks == "json":
        categories = [
            {"id": 2 * k + 1, "name": n.replace("_", " ")} for k, n in enumerate(COCO_CLASSES)
        ]
        document = {"images": images, "annotations": annotations, "categories": categories}
        (coco / "annotations/instances_val2014.json").write_text(json.dumps(document))
    return root
