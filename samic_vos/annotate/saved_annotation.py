"""An image's saved annotation: its state as SAMBOX objects and back, and its mask files.

A save writes the mask under a name made of its content (``masks/<stem>.<hash>.png``), then the
JSON naming it (the commit), then removes the older masks of the image: a reader never sees a
JSON with the mask of another save.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
from pathlib import Path

import numpy as np

from samic_vos.annotate.prompt_decoding import Composite, instance_prompts
from samic_vos.annotate.session_store import ImageState, ObjectState, Step
from samic_vos.data.sambox_format import SamboxAnnotation, SamboxInstance, SamboxObject

MASK_FOLDER = "masks"
_MASK_HASH_CHARS = 12  # hex digits of a mask's content hash in its file name


# A content-named mask file: <image stem>.<hash>.png, without a folder.
CONTENT_NAME = re.compile(rf"[^/\\]+\.[0-9a-f]{{{_MASK_HASH_CHARS}}}\.png")


def content_name(name: str, ids: np.ndarray) -> str:
    """The file name of the mask ``ids`` (H, W) uint8 of image ``name``:
    ``<stem>.<hash of its content>.png``."""
    digest = hashlib.sha256(ids.tobytes() + repr(ids.shape).encode()).hexdigest()
    return f"{Path(name).stem}.{digest[:_MASK_HASH_CHARS]}.png"


def mask_file(annotations_dir: Path, name: str, ids: np.ndarray) -> Path:
    """Where the mask ``ids`` (H, W) uint8 of image ``name`` is saved: named after its content,
    so that a new save never overwrites the mask an older JSON names."""
    return annotations_dir / MASK_FOLDER / content_name(name, ids)


def _own_masks(annotations_dir: Path, name: str) -> list[Path]:
    """The content-named masks saved for image ``name`` by any save (a plain ``<stem>.png``,
    which older versions wrote or a person put there, is never touched)."""
    folder = annotations_dir / MASK_FOLDER
    stem = re.escape(Path(name).stem)
    pattern = re.compile(rf"{stem}\.[0-9a-f]{{{_MASK_HASH_CHARS}}}\.png")
    with contextlib.suppress(FileNotFoundError):
        return [folder / e.name for e in os.scandir(folder) if pattern.fullmatch(e.name)]
    return []


def remove_masks_but(annotations_dir: Path, name: str, keep: set[Path]) -> None:
    """Remove image ``name``'s content-named masks except those in ``keep``."""
    for path in _own_masks(annotations_dir, name):
        if path not in keep:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()


def sambox_objects(state: ImageState, composite: Composite, mask_ref: str) -> list[SamboxObject]:
    """``state``'s objects as SAMBOX objects with SAM's confidences from ``composite``, each
    naming the mask ``mask_ref``, with their brush and eraser edits; instances without a prompt,
    and objects with neither an instance, an edit nor a base mask, are left out."""
    objects = []
    for obj in state.objects:
        result = composite.objects[obj.id]
        instances = []
        for steps, iou in zip(obj.instances, result.instance_ious, strict=True):
            prompts = instance_prompts(steps)
            if prompts.decodable:
                instances.append(
                    SamboxInstance(
                        points=prompts.points[prompts.labels == 1].astype(np.float64),
                        negative_points=prompts.points[prompts.labels == 0].astype(np.float64),
                        box=None if prompts.box is None else prompts.box.astype(np.float64),
                        sam_confidence=iou,
                    )
                )
        if instances or obj.edits or obj.base is not None:
            objects.append(
                SamboxObject.from_instances(
                    obj.id,
                    instances,
                    label=obj.label,
                    mask=mask_ref,
                    sam_confidence=result.confidence if instances else None,
                    edits=list(obj.edits),
                    base=obj.base is not None and bool(instances),
                )
            )
    return objects


SUGGESTED_KEY = "suggested_points"  # in the annotation's meta; readers ignore it


def suggested_points(state: ImageState) -> dict[str, list[list[float]]]:
    """Per object id (a string: a JSON key), the (x, y) positive points of ``state`` that came
    from an accepted SAMIC suggestion and were not moved since: recorded in the saved JSON's
    ``meta`` (``SUGGESTED_KEY``) so that what the person placed and what SAMIC placed can be
    told apart. Objects without one are left out."""
    found: dict[str, list[list[float]]] = {}
    for obj in state.objects:
        points = [list(s.coords) for i in obj.instances for s in i if s.suggested]
        if points:
            found[str(obj.id)] = points
    return found


def _key(x: float, y: float) -> tuple[np.float32, np.float32]:
    """A point as the JSON's prompts hold it (float32 coordinates, as SAM takes them)."""
    return np.float32(x), np.float32(y)


def _recorded_suggestions(annotation: SamboxAnnotation, object_id: int) -> set[tuple]:
    """The points of object ``object_id`` its ``meta`` records as SAMIC's (malformed: none)."""
    recorded = annotation.meta.get(SUGGESTED_KEY)
    points = recorded.get(str(object_id)) if isinstance(recorded, dict) else None
    if not isinstance(points, list):
        return set()
    numbers = [p for p in points if isinstance(p, list) and len(p) == 2]
    return {_key(*p) for p in numbers if all(isinstance(v, (int, float)) for v in p)}


def state_from_annotation(annotation: SamboxAnnotation) -> ImageState:
    """A saved annotation as a state: per instance its box, positive then negative points
    (those its ``meta`` records as SAMIC's marked ``suggested``); the objects' edits."""
    objects = []
    for obj in annotation.objects:
        suggested = _recorded_suggestions(annotation, obj.id)
        instances = obj.instances or [SamboxInstance(obj.points, obj.negative_points)]  # v1
        objects.append(
            ObjectState(
                obj.id,
                obj.label,
                tuple(
                    (
                        *([Step("box", tuple(map(float, i.box)))] if i.box is not None else []),
                        *(
                            Step("point", (float(x), float(y)), suggested=_key(x, y) in suggested)
                            for x, y in i.points
                        ),
                        *(Step("point", (float(x), float(y)), False) for x, y in i.negative_points),
                    )
                    for i in instances
                ),
                tuple(obj.edits),
            )
        )
    active = (objects[0].id, 0) if objects else None
    return ImageState(tuple(objects), active)
