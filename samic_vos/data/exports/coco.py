"""COCO instance JSON (``coco.json``) with RLE masks, written as the images stream by.

One ``images`` entry per image (``id`` from 1 in source order, ``file_name``, ``height``,
``width``; the frames of a video also ``video`` and ``frame_index``, as SA-V and YouTube-VIS
style JSON name them), one ``annotations`` entry per object (``segmentation``: the object's
pixels as COCO's compressed RLE, pycocotools' own encoding; ``area``, ``bbox`` [x, y, w, h] in
pixels, ``iscrowd`` 0, ``score``: SAM's confidence where known), ``categories`` as the source
names them. The file is written atomically; only one image's mask is held at a time (the
annotations wait in a temporary file until the images are written).
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from pycocotools import mask as mask_utils

from samic_vos.data.exports.sources import ExportObject, ExportSource
from samic_vos.runtime.atomic import atomic_path

COCO_FILE = "coco.json"


def rle_annotation(ids: np.ndarray, obj: ExportObject) -> dict[str, Any] | None:
    """The COCO annotation of ``obj`` in (H, W) uint8 ``ids`` (without ``id``/``image_id``);
    ``None`` when the object has no pixel."""
    pixels = np.asfortranarray((ids == obj.id).astype(np.uint8))
    if not pixels.any():
        return None
    rle = mask_utils.encode(pixels)
    annotation: dict[str, Any] = {
        "category_id": obj.category,
        "segmentation": {"size": list(rle["size"]), "counts": rle["counts"].decode("ascii")},
        "area": int(mask_utils.area(rle)),
        "bbox": [float(v) for v in mask_utils.toBbox(rle)],
        "iscrowd": 0,
    }
    if obj.score is not None:
        annotation["score"] = float(obj.score)
    return annotation


def write_coco(source: ExportSource, out_dir: Path) -> Path:
    """Write ``out_dir/coco.json`` from ``source``; returns its path."""
    path = out_dir / COCO_FILE
    with (
        atomic_path(path) as tmp,
        open(tmp, "w", encoding="utf-8") as out,
        tempfile.TemporaryFile("w+", encoding="utf-8", dir=out_dir) as annotations,
    ):
        out.write('{"info": {"description": "samic-vos"}, "images": [')
        count = 0
        for image_id, item in enumerate(source.items(), 1):
            height, width = item.ids.shape
            entry: dict[str, Any] = {
                "id": image_id,
                "file_name": item.file_name,
                "height": int(height),
                "width": int(width),
            }
            if item.video is not None:
                entry.update(video=item.video, frame_index=item.frame_index)
            out.write(("" if image_id == 1 else ", ") + json.dumps(entry))
            for obj in item.objects:
                annotation = rle_annotation(item.ids, obj)
                if annotation is None:
                    continue
                count += 1
                record = {"id": count, "image_id": image_id, **annotation}
                annotations.write(("" if count == 1 else ", ") + json.dumps(record))
        out.write('], "annotations": [')
        annotations.seek(0)
        shutil.copyfileobj(annotations, out)
        categories = [{"id": k, "name": v} for k, v in source.categories.items()]
        out.write('], "categories": ' + json.dumps(categories) + "}\n")
    return path
