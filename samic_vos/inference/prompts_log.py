"""``prompts.jsonl``: one JSON line per processed frame, the prompts that made its masks.

A line::

    {"frame": "00012", "objects": {"1": {"points": [[x, y], ...], "scores": [...],
     "confidence": 0.97, "reference": [0, 2], "given": false}}}

``points`` are float (x, y) frame pixels written at full float32 precision (so that a resumed
run rebuilds exactly the references the run had); ``scores`` the points' heat values;
``confidence`` SAM's confidence in the mask; ``reference`` the indexes of the points that became
the object's reference for the next frame (empty: its earlier reference was kept); ``given``
whether the object's mask was given on this frame. Lines are written whole, one per finished
frame, by :class:`samic_vos.runtime.atomic.JsonLinesWriter` (a failed write, on a full disk say, is
cut back to the last whole line), so the file only ever ends in a complete line, except after a
hard kill in mid-write, which :func:`complete_records` detects and cuts.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from samic_vos.data.exports.sources import PROMPTS  # noqa: F401 - the log's name
from samic_vos.inference.fewshot_engine import ImageResult
from samic_vos.inference.tracker import FrameResult
from samic_vos.runtime.errors import UserError

FRAME_KEYS = ("frame", "objects")  # what every line of a video's prompts.jsonl holds
IMAGE_KEYS = ("image", "path", "classes")  # what every line of segment's prompts.jsonl holds


def frame_record(name: str, result: FrameResult) -> dict[str, Any]:
    """The line of frame ``name`` (see the module docstring)."""
    return {
        "frame": name,
        "objects": {
            str(obj_id): {
                "points": [[float(x), float(y)] for x, y in obj.points.astype(np.float32)],
                "scores": [round(float(s), 4) for s in obj.peak_scores],
                "confidence": round(float(obj.confidence), 4),
                "reference": list(obj.reference),
                "given": obj.given,
            }
            for obj_id, obj in result.objects.items()
        },
    }


def complete_records(
    path: Path, keys: tuple[str, ...] = FRAME_KEYS, what: str = "frame"
) -> list[dict[str, Any]]:
    """The complete lines of ``path`` (``[]`` if absent), read only: a line cut by a crash is
    left out here and cut from the file by :func:`keep_first` when the run continues.

    ``keys``: those every record has (a frame's by default; `segment`'s image records name
    theirs); ``what`` names the record in the error.

    Raises:
        UserError: a complete line is not such a record (the file is not ours).
    """
    return list(iter_records(path, keys, what))


def iter_records(
    path: Path, keys: tuple[str, ...] = FRAME_KEYS, what: str = "frame"
) -> Iterator[dict[str, Any]]:
    """:func:`complete_records` one at a time, the file read line by line (memory flat in
    its length)."""
    if not path.is_file():
        return
    with open(path, "rb") as handle:
        for number, line in enumerate(handle, 1):
            if not line.endswith(b"\n"):
                return  # cut by a crash
            try:
                record = json.loads(line.decode("utf-8", "replace"))
                for key in keys:
                    record[key]  # noqa: B018 - every key is required
            except (ValueError, TypeError, KeyError):
                raise UserError(
                    f"{path}: line {number} is not a {what} record of prompts.jsonl"
                ) from None
            yield record


def keep_first(path: Path, count: int) -> None:
    """Cut ``path`` after its first ``count`` lines (frames past them are redone)."""
    with open(path, "r+b") as handle:
        data = handle.read()
        end = 0
        for _ in range(count):
            end = data.index(b"\n", end) + 1
        handle.truncate(end)


def points_of(record: dict[str, Any], obj_id: int, which: str = "reference") -> np.ndarray:
    """(N, 2) float32 points of object ``obj_id`` in ``record``: all, or its reference ones."""
    entry = record["objects"][str(obj_id)]
    points = np.asarray(entry["points"], dtype=np.float32).reshape(-1, 2)
    if which == "all":
        return points
    return points[np.asarray(entry["reference"], dtype=np.int64)]


def image_record(name: str, path: Path, result: ImageResult) -> dict[str, Any]:
    """The ``prompts.jsonl`` line of one target::

        {"image": "<name>", "path": "<target file>", "classes": {"1": {"points": [[x, y]],
         "scores": [...], "confidence": 0.93, "instances": [1]}}}

    ``points`` (x, y) target pixels at float32 precision, ``scores`` their heat values (samic)
    or similarities (persam), ``confidence`` SAM's confidence in the class mask, ``instances``
    each point's instance id in the ``instances`` masks (0: it kept no pixel).
    """
    return {
        "image": name,
        "path": str(path),
        "classes": {
            str(class_id): {
                "points": [[float(x), float(y)] for x, y in found.points.astype(np.float32)],
                "scores": [round(float(s), 4) for s in found.scores],
                "confidence": round(float(found.confidence), 4),
                "instances": list(found.instance_ids),
            }
            for class_id, found in result.classes.items()
        },
    }
