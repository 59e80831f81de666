"""COCO instance JSON (``coco.json``) with RLE or polygon masks, written as the images stream by.

One ``images`` entry per image (``id`` from 1 in source order, ``file_name``, ``height``,
``width``; the frames of a video also ``video`` and ``frame_index``, as SA-V and YouTube-VIS
style JSON name them), one ``annotations`` entry per object (``segmentation``: the object's
pixels as COCO's compressed RLE, pycocotools' own encoding, or with ``masks="polygons"`` one
polygon per connected part, :func:`~samic_vos.data.exports.polygons.coco_polygons`, holes
filled; ``area`` (its pixels), ``bbox`` [x, y, w, h] in pixels, ``iscrowd`` 0, ``score``:
SAM's confidence where known), ``categories`` as the source names them. The file is written
atomically; only one image's mask is held at a time (the annotations wait in a temporary file
until the images are written). A run can write each
image's record (:func:`coco_record`) as it finishes it and the file at the end
(:func:`write_coco_records`): the same bytes as :func:`write_coco` over the finished run. A
`track` collection keeps each finished video's records in ``<video>/coco.jsonl``
(:func:`write_video_records`) and merges them (:func:`write_collection_coco`).
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
from pycocotools import mask as mask_utils

from samic_vos.data.exports import COCO_MASKS
from samic_vos.data.exports.polygons import coco_polygons
from samic_vos.data.exports.sources import ExportItem, ExportObject, ExportSource, videos_source
from samic_vos.runtime.atomic import atomic_path

COCO_FILE = "coco.json"
VIDEO_RECORDS = "coco.jsonl"  # a finished video's COCO records, one line per frame


def mask_annotation(
    ids: np.ndarray, obj: ExportObject, masks: str = "rle"
) -> dict[str, Any] | None:
    """The COCO annotation of ``obj`` in (H, W) uint8 ``ids`` (without ``id``/``image_id``),
    its ``segmentation`` as ``masks`` (one of :data:`COCO_MASKS`); ``None`` when the object
    has no pixel."""
    pixels = np.asfortranarray((ids == obj.id).astype(np.uint8))
    if not pixels.any():
        return None
    rle = mask_utils.encode(pixels)
    if masks not in COCO_MASKS:
        raise ValueError(f"unknown COCO mask encoding '{masks}' (one of {', '.join(COCO_MASKS)})")
    if masks == "polygons":
        segmentation: Any = [p.reshape(-1).tolist() for p in coco_polygons(pixels.astype(bool))]
    else:
        segmentation = {"size": list(rle["size"]), "counts": rle["counts"].decode("ascii")}
    annotation: dict[str, Any] = {
        "category_id": obj.category,
        "segmentation": segmentation,
        "area": int(mask_utils.area(rle)),
        "bbox": [float(v) for v in mask_utils.toBbox(rle)],
        "iscrowd": 0,
    }
    if obj.score is not None:
        annotation["score"] = float(obj.score)
    return annotation


def coco_record(item: ExportItem, masks: str = "rle") -> dict[str, Any]:
    """One image's part of the file: ``{"image": its entry, "annotations": [...]}``, without
    the ids (given when the file is written, in order); ``masks``: see :func:`mask_annotation`."""
    height, width = (int(v) for v in item.ids.shape)
    entry: dict[str, Any] = {
        "file_name": item.file_name,
        "height": int(height),
        "width": int(width),
    }
    if item.video is not None:
        entry.update(video=item.video, frame_index=item.frame_index)
    found = (mask_annotation(item.ids, obj, masks) for obj in item.objects)
    return {"image": entry, "annotations": [a for a in found if a is not None]}


def write_coco_records(
    records: Iterable[dict[str, Any]], categories: dict[int, str], path: Path
) -> None:
    """Write ``path`` from :func:`coco_record`'s records in order (ids from 1), atomically;
    the annotations wait in a temporary file while the images are written."""
    with (
        atomic_path(path) as tmp,
        open(tmp, "w", encoding="utf-8") as out,
        tempfile.TemporaryFile("w+", encoding="utf-8", dir=path.parent) as annotations,
    ):
        out.write('{"info": {"description": "samic-vos"}, "images": [')
        count = 0
        for image_id, record in enumerate(records, 1):
            entry = {"id": image_id, **record["image"]}
            out.write(("" if image_id == 1 else ", ") + json.dumps(entry))
            for annotation in record["annotations"]:
                count += 1
                line = {"id": count, "image_id": image_id, **annotation}
                annotations.write(("" if count == 1 else ", ") + json.dumps(line))
        out.write('], "annotations": [')
        annotations.seek(0)
        shutil.copyfileobj(annotations, out)
        listed = [{"id": k, "name": v} for k, v in categories.items()]
        out.write('], "categories": ' + json.dumps(listed) + "}\n")


def write_coco(source: ExportSource, out_dir: Path, masks: str = "rle") -> Path:
    """Write ``out_dir/coco.json`` from ``source``, masks as ``masks`` (one of
    :data:`COCO_MASKS`); returns its path."""
    path = out_dir / COCO_FILE
    records = (coco_record(item, masks) for item in source.items())
    write_coco_records(records, source.categories, path)
    return path


def write_video_records(run: Path) -> Path:
    """Write ``run/coco.jsonl``, the :func:`coco_record` of every frame of the finished `track`
    run ``run`` (the video named after the folder), atomically; returns its path."""
    path = run / VIDEO_RECORDS
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as out:
        for item in videos_source([run]).items():
            out.write(json.dumps(coco_record(item)) + "\n")
    return path


def write_collection_coco(runs: list[Path], path: Path) -> None:
    """Write ``path``, the COCO file of a finished `track` collection (``runs``: its videos'
    folders, in order), from each video's ``coco.jsonl`` (written first where missing): the
    bytes :func:`write_coco` writes from the collection's masks."""

    def records() -> Iterator[dict[str, Any]]:
        for run in runs:
            file = run / VIDEO_RECORDS
            if not file.is_file():
                write_video_records(run)
            with open(file, encoding="utf-8") as lines:
                yield from (json.loads(line) for line in lines)

    write_coco_records(records(), videos_source(runs).categories, path)
