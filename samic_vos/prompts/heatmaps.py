"""Points → heat maps: the prompt images SAMIC reads (reference) and predicts (target).

Coordinates: points are float ``(x, y)`` in pixels, x to the right, y down, pixel centres at
integer coordinates (pixel ``(row, col)`` covers x in ``[col - 0.5, col + 0.5)`` and y in
``[row - 0.5, row + 0.5)``).
Sizes are ``(H, W)`` = (rows, cols). Heat maps are made directly at the network's input size
from rescaled point coordinates, never by resizing a heat map (that would stretch the
Gaussians anisotropically and let narrow peaks vanish).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

# Default σ of the Gaussians, as a fraction of the heat map's longer side (the paper's 0.02).
DEFAULT_SIGMA = 0.02
# Heat below this is exactly 0 (paper silent). A Gaussian's far tail otherwise leaves ~5% of a
# heat map's pixels as float32 denormals (1e-45 to 1e-38), which multiplied into the features
# make the correlation's matrix products many times slower on CPUs without fast denormals.
# 1e-6 keeps a Gaussian out to 5.3 σ and is far above the denormals, also after pooling.
HEAT_CUTOFF = 1e-6


def _check_size(size: tuple[int, int], name: str) -> tuple[int, int]:
    h, w = (int(v) for v in size)
    if h <= 0 or w <= 0:
        raise ValueError(f"{name} must be a positive (H, W), got {tuple(size)}")
    return h, w


def _check_points(points_xy: np.ndarray) -> np.ndarray:
    points = np.asarray(points_xy, dtype=np.float64).reshape(-1, 2)
    if not np.isfinite(points).all():
        raise ValueError("points must be finite (x, y) pixel coordinates")
    return points


def rescale_points(
    points_xy: np.ndarray, from_size: tuple[int, int], to_size: tuple[int, int]
) -> np.ndarray:
    """Map ``(x, y)`` points from an image of ``from_size`` (H, W) to one of ``to_size`` (h, w).

    Centre-aligned, with separate x and y scales: ``x' = (x + 0.5) · w / W − 0.5`` and
    ``y' = (y + 0.5) · h / H − 0.5`` (the mapping of ``cv2.resize``), so swapping the two sizes
    gives the exact inverse.

    Args:
        points_xy: (N, 2) float array of (x, y) in ``from_size`` pixel coordinates.
        from_size: (H, W) of the image the points are given in.
        to_size: (h, w) of the image to map them into.

    Returns:
        (N, 2) float64 array of (x, y) in ``to_size`` pixel coordinates.
    """
    src_h, src_w = _check_size(from_size, "from_size")
    dst_h, dst_w = _check_size(to_size, "to_size")
    points = _check_points(points_xy)
    scale = np.array([dst_w / src_w, dst_h / src_h])
    return (points + 0.5) * scale - 0.5


def points_to_heatmap(
    points_xy: np.ndarray,
    image_size: tuple[int, int],
    out_size: tuple[int, int],
    sigma: float = DEFAULT_SIGMA,
    cutoff: float = HEAT_CUTOFF,
) -> np.ndarray:
    """A heat map of Gaussians around ``points_xy``, at the network input size ``out_size``.

    Each point is rescaled from ``image_size`` to ``out_size`` with :func:`rescale_points`,
    then an isotropic Gaussian with standard deviation ``sigma · max(h, w)`` pixels (σ is a
    fraction of the heat map's longer side) is placed on it. Each Gaussian is scaled so that
    its value at the pixel centre nearest to the point is exactly 1 (so every point inside the
    image gives a peak of 1, even a narrow one between pixel centres; a point that falls on a
    pixel centre is an unscaled Gaussian), and the Gaussians are combined by maximum. Values
    below ``cutoff`` are exactly 0 (no float32 denormals, see :data:`HEAT_CUTOFF`).

    Args:
        points_xy: (N, 2) float (x, y) points in ``image_size`` pixel coordinates; N may be 0.
        image_size: (H, W) of the original image.
        out_size: (h, w) of the heat map (the network's input size).
        sigma: Gaussian standard deviation as a fraction of ``max(h, w)``; must be > 0.
        cutoff: heat below it is set to 0; in [0, 1) (0 keeps the whole Gaussian).

    Returns:
        (h, w) float32 array with values in {0} ∪ [cutoff, 1]; all zeros without points.
    """
    h, w = _check_size(out_size, "out_size")
    if not sigma > 0:
        raise ValueError(f"sigma must be > 0, got {sigma}")
    if not 0 <= cutoff < 1:
        raise ValueError(f"cutoff must be in [0, 1), got {cutoff}")
    heat = np.zeros((h, w), dtype=np.float32)
    points = rescale_points(points_xy, image_size, (h, w))
    if len(points) == 0:
        return heat
    two_var = 2.0 * (sigma * max(h, w)) ** 2
    cols = np.arange(w, dtype=np.float64)
    rows = np.arange(h, dtype=np.float64)
    for x, y in points:
        # Exponents relative to the nearest pixel centre, so that pixel gets exactly exp(0) = 1.
        near_x, near_y = np.floor(x + 0.5), np.floor(y + 0.5)
        gx = np.exp(-((cols - x) ** 2 - (near_x - x) ** 2) / two_var)
        gy = np.exp(-((rows - y) ** 2 - (near_y - y) ** 2) / two_var)
        gaussian = np.outer(gy, gx)
        gaussian[gaussian < cutoff] = 0.0  # in float64, before float32 could make denormals
        np.maximum(heat, gaussian.astype(np.float32), out=heat)
    return np.clip(heat, 0.0, 1.0, out=heat)


def fixation_map(
    points_xy: np.ndarray, image_size: tuple[int, int], out_size: tuple[int, int]
) -> np.ndarray:
    """The binary point ("fixation") map of ``points_xy`` at ``out_size``, for the NSS loss.

    Each point is rescaled with :func:`rescale_points` and rounded to the pixel that contains
    it (halves round up); points outside the image are dropped.

    Args:
        points_xy: (N, 2) float (x, y) points in ``image_size`` pixel coordinates.
        image_size: (H, W) of the original image.
        out_size: (h, w) of the map.

    Returns:
        (h, w) float32 array of 0s and 1s (1 at each point's pixel).
    """
    h, w = _check_size(out_size, "out_size")
    fix = np.zeros((h, w), dtype=np.float32)
    points = rescale_points(points_xy, image_size, (h, w))
    cols = np.floor(points[:, 0] + 0.5).astype(np.int64)
    rows = np.floor(points[:, 1] + 0.5).astype(np.int64)
    inside = (cols >= 0) & (cols < w) & (rows >= 0) & (rows < h)
    fix[rows[inside], cols[inside]] = 1.0
    return fix


def average_heatmaps(maps: Sequence[np.ndarray]) -> np.ndarray:
    """The mean of K heat maps of the same (h, w) shape (K-shot: one map per reference).

    Returns:
        (h, w) float32 array; values stay in [0, 1] when the inputs are.
    """
    if len(maps) == 0:
        raise ValueError("average_heatmaps needs at least one heat map")
    shapes = {np.shape(m) for m in maps}
    if len(shapes) != 1 or len(next(iter(shapes))) != 2:
        raise ValueError(f"heat maps must all be 2-D with one shape, got {sorted(shapes)}")
    return np.mean(np.stack([np.asarray(m, dtype=np.float32) for m in maps]), axis=0).astype(
        np.float32
    )
