"""LabelMe JSON: ``<name>.json`` per image, each object's outlines as ``polygon`` shapes.

A file holds ``version``, ``flags``, ``shapes`` (``label``: the category's name, ``points``:
(x, y) pixels, ``group_id``: the object's id, so an object in several parts stays one object,
``shape_type`` ``polygon``, ``flags``, ``description``), ``imagePath`` (the image relative to
the JSON's folder where it is known, else the source's name of it), ``imageData`` null,
``imageHeight`` and ``imageWidth``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from samic_vos.data.exports.polygons import mask_polygons
from samic_vos.data.exports.sources import ExportSource
from samic_vos.runtime.atomic import atomic_write_text

LABELME_VERSION = "5.5.0"  # the LabelMe release whose file layout this writes


def write_labelme(source: ExportSource, out_dir: Path) -> Path:
    """Write ``out_dir/<name>.json`` per image; returns ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    for item in source.items():
        height, width = item.ids.shape
        shapes: list[dict[str, Any]] = [
            {
                "label": source.categories[obj.category],
                "points": outline.tolist(),
                "group_id": obj.id,
                "description": "",
                "shape_type": "polygon",
                "flags": {},
            }
            for obj in item.objects
            for outline in mask_polygons(item.ids == obj.id)
        ]
        image = (
            os.path.relpath(item.image.resolve(), out_dir.resolve())
            if item.image is not None
            else item.file_name
        )
        document = {
            "version": LABELME_VERSION,
            "flags": {},
            "shapes": shapes,
            "imagePath": Path(image).as_posix(),
            "imageData": None,
            "imageHeight": int(height),
            "imageWidth": int(width),
        }
        atomic_write_text(out_dir / f"{item.name}.json", json.dumps(document, indent=1) + "\n")
    return out_dir
