"""A person's brush and eraser passes over an object's mask (SAMBOX's fix-up where SAM cannot).

An edit is a set of strokes drawn with a round brush of ``radius`` pixels: each stroke is a
polyline of (x, y) points (x = column, y = row, pixel centres at integers), and the edit covers
every pixel whose centre lies within ``radius`` of the polyline (a single point: a disc). A
brush edit adds those pixels to the mask, an eraser edit (``erase``) removes them; edits apply
in order, after SAM's mask from the prompts.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

MAX_BRUSH_RADIUS = 200.0  # pixels; a larger brush is a box prompt's job
MAX_STROKES = 16  # strokes in one edit
MAX_STROKE_POINTS = 2000  # points in one stroke (the page splits longer drags)

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


def edit_pixels(edit: MaskEdit, size: tuple[int, int]) -> np.ndarray:
    """(H, W) bool: the pixels of an image of ``size`` (H, W) whose centres lie within
    ``edit.radius`` of one of its strokes."""
    height, width = size
    covered = np.zeros(size, dtype=bool)
    radius = float(edit.radius)
    for stroke in edit.strokes:
        points = np.asarray(stroke, dtype=np.float64).reshape(-1, 2)
        ends = points[1:] if len(points) > 1 else points
        for (ax, ay), (bx, by) in zip(points, ends, strict=False):
            x0 = max(0, math.floor(min(ax, bx) - radius))
            x1 = min(width - 1, math.ceil(max(ax, bx) + radius))
            y0 = max(0, math.floor(min(ay, by) - radius))
            y1 = min(height - 1, math.ceil(max(ay, by) + radius))
            if x0 > x1 or y0 > y1:
                continue
            ys, xs = np.mgrid[y0 : y1 + 1, x0 : x1 + 1].astype(np.float64)
            dx, dy = bx - ax, by - ay
            length2 = dx * dx + dy * dy
            t = 0.0 if length2 == 0 else np.clip(((xs - ax) * dx + (ys - ay) * dy) / length2, 0, 1)
            distance2 = (xs - ax - t * dx) ** 2 + (ys - ay - t * dy) ** 2
            covered[y0 : y1 + 1, x0 : x1 + 1] |= distance2 <= radius * radius
    return covered


def apply_edits(
    mask: np.ndarray, logits: np.ndarray, edits: Iterable[MaskEdit]
) -> tuple[np.ndarray, np.ndarray]:
    """``mask`` (H, W) bool and ``logits`` (H, W) float32 after ``edits`` in order (new arrays;
    the inputs are not changed): painted pixels join the mask with logit +inf (they win over
    any other object's SAM mask), erased ones leave it with logit -inf."""
    for edit in edits:
        pixels = edit_pixels(edit, mask.shape)
        mask = np.where(pixels, not edit.erase, mask)
        logits = np.where(pixels, np.float32(-np.inf if edit.erase else np.inf), logits)
    return mask, logits
