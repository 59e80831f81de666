"""The SAMBOX annotation format: one versioned JSON file of point prompts per image.

SAMBOX (the annotation tool) saves, beside each annotated image ``frame_00012.jpg``, a sidecar
``frame_00012.sambox.json`` (the ``.sambox.json`` suffix finds annotations without opening
other JSON files). A folder of images with their sidecars is a *sequence*: its annotated frames
are ordered by file name, natural order (``f9`` before ``f10``). The schema, field by field:
``docs/sambox_format.md``. In short: ``format`` ("sambox"), ``version`` (1 or 2), ``image``
(relative path), ``image_size`` ([H, W]), ``objects`` (ids 1..254, optional ``label``,
``mask``, ``sam_confidence``) and ``meta``. A version-1 object holds ``points`` (>= 1 positive
click) and ``negative_points``; a version-2 object holds ``instances``, each prompted on its own
by a person (SAM joins separate objects through the background, so the instances' masks are
unioned): ``points``, ``negative_points``, an optional ``box`` [x0, y0, x1, y1] and
``sam_confidence``, with a positive click or a box. Version 3 adds an object's ``edits`` (the
brush and eraser passes a person made on its mask, :mod:`~samic_vos.data.mask_edits`) and
objects without instances when they have a ``mask`` (painted or imported masks). Versions 1
and 2 still read, and the writer writes the oldest version that holds the data.

Points are pixel coordinates ``[x, y]`` (x = column rightwards, y = row downwards, pixel
centres at integers, as SAM's ``SamPredictor`` takes them; fractions allowed), inside the
image: ``0 <= x <= W - 1`` and ``0 <= y <= H - 1``. ``mask`` names a palette PNG (the object's
pixels carry ``id``) or a binary PNG (the object's pixels are non-zero). Unknown keys are
refused, so a typo never passes silently; new fields mean a new version. Every problem is a
one-line :class:`~samic_vos.runtime.errors.UserError` naming the file and the field.
"""

from __future__ import annotations

import json
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from samic_vos.data.davis import upright_size
from samic_vos.data.mask_edits import EDIT_KEYS, MaskEdit, parse_edit
from samic_vos.runtime.atomic import atomic_write_text
from samic_vos.runtime.errors import UserError, size_text
from samic_vos.runtime.input_paths import require_input

FORMAT_NAME = "sambox"
VERSION = 3  # the newest version; :func:`write_annotation` writes the oldest that holds the data
KNOWN_VERSIONS = (1, 2, 3)
SUFFIX = ".sambox.json"
SAMBOX_FOLDER = "annotation folder"  # a folder of SAMBOX annotations, in messages
MAX_OBJECT_ID = 254  # palette masks are uint8 and 255 is DAVIS's "void"

_TOP_KEYS = {"format", "version", "image", "image_size", "objects", "meta"}
_OBJECT_KEYS = {"id", "label", "points", "negative_points", "mask", "sam_confidence"}
_OBJECT_KEYS_V2 = {"id", "label", "instances", "mask", "sam_confidence"}
_OBJECT_KEYS_V3 = _OBJECT_KEYS_V2 | {"edits", "base"}
_INSTANCE_KEYS = {"points", "negative_points", "box", "sam_confidence"}


def _no_points() -> np.ndarray:
    return np.zeros((0, 2))


@dataclass
class SamboxInstance:
    """One separately prompted instance of an object (version 2).

    ``points``/``negative_points``: ``float64`` ``(N, 2)`` / ``(M, 2)`` ``(x, y)`` pixel
    coordinates; ``box``: ``float64`` ``(4,)`` ``(x0, y0, x1, y1)`` or ``None``.
    """

    points: np.ndarray = field(default_factory=_no_points)
    negative_points: np.ndarray = field(default_factory=_no_points)
    box: np.ndarray | None = None
    sam_confidence: float | None = None


