"""YOLO segmentation labels (Ultralytics' YOLO-seg format).

``labels/<name>.txt``: one line per outline of an object, ``<class> x1 y1 x2 y2 ...``, the
class its 0-based index among the categories (sorted by id) and the points (x, y) divided by
the image's width and height (6 decimals); ``data.yaml``: ``names`` (index → category name).
An object in several parts gives one line per part (:func:`mask_polygons`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import yaml

from samic_vos.data.exports.polygons import mask_polygons
from samic_vos.data.exports.sources import ExportSource
from samic_vos.runtime.atomic import atomic_write_text

LABELS = "labels"


def write_yolo(source: ExportSource, out_dir: Path) -> Path:
    """Write ``out_dir/labels/<name>.txt`` and ``out_dir/data.yaml``; returns ``out_dir``."""
    index = {category: i for i, category in enumerate(source.categories)}
    (out_dir / LABELS).mkdir(parents=True, exist_ok=True)
    for item in source.items():
        height, width = item.ids.shape
        lines = []
        for obj in item.objects:
            for outline in mask_polygons(item.ids == obj.id):
                scaled = (outline / np.array([width, height])).reshape(-1)
                lines.append(" ".join([str(index[obj.category]), *(f"{v:.6f}" for v in scaled)]))
        atomic_write_text(out_dir / LABELS / f"{item.name}.txt", "".join(f"{x}\n" for x in lines))
    names = {i: source.categories[c] for c, i in index.items()}
    atomic_write_text(out_dir / "data.yaml", yaml.safe_dump({"names": names}, sort_keys=False))
    return out_dir
