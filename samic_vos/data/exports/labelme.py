"""LabelMe JSON: ``<name>.json`` per image, each object's outlines as ``polygon`` shapes.

A file holds ``version``, ``flags``, ``shapes`` (``label``: the category's name, ``points``:
(x, y) pixels, ``group_id``: the object's id, so an object in several parts stays one object,
``shape_type`` ``polygon``, ``flags``, ``description``), ``imagePath`` (the image relative to
the JSON's folder where it is a file; a frame of a video file, which is none, is written beside
the JSON as ``<name>.png`` (:func:`write_image`) where the video is still in place; else the
source's name of it), ``imageData`` null (LabelMe then opens ``imagePath``), ``imageHeight``
and ``imageWidth``.

Points are (x, y) pixel indices of each outline's boundary pixels (:func:`mask_polygons`),
the convention of LabelMe's own rasteriser (``labelme.utils.shape_to_mask``, Pillow's filled
and outlined polygon), which draws the object's pixels back exactly, holes filled.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from samic_vos.data.exports.images import MissingImages, write_image
from samic_vos.data.exports.polygons import mask_polygons
from samic_vos.data.exports.sources import ExportSource
from samic_vos.runtime.atomic import atomic_write_text

LABELME_VERSION = "5.5.0"  # the LabelMe release whose file layout this writes


def write_labelme(source: ExportSource, out_dir: Path) -> Path:
    """Write ``out_dir/<name>.json`` per image; returns ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    missing = MissingImages()
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
        if item.image is not None:
            image = os.path.relpath(item.image.resolve(), out_dir.resolve())
        else:
            frame = missing.add(item, write_image(item, out_dir / item.name))
            image = frame.name if frame is not None else item.file_name
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
    missing.report(out_dir)
    return out_dir