@dataclass
class SamboxObject:
    """One object's prompts on one image.

    ``points``/``negative_points``: ``float64`` ``(N, 2)`` / ``(M, 2)`` arrays of ``(x, y)``
    pixel coordinates, all of the object's clicks (every instance's, in order; N may be 0 in
    version 2, for box-only instances). ``mask``: the mask PNG path as stored (relative to the
    JSON's folder). ``instances``: the per-instance prompts of version 2 (build such objects
    with :meth:`from_instances`); empty for a version-1 object and for a version-3 object
    that is only its ``mask`` (no points either). ``edits``: the brush and eraser passes made
    on the mask after SAM's (version 3). ``base``: the object has pixels of its own besides
    what its prompts and edits give (an imported mask, version 3), so its ``mask`` is its
    starting point when the annotation is reopened.
    """

    id: int
    points: np.ndarray
    negative_points: np.ndarray = field(default_factory=_no_points)
    label: str | None = None
    mask: str | None = None
    sam_confidence: float | None = None
    instances: list[SamboxInstance] = field(default_factory=list)
    edits: list[MaskEdit] = field(default_factory=list)
    base: bool = False

    @property
    def mask_only(self) -> bool:
        """An object without any prompt: only its mask (painted or imported; version 3)."""
        return not self.instances and not len(self.points)

    @classmethod
    def from_instances(
        cls, id: int, instances: list[SamboxInstance], **fields: Any
    ) -> SamboxObject:
        """An object of ``instances``; its ``points``/``negative_points`` are theirs joined."""
        return cls(
            id=id,
            points=np.concatenate([_no_points()] + [i.points for i in instances]),
            negative_points=np.concatenate([_no_points()] + [i.negative_points for i in instances]),
            instances=list(instances),
            **fields,
        )


@dataclass
class SamboxAnnotation:
    """The prompts of one image. ``image`` is relative to the JSON's folder; ``image_size`` is
    ``(H, W)``; ``path`` is where it was read from (``None`` for a new annotation)."""

    image: str
    image_size: tuple[int, int]
    objects: list[SamboxObject] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None

    def image_path(self, json_path: str | os.PathLike | None = None) -> Path:
        """The image's path, resolved against the folder of ``json_path`` (or ``self.path``)."""
        base = Path(json_path) if json_path is not None else self.path
        if base is None:
            raise ValueError("the annotation has no path: pass json_path")
        return base.parent / self.image

    def mask_path(self, obj: SamboxObject) -> Path | None:
        """The path of ``obj``'s mask PNG, resolved against ``self.path``, or ``None``."""
        if obj.mask is None or self.path is None:
            return None
        return self.path.parent / obj.mask

    def object_by_id(self, object_id: int) -> SamboxObject | None:
        """The object with ``object_id``, or ``None``."""
        return next((o for o in self.objects if o.id == object_id), None)


def _fail(where: str, message: str) -> UserError:
    return UserError(f"{where}: {message}")


