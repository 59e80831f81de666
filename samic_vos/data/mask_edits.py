"""A person's brush and eraser passes over an object's mask (SAMBOX's fix-up where SAM cannot).

An edit is a set of strokes drawn with a round brush of ``radius`` pixels: each stroke is a
polyline of (x, y) points (x = column, y = row, pixel centres at integers), and the edit covers
every pixel whose centre lies within ``radius`` of the polyline (a single point: a disc). A
brush edit adds those pixels to the mask, an eraser edit (``erase``) removes them; edits apply
in order, after SAM's mask from the prompts.
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

MAX_BRUSH_RADIUS = 200.0  # pixels; a larger brush is a box prompt's job
MAX_STROKES = 16  # strokes in one edit
MAX_STROKE_POINTS = 2000  # points in one stroke (the page splits longer drags)
# Memory for remembered edits' covered pixels (a bool crop of each edit's box); the least
# recently used go first.
COVERED_BYTES = 64 * 2**20

Point = tuple[float, float]


@dataclass(frozen=True)
class MaskEdit:
    """One brush (or, with ``erase``, eraser) pass: ``strokes``, each a non-empty tuple of
    (x, y) points, drawn with a round brush of ``radius`` pixels (> 0)."""

    strokes: tuple[tuple[Point, ...], ...]
    radius: float
    erase: bool = False

    def to_dict(self) -> dict[str, object]:
        """The edit as JSON: ``{"strokes": [[[x, y], ...], ...], "radius": r, "erase": b}``."""
        strokes = [[[_number(x), _number(y)] for x, y in stroke] for stroke in self.strokes]
        return {"strokes": strokes, "radius": _number(self.radius), "erase": self.erase}


def _number(value: float) -> int | float:
    return int(value) if float(value).is_integer() else float(value)


def _finite(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


EDIT_KEYS = frozenset({"strokes", "radius", "erase"})


def parse_edit(data: dict[str, Any], size: tuple[int, int]) -> MaskEdit:
    """The edit of decoded JSON ``data`` (its ``strokes``, ``radius`` and optional ``erase``;
    other keys are the caller's to check) on an image of ``size`` (H, W).

    Raises ``ValueError`` with a one-line message: strokes not a list of 1..MAX_STROKES lists
    of 1..MAX_STROKE_POINTS [x, y] pairs inside the image, radius not in (0, MAX_BRUSH_RADIUS],
    erase not a boolean.
    """
    height, width = size
    strokes = data.get("strokes")
    if not isinstance(strokes, list) or not 1 <= len(strokes) <= MAX_STROKES:
        raise ValueError(f"'strokes' must be a list of 1 to {MAX_STROKES} strokes")
    parsed = []
    for k, stroke in enumerate(strokes):
        if not isinstance(stroke, list) or not 1 <= len(stroke) <= MAX_STROKE_POINTS:
            raise ValueError(
                f"'strokes[{k}]' must be a list of 1 to {MAX_STROKE_POINTS} [x, y] points"
            )
        points = []
        for point in stroke:
            if not (isinstance(point, list) and len(point) == 2 and all(map(_finite, point))):
                raise ValueError(f"'strokes[{k}]' holds {str(point)[:40]}, not an [x, y] pair")
            x, y = float(point[0]), float(point[1])
            if not (0 <= x <= width - 1 and 0 <= y <= height - 1):
                raise ValueError(
                    f"stroke point ({x:g}, {y:g}) lies outside the {width}x{height} image "
                    f"(x in [0, {width - 1}], y in [0, {height - 1}])"
                )
            points.append((x, y))
        parsed.append(tuple(points))
    radius = data.get("radius")
    if not _finite(radius) or not 0 < radius <= MAX_BRUSH_RADIUS:  # type: ignore[operator]
        raise ValueError(f"'radius' must be a number in (0, {MAX_BRUSH_RADIUS:g}] (pixels)")
    erase = data.get("erase", False)
    if not isinstance(erase, bool):
        raise ValueError("'erase' must be true or false")
    return MaskEdit(tuple(parsed), float(radius), erase)  # type: ignore[arg-type]


Covered = tuple[slice, slice, np.ndarray]
_remembered: OrderedDict[tuple[MaskEdit, tuple[int, int]], Covered] = OrderedDict()
_remembered_lock = threading.Lock()


def _covered(edit: MaskEdit, size: tuple[int, int]) -> Covered:
    """Where ``edit`` covers an image of ``size`` (H, W): its bounding (rows, columns) slices
    and the bool crop of covered pixels in them; remembered (up to :data:`COVERED_BYTES`),
    since a view composes every edit of an image again and an edit never changes."""
    key = (edit, size)
    with _remembered_lock:
        if key in _remembered:
            _remembered.move_to_end(key)
            return _remembered[key]
    if len(edit.strokes) > 1:  # each stroke's own (remembered): a drag sent in parts grows
        found = _union([_covered(MaskEdit((s,), edit.radius), size) for s in edit.strokes])
    else:
        found = _rasterise(edit, size)
    with _remembered_lock:
        _remembered[key] = found
        total = sum(c.nbytes for _, _, c in _remembered.values())
        while total > COVERED_BYTES and len(_remembered) > 1:
            total -= _remembered.popitem(last=False)[1][2].nbytes
    return found


def _union(parts: list[Covered]) -> Covered:
    """The pixels covered by any of ``parts``, over the box holding them all."""
    y0, x0 = min(r.start for r, _, _ in parts), min(c.start for _, c, _ in parts)
    y1, x1 = max(r.stop for r, _, _ in parts), max(c.stop for _, c, _ in parts)
    crop = np.zeros((y1 - y0, x1 - x0), dtype=bool)
    for rows, cols, part in parts:
        crop[rows.start - y0 : rows.stop - y0, cols.start - x0 : cols.stop - x0] |= part
    crop.flags.writeable = False
    return slice(y0, y1), slice(x0, x1), crop


def _rasterise(edit: MaskEdit, size: tuple[int, int]) -> Covered:
    """:func:`_covered`'s answer, computed."""
    height, width = size
    segments = []
    for stroke in edit.strokes:
        points = np.asarray(stroke, dtype=np.float64).reshape(-1, 2)
        segments += zip(points, points[1:] if len(points) > 1 else points, strict=False)
    radius = float(edit.radius)
    corners = np.array([(*a, *b) for a, b in segments])
    x0 = max(0, math.floor(min(corners[:, 0].min(), corners[:, 2].min()) - radius))
    y0 = max(0, math.floor(min(corners[:, 1].min(), corners[:, 3].min()) - radius))
    x1 = min(width - 1, math.ceil(max(corners[:, 0].max(), corners[:, 2].max()) + radius))
    y1 = min(height - 1, math.ceil(max(corners[:, 1].max(), corners[:, 3].max()) + radius))
    rows, cols = slice(y0, max(y0, y1 + 1)), slice(x0, max(x0, x1 + 1))
    crop = np.zeros((rows.stop - rows.start, cols.stop - cols.start), dtype=bool)
    for (ax, ay), (bx, by) in segments:
        # Each segment over its own box: pixel centres within `radius` of it.
        sx0, sx1 = (
            max(x0, math.floor(min(ax, bx) - radius)),
            min(x1, math.ceil(max(ax, bx) + radius)),
        )
        sy0, sy1 = (
            max(y0, math.floor(min(ay, by) - radius)),
            min(y1, math.ceil(max(ay, by) + radius)),
        )
        if sx0 > sx1 or sy0 > sy1:
            continue
        ys, xs = np.mgrid[sy0 : sy1 + 1, sx0 : sx1 + 1].astype(np.float64)
        dx, dy = bx - ax, by - ay
        length2 = dx * dx + dy * dy
        t = 0.0 if length2 == 0 else np.clip(((xs - ax) * dx + (ys - ay) * dy) / length2, 0, 1)
        distance2 = (xs - ax - t * dx) ** 2 + (ys - ay - t * dy) ** 2
        crop[sy0 - y0 : sy1 - y0 + 1, sx0 - x0 : sx1 - x0 + 1] |= distance2 <= radius * radius
    crop.flags.writeable = False
    return rows, cols, crop


def edit_pixels(edit: MaskEdit, size: tuple[int, int]) -> np.ndarray:
    """(H, W) bool: the pixels of an image of ``size`` (H, W) whose centres lie within
    ``edit.radius`` of one of its strokes."""
    rows, cols, crop = _covered(edit, size)
    covered = np.zeros(size, dtype=bool)
    covered[rows, cols] = crop
    return covered


def apply_edits(
    mask: np.ndarray, logits: np.ndarray, edits: Sequence[MaskEdit]
) -> tuple[np.ndarray, np.ndarray]:
    """``mask`` (H, W) bool and ``logits`` (H, W) float32 after ``edits`` in order (the inputs
    are not changed; without edits, they are returned): painted pixels join the mask with logit
    +inf (they win over any other object's SAM mask), erased ones leave it with logit -inf."""
    if not edits:
        return mask, logits
    mask, logits = mask.copy(), logits.copy()
    for edit in edits:
        rows, cols, crop = _covered(edit, mask.shape)
        mask[rows, cols][crop] = not edit.erase
        logits[rows, cols][crop] = -np.inf if edit.erase else np.inf
    return mask, logits
