"""Deterministic points from masks: ground-truth prompts for training, frame-0 prompts for tracking.

The paper does not say how points are derived from masks; this module is that procedure.
A component's point is its *interior point*: the pixel farthest from the component's boundary
(exact Euclidean distance transform; the image border counts as boundary, so a component cut
by the frame edge gets its point in the middle of its visible part), ties broken by the
smallest (row, col). Components are 8-connected. Points are float32 (x, y) = (col, row) pixel
coordinates (x right, y down, pixel centres at integers).
"""

from __future__ import annotations

import cv2
import numpy as np

# Components smaller than this many pixels are noise (paper silent; a 4×4 patch at 480p).
DEFAULT_MIN_AREA = 16
# The most point prompts of one object in one frame, everywhere: peaks kept per heat map,
# points added on a given mask, ground-truth points of a training target (paper silent).
MAX_POINTS_PER_OBJECT = 8


def _check_mask(mask: np.ndarray, name: str) -> np.ndarray:
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise ValueError(f"{name} must be a 2-D (H, W) mask, got shape {mask.shape}")
    return mask.astype(bool)


def _components(mask: np.ndarray) -> tuple[np.ndarray, list[int], np.ndarray]:
    """The 8-connected components of ``mask``: ``(labels, order, stats)``.

    ``labels`` is the (H, W) int32 label image (0 = background), ``order`` the component labels
    sorted largest first (ties: first pixel in row-major order) and ``stats`` OpenCV's
    per-label (left, top, width, height, area) rows.
    """
    count, labels, stats, _ = cv2.connectedComponentsWithStats(
        mask.astype(np.uint8), connectivity=8
    )
    width = labels.shape[1]

    def first_pixel(k: int) -> int:
        left, top, box_width = stats[k, :3]
        return top * width + left + int(np.argmax(labels[top, left : left + box_width] == k))

    areas = stats[:, cv2.CC_STAT_AREA]
    order = sorted(range(1, count), key=lambda k: (-areas[k], first_pixel(k)))
    return labels, order, stats


def _farthest_from_boundary(labels: np.ndarray, stats: np.ndarray, k: int) -> tuple[float, float]:
    """(x, y) of the pixel of component ``k`` farthest from its boundary.

    Ties go to the smallest (row, col); the image border counts as boundary. Works in the
    component's bounding box (padded by one background pixel), which gives the same distances.
    """
    left, top, box_width, box_height = stats[k, :4]
    box = labels[top : top + box_height, left : left + box_width] == k
    padded = np.pad(box.astype(np.uint8), 1)
    distance = cv2.distanceTransform(padded, cv2.DIST_L2, cv2.DIST_MASK_PRECISE)[1:-1, 1:-1]
    row, col = np.unravel_index(np.argmax(distance), distance.shape)  # first max: row-major
    return float(left + col), float(top + row)


def interior_points(
    mask: np.ndarray, max_points: int = 1, min_area: int = DEFAULT_MIN_AREA
) -> np.ndarray:
    """One interior point per connected component of ``mask``, largest component first.

    Procedure: split ``mask`` into 8-connected components; drop those under ``min_area``
    pixels (unless none is that large: then only the largest is kept, so a non-empty mask
    always gives a point); order by area, largest first (ties: first pixel in row-major
    order); for each of the first ``max_points`` components take the pixel farthest from its
    boundary (the image border counts as boundary; ties: smallest (row, col)).

    Args:
        mask: (H, W) boolean (or 0/non-zero) mask.
        max_points: the most points returned (one per component).
        min_area: the smallest component, in pixels, that gets a point.

    Returns:
        (N, 2) float32 array of (x, y) pixel coordinates, N <= max_points; (0, 2) if empty.
    """
    labels, order, stats = _components(_check_mask(mask, "mask"))
    kept = [k for k in order if stats[k, cv2.CC_STAT_AREA] >= min_area] or order[:1]
    points = [_farthest_from_boundary(labels, stats, k) for k in kept[: max(max_points, 0)]]
    return np.array(points, dtype=np.float32).reshape(-1, 2)


def largest_error_point(target: np.ndarray, current: np.ndarray) -> tuple[float, float] | None:
    """The interior point of the largest part of ``target`` that ``current`` misses.

    Used to add positive points until SAM reproduces a mask: the missed area is
    ``target & ~current``; its largest 8-connected component gets the pixel farthest from its
    boundary (as in :func:`interior_points`).

    Args:
        target: (H, W) boolean mask to reproduce.
        current: (H, W) boolean mask obtained so far.

    Returns:
        (x, y) pixel coordinates inside the missed part, or None if nothing is missed.
    """
    target = _check_mask(target, "target")
    current = _check_mask(current, "current")
    if target.shape != current.shape:
        raise ValueError(f"target {target.shape} and current {current.shape} differ in shape")
    labels, order, stats = _components(target & ~current)
    return _farthest_from_boundary(labels, stats, order[0]) if order else None
