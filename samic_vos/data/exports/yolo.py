"""YOLO segmentation labels (Ultralytics' YOLO-seg format).

``labels/<name>.txt``: one line per outline of an object, ``<class> x1 y1 x2 y2 ...``, the
class its 0-based index among the categories (sorted by id) and the points: the centres of the
outline's boundary pixels (:func:`mask_polygons`) in normalised image coordinates, 0 and 1 the
image's left/top and right/bottom edges (pixel column c's centre is (c + 0.5) / width), 6
decimals. Ultralytics draws a label back by scaling the points to pixels, truncating them to
integers and filling the polygon (``polygon2mask``): truncation lands each point on its pixel,
so the object's pixels come back exactly, its holes filled (a polygon has no holes).
An object in several parts gives one line per part, a part of one or two pixels a degenerate
polygon of its pixels. ``images/<name>.<ext>``: each image (:func:`write_image`), where
Ultralytics looks for it (a label is ``labels/`` for ``images/`` and ``.txt`` for the image's
suffix); ``data.yaml``: ``train`` and ``val`` both ``images`` (relative to the file's folder,
as no ``path`` is given: split them as you wish) and ``names`` (index → category name).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import yaml

from samic_vos.data.exports.images import MissingImages, write_image
from samic_vos.data.exports.polygons import mask_polygons
from samic_vos.data.exports.sources import ExportSource
from samic_vos.runtime.atomic import atomic_write_text

LABELS, IMAGES = "labels", "images"


def write_yolo(source: ExportSource, out_dir: Path) -> Path:
    """Write ``out_dir/labels/<name>.txt``, ``out_dir/images/`` and ``out_dir/data.yaml``;
    returns ``out_dir``."""
    index = {category: i for i, category in enumerate(source.categories)}
    (out_dir / LABELS).mkdir(parents=True, exist_ok=True)
    (out_dir / IMAGES).mkdir(exist_ok=True)
    missing = MissingImages()
    for item in source.items():
        missing.add(item, write_image(item, out_dir / IMAGES / item.name))
        height, width = item.ids.shape
        lines = []
        for obj in item.objects:
            for outline in mask_polygons(item.ids == obj.id):
                scaled = ((outline + 0.5) / np.array([width, height])).reshape(-1)
                lines.append(" ".join([str(index[obj.category]), *(f"{v:.6f}" for v in scaled)]))
        atomic_write_text(out_dir / LABELS / f"{item.name}.txt", "".join(f"{x}\n" for x in lines))
    missing.report(out_dir / IMAGES)
    names = {i: source.categories[c] for c, i in index.items()}
    data = {"train": IMAGES, "val": IMAGES, "names": names}
    atomic_write_text(out_dir / "data.yaml", yaml.safe_dump(data, sort_keys=False))
    return out_dir