def _int(value: Any, where: str, name: str, low: int, high: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise _fail(where, f"'{name}' must be an integer, got {json.dumps(value)}")
    if value < low or (high is not None and value > high):
        bound = f"{low}..{high}" if high is not None else f">= {low}"
        raise _fail(where, f"'{name}' is {value}; it must be {bound}")
    return value


def _relative_path(value: Any, where: str, name: str) -> str:
    if not isinstance(value, str) or not value:
        raise _fail(where, f"'{name}' must be a non-empty relative path string")
    if value.startswith("/") or "\\" in value or re.match(r"^[A-Za-z]:", value):
        raise _fail(where, f"'{name}' is '{value}'; use a path relative to the JSON file, '/'")
    return value


def _points(value: Any, where: str, name: str, size: tuple[int, int]) -> np.ndarray:
    if not isinstance(value, list):
        raise _fail(where, f"'{name}' must be a list of [x, y] pairs")
    height, width = size
    for k, point in enumerate(value):
        ok = isinstance(point, list) and len(point) == 2
        ok = ok and all(
            isinstance(c, (int, float)) and not isinstance(c, bool) and math.isfinite(c)
            for c in point
        )
        if not ok:
            raise _fail(where, f"'{name}[{k}]' must be an [x, y] pair of numbers")
        x, y = point
        if not (0 <= x <= width - 1 and 0 <= y <= height - 1):
            raise _fail(
                where,
                f"'{name}[{k}]' = [{x}, {y}] lies outside the {width}x{height} image "
                f"(x must be in [0, {width - 1}], y in [0, {height - 1}])",
            )
    return np.array(value, dtype=np.float64).reshape(-1, 2)


def _unknown_keys(data: dict, known: set[str], where: str, name: str) -> None:
    extra = sorted(set(data) - known)
    if extra:
        raise _fail(
            where, f"unknown key '{extra[0]}' in {name} (known: {', '.join(sorted(known))})"
        )


def _confidence(value: Any, where: str, name: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise _fail(where, f"'{name}' must be a number or null")
    return float(value)


def _box(value: Any, where: str, name: str, size: tuple[int, int]) -> np.ndarray | None:
    if value is None:
        return None
    if not isinstance(value, list) or len(value) != 4:
        raise _fail(where, f"'{name}' must be [x0, y0, x1, y1]")
    corners = _points([value[:2], value[2:]], where, name, size)
    if np.any(corners[0] > corners[1]):
        raise _fail(where, f"'{name}' = {value} needs x0 <= x1 and y0 <= y1")
    return corners.reshape(4)


def _parse_instance(data: Any, where: str, name: str, size: tuple[int, int]) -> SamboxInstance:
    if not isinstance(data, dict):
        raise _fail(where, f"'{name}' must be an object")
    _unknown_keys(data, _INSTANCE_KEYS, where, f"'{name}'")
    if "points" not in data:
        raise _fail(where, f"'{name}' needs 'points'")
    instance = SamboxInstance(
        points=_points(data["points"], where, f"{name}.points", size),
        negative_points=_points(
            data.get("negative_points", []), where, f"{name}.negative_points", size
        ),
        box=_box(data.get("box"), where, f"{name}.box", size),
        sam_confidence=_confidence(data.get("sam_confidence"), where, f"{name}.sam_confidence"),
    )
    if len(instance.points) == 0 and instance.box is None:
        raise _fail(where, f"'{name}' has neither a positive click nor a box")
    return instance


def _edits(value: Any, where: str, name: str, size: tuple[int, int]) -> list[MaskEdit]:
    if not isinstance(value, list):
        raise _fail(where, f"'{name}' must be a list")
    edits = []
    for k, entry in enumerate(value):
        if not isinstance(entry, dict):
            raise _fail(where, f"'{name}[{k}]' must be an object")
        _unknown_keys(entry, set(EDIT_KEYS), where, f"'{name}[{k}]'")
        try:
            edits.append(parse_edit(entry, size))
        except ValueError as err:
            raise _fail(where, f"'{name}[{k}]': {err}") from None
    return edits


def _parse_object(
    data: Any, where: str, name: str, size: tuple[int, int], version: int
) -> SamboxObject:
    if not isinstance(data, dict):
        raise _fail(where, f"'{name}' must be an object")
    prompts = "points" if version == 1 else "instances"
    known = {1: _OBJECT_KEYS, 2: _OBJECT_KEYS_V2}.get(version, _OBJECT_KEYS_V3)
    _unknown_keys(data, known, where, f"'{name}'")
    if "id" not in data or prompts not in data:
        raise _fail(where, f"'{name}' needs 'id' and '{prompts}'")
    label = data.get("label")
    if label is not None and not isinstance(label, str):
        raise _fail(where, f"'{name}.label' must be a string or null")
    mask = data.get("mask")
    if mask is not None:
        mask = _relative_path(mask, where, f"{name}.mask")
    fields = {
        "id": _int(data["id"], where, f"{name}.id", 1, MAX_OBJECT_ID),
        "label": label,
        "mask": mask,
        "sam_confidence": _confidence(data.get("sam_confidence"), where, f"{name}.sam_confidence"),
    }
    if version >= 2:
        if not isinstance(data["instances"], list):
            raise _fail(where, f"'{name}.instances' must be a list")
        if not data["instances"] and (version == 2 or mask is None):
            needs = "" if version == 2 else " (or the object needs a 'mask')"
            raise _fail(where, f"'{name}.instances' must be a non-empty list{needs}")
        instances = [
            _parse_instance(i, where, f"{name}.instances[{k}]", size)
            for k, i in enumerate(data["instances"])
        ]
        edits = _edits(data.get("edits", []), where, f"{name}.edits", size)
        base = data.get("base", False)
        if not isinstance(base, bool):
            raise _fail(where, f"'{name}.base' must be true or false")
        if base and mask is None:
            raise _fail(where, f"'{name}.base' is true but the object has no 'mask'")
        return SamboxObject.from_instances(instances=instances, edits=edits, base=base, **fields)
    points = _points(data["points"], where, f"{name}.points", size)
    if len(points) == 0:
        raise _fail(where, f"'{name}.points' is empty; an object needs a positive click")
    negative = _points(data.get("negative_points", []), where, f"{name}.negative_points", size)
    return SamboxObject(points=points, negative_points=negative, **fields)


def parse_annotation(data: Any, where: str) -> SamboxAnnotation:
    """Validate decoded JSON ``data`` (``where`` names it in errors) into an annotation.

    Checks the structure only; :func:`read_annotation` also checks the files it names.
    """
    if not isinstance(data, dict) or data.get("format") != FORMAT_NAME:
        raise _fail(where, f"not a SAMBOX annotation ('format' must be \"{FORMAT_NAME}\")")
    _unknown_keys(data, _TOP_KEYS, where, "the annotation")
    version = data.get("version")
    if isinstance(version, bool) or version not in KNOWN_VERSIONS:
        raise _fail(
            where,
            f"unknown 'version' {json.dumps(version)}; this samic-vos reads versions "
            f"{', '.join(map(str, KNOWN_VERSIONS))} "
            "(upgrade samic-vos, or re-save the annotation with a matching SAMBOX)",
        )
    for key in ("image", "image_size", "objects"):
        if key not in data:
            raise _fail(where, f"missing '{key}'")
    image = _relative_path(data["image"], where, "image")
    size = data["image_size"]
    if not isinstance(size, list) or len(size) != 2:
        raise _fail(where, "'image_size' must be [H, W]")
    size = (_int(size[0], where, "image_size[0]", 1), _int(size[1], where, "image_size[1]", 1))
    if not isinstance(data["objects"], list):
        raise _fail(where, "'objects' must be a list")
    objects = [
        _parse_object(o, where, f"objects[{k}]", size, version)
        for k, o in enumerate(data["objects"])
    ]
    ids = [o.id for o in objects]
    duplicate = next((i for i in ids if ids.count(i) > 1), None)
    if duplicate is not None:
        raise _fail(where, f"object id {duplicate} appears twice in 'objects'; ids are unique")
    meta = data.get("meta", {})
    if not isinstance(meta, dict):
        raise _fail(where, "'meta' must be an object")
    return SamboxAnnotation(image=image, image_size=size, objects=objects, meta=meta)


def _check_image_file(path: Path, where: str, name: str, size: tuple[int, int]) -> None:
    if not path.is_file():
        raise _fail(where, f"'{name}' file {path} not found; save it beside the annotation")
    try:
        with Image.open(path) as image:
            height, width = upright_size(image)  # SAMBOX shows and saves images upright
    except (OSError, Image.DecompressionBombError) as err:
        raise _fail(where, f"'{name}' file {path} is not a readable image ({err})") from err
    if (height, width) != size:
        raise _fail(
            where,
            f"'{name}' file {path} is {size_text((height, width))} but 'image_size' says "
            f"{size_text(size)} ([H, W]); fix 'image_size' or re-annotate",
        )


def read_annotation(path: str | os.PathLike) -> SamboxAnnotation:
    """Read and validate the SAMBOX annotation at ``path``.

    Besides the structure, the image (and every object's mask) must exist beside the JSON and
    have ``image_size``. Raises :class:`UserError` naming the file and the field.
    """
    path = Path(path)
    where = str(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as err:
        raise _fail(where, "annotation file not found") from err
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise _fail(where, f"not readable JSON ({err})") from err
    annotation = parse_annotation(data, where)
    annotation.path = path
    _check_image_file(annotation.image_path(), where, "image", annotation.image_size)
    for k, obj in enumerate(annotation.objects):
        mask = annotation.mask_path(obj)
        if mask is not None:
            _check_image_file(mask, where, f"objects[{k}].mask", annotation.image_size)
    return annotation


def _number(value: float) -> int | float:
    """``12.0`` → ``12`` (shorter, exact JSON); other values unchanged."""
    return int(value) if float(value).is_integer() else float(value)


def annotation_to_dict(annotation: SamboxAnnotation) -> dict[str, Any]:
    """The JSON-ready dict of ``annotation`` (the inverse of :func:`parse_annotation`).

    Version 3 when an object has ``edits`` or is only its mask; else version 2 when an object
    has ``instances`` (objects without are written as one instance); else version 1, which older
    readers understand too.
    """

    def points(array: np.ndarray) -> list[list[int | float]]:
        return [[_number(x), _number(y)] for x, y in np.asarray(array, dtype=float).reshape(-1, 2)]

    def instance(inst: SamboxInstance) -> dict[str, Any]:
        entry: dict[str, Any] = {"points": points(inst.points)}
        entry["negative_points"] = points(inst.negative_points)
        if inst.box is not None:
            entry["box"] = [_number(v) for v in np.asarray(inst.box, dtype=float).reshape(4)]
        if inst.sam_confidence is not None:
            entry["sam_confidence"] = float(inst.sam_confidence)
        return entry

    version = (
        3
        if any(obj.edits or obj.mask_only or obj.base for obj in annotation.objects)
        else 2
        if any(obj.instances for obj in annotation.objects)
        else 1
    )
    objects = []
    for obj in annotation.objects:
        entry: dict[str, Any] = {"id": int(obj.id)}
        if obj.label is not None:
            entry["label"] = obj.label
        if version >= 2:
            instances = obj.instances or (
                [] if obj.mask_only else [SamboxInstance(obj.points, obj.negative_points)]
            )
            entry["instances"] = [instance(i) for i in instances]
            if obj.edits:
                entry["edits"] = [e.to_dict() for e in obj.edits]
            if obj.base:
                entry["base"] = True
        else:
            entry["points"] = points(obj.points)
            entry["negative_points"] = points(obj.negative_points)
        if obj.mask is not None:
            entry["mask"] = obj.mask
        if obj.sam_confidence is not None:
            entry["sam_confidence"] = float(obj.sam_confidence)
        objects.append(entry)
    data: dict[str, Any] = {
        "format": FORMAT_NAME,
        "version": version,
        "image": annotation.image,
        "image_size": [int(annotation.image_size[0]), int(annotation.image_size[1])],
        "objects": objects,
    }
    if annotation.meta:
        data["meta"] = annotation.meta
    return data


def write_annotation(path: str | os.PathLike, annotation: SamboxAnnotation) -> None:
    """Validate ``annotation`` and write it to ``path`` atomically (JSON, UTF-8, indented).

    The structure is checked as on reading (points inside the image, unique ids, ...), so a
    written file always reads back; the image itself may be saved after the annotation.
    """
    data = annotation_to_dict(annotation)
    parse_annotation(data, str(path))
    atomic_write_text(path, json.dumps(data, indent=2, ensure_ascii=False) + "\n")


def natural_key(name: str) -> list[tuple[int, int | str]]:
    """Sort key ordering digit runs numerically: ``f9`` < ``f10``."""
    return [(0, int(part)) if part.isdigit() else (1, part) for part in re.split(r"(\d+)", name)]


def find_annotations(folder: str | os.PathLike) -> list[Path]:
    """Every ``*.sambox.json`` under ``folder`` (recursively), grouped by folder and in natural
    file-name order within a folder (the frame order of a sequence)."""
    folder = Path(folder)
    require_input(folder, SAMBOX_FOLDER, kind="folder")
    found = [p for p in folder.rglob(f"*{SUFFIX}") if p.is_file()]
    return sorted(found, key=lambda p: (p.parent.as_posix(), natural_key(p.name)))


def annotation_path_for(image: str | os.PathLike) -> Path:
    """The sidecar path of ``image``: ``dir/frame.jpg`` → ``dir/frame.sambox.json``."""
    image = Path(image)
    return image.with_name(image.stem + SUFFIX)
