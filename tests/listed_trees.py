"""Tiny Kvasir-SEG, NWPU VHR-10 and LabelMe trees written by tests.

Kvasir-SEG: every image of the shipped lists (880 + 120), a textured JPEG with a red square, and
its JPEG mask (255 on the square; all black for the names in ``empty``). NWPU VHR-10: the 650
positive images and a COCO JSON: image ``k`` holds class ``((k - 1) // 5) % 9`` (blocks of five,
as NWPU numbers its images class by class, so each class has test images); ``vehicle`` (class
9) only in train images; image ``005`` holds two instances of class 0 (union). LabelMe: six
annotated images of a ``landslide`` (polygon, rectangle or circle) and, on three, a ``road``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

import numpy as np
from fewshot_trees import textured
from PIL import Image

NWPU_CLASSES = (
    "airplane",
    "ship",
    "storage tank",
    "baseball diamond",
    "tennis court",
    "basketball court",
    "ground track field",
    "harbor",
    "bridge",
    "vehicle",
)
SIZE = (48, 64)


def kvasir_tree(root: Path, empty: Iterable[str] = ()) -> Path:
    """``root/Kvasir-SEG/{images,masks}/<name>.jpg`` for every listed name."""
    from samic_vos.data.listed_sets import read_names

    folder, empty = root / "Kvasir-SEG", set(empty)
    (folder / "masks").mkdir(parents=True, exist_ok=True)
    names = read_names("kvasir", "train") + read_names("kvasir", "val")
    for seed, name in enumerate(names):
        mask = textured(folder / "images" / f"{name}.jpg", seed, SIZE)
        if name in empty:
            mask[:] = 0
        Image.fromarray(mask).save(folder / "masks" / f"{name}.jpg", quality=100)
    return root


def nwpu_class(number: int) -> int:
    """The class image ``number`` (1..650) holds first."""
    return ((number - 1) // 5) % 9


def _box(slot: int) -> tuple[int, int, int, int]:
    """``(x0, y0, x1, y1)`` of square ``slot`` (0..2)."""
    x0, y0 = 4 + 20 * slot, 6 + 8 * slot
    return x0, y0, x0 + 14, y0 + 12


def nwpu_tree(root: Path) -> Path:
    """``root/positive image set/NNN.jpg`` (650) and ``root/annotations.json``."""
    images, annotations = [], []

    def add(image_id: int, category: int, slot: int) -> None:
        x0, y0, x1, y1 = _box(slot)
        polygon = [x0, y0, x1, y0, x1, y1, x0, y1]
        annotations.append(
            {"id": len(annotations), "image_id": image_id, "category_id": category + 1,
             "segmentation": [polygon], "iscrowd": 0, "bbox": [x0, y0, x1 - x0, y1 - y0]}
        )  # fmt: skip

    folder = root / "positive image set"
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for number in range(1, 651):
        name = f"{number:03d}.jpg"
        Image.fromarray(rng.integers(0, 90, (*SIZE, 3), dtype=np.uint8)).save(folder / name)
        images.append({"id": number, "file_name": name, "height": SIZE[0], "width": SIZE[1]})
        add(number, nwpu_class(number), 0)
        if number % 5 == 1 and number % 3 == 0:
            add(number, 9, 1)
        if number == 5:
            add(number, 0, 2)
    categories = [{"id": k + 1, "name": name} for k, name in enumerate(NWPU_CLASSES)]
    document = {"images": images, "annotations": annotations, "categories": categories}
    (root / "annotations.json").write_text(json.dumps(document))
    return root


def labelme_file(path: Path, image: str, shapes: list[dict], size: tuple[int, int] = SIZE) -> Path:
    """A LabelMe JSON at ``path`` for ``image`` (a file beside it) with ``shapes``."""
    document = {
        "version": "5.4.1",
        "flags": {},
        "shapes": shapes,
        "imagePath": image,
        "imageData": None,
        "imageHeight": size[0],
        "imageWidth": size[1],
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document))
    return path


def shape(label: str, points: list[list[float]], kind: str = "polygon") -> dict:
    """One LabelMe shape."""
    return {"label": label, "points": points, "group_id": None, "shape_type": kind, "flags": {}}


def labelme_tree(root: Path, test: Iterable[str] = ("site/4", "site/6")) -> Path:
    """``root/site/<k>.jpg`` + ``<k>.json`` (k = 1..6) and ``root/test.txt`` naming ``test``."""
    for k in range(1, 7):
        textured(root / "site" / f"{k}.jpg", 40 + k, SIZE)
        x0, y0 = 6 + 2 * k, 8 + k
        if k % 3 == 1:
            slide = shape("landslide", [[x0, y0], [x0 + 20, y0 + 14]], "rectangle")
        elif k % 3 == 2:
            slide = shape("landslide", [[x0 + 10, y0 + 8], [x0 + 10, y0 + 16]], "circle")
        else:
            slide = shape("landslide", [[x0, y0], [x0 + 22, y0], [x0 + 11, y0 + 18]])
        shapes = [slide, shape("landslide", [[50, 40]], "point")]
        if k % 2 == 0:
            shapes.append(shape("road", [[40, 2], [62, 2], [62, 10], [40, 10]]))
        labelme_file(root / "site" / f"{k}.json", f"{k}.jpg", shapes)
    (root / "test.txt").write_text("".join(f"{name}\n" for name in test))
    return root
