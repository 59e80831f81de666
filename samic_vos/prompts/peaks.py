"""Heat map → points: the paper's peak detector.

Threshold the heat map, find connected regions by contour detection, and take one point per
region at its centroid (spatial moments); points map back to the original image's (x, y)
pixel coordinates (x right, y down, pixel centres at integers) with separate x and y scales.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from samic_vos.prompts.heatmaps import rescale_points
from samic_vos.prompts.mask_points import MAX_POINTS_PER_OBJECT
from samic_vos.runtime.config import require


@dataclass
class PeakConfig:
    """Settings of :func:`find_peaks` (values are heat-map units and heat-map pixels)."""

    # Regions are the pixels with heat >= threshold (the paper's 0.5).
    threshold: float = 0.5
    # If True the cut is threshold × the map's maximum instead of threshold itself (paper:
    # False). True by default: SAMIC's scale-free loss leaves trained maps peaking at 0.07–0.3,
    # even with a BCE term, so an absolute 0.5 gives no points (BENCHMARKS.md, SAMIC points).
    relative: bool = True
    # Regions smaller than this many heat-map pixels are noise and dropped (paper silent; a
    # Gaussian of σ = 0.02·64 px on a 64×64 map covers 7–9 pixels above 0.5, so 4 keeps it).
    min_area: int = 4
    # "No object": a map whose maximum is below this gives no points (paper silent). 0.05: under
    # the smallest maximum of a trained map on DAVIS val (0.068), above an all-zero map.
    floor: float = 0.05
    # At most this many points (the highest-scoring regions); paper silent.
    max_points: int = MAX_POINTS_PER_OBJECT
    # Centroid from heat-weighted moments (sub-pixel accurate on a Gaussian) or, if False, from
    # the binary region's moments; paper silent ("centroid").
    weighted_centroid: bool = True

    def __post_init__(self) -> None:
        require(0 < self.threshold <= 1, "threshold", "in (0, 1]", self.threshold)
        require(0 <= self.floor <= 1, "floor", "in [0, 1]", self.floor)
        require(self.min_area >= 1, "min_area", "an integer >= 1", self.min_area)
        # 0 would silently lose every object after the first frame.
        require(self.max_points >= 1, "max_points", "an integer >= 1", self.max_points)


@dataclass(frozen=True)
class Peak:
    """One detected point.

    Attributes:
        x, y: the point in original image pixel coordinates (x right, y down).
        score: the region's maximum heat value, in [0, 1].
        area: the region's size in heat-map pixels (holes excluded).
        region_id: the region's rank among all regions kept before the ``max_points`` cap
            (0 = highest score), i.e. its index in the returned list.
    """

    x: float
    y: float
    score: float
    area: int
    region_id: int


def _regions(binary: np.ndarray) -> list[tuple[int, int, np.ndarray]]:
    """The 8-connected regions of ``binary`` (uint8 0/1), found as contours.

    Each region is ``(x0, y0, mask)``: a boolean mask of the region's bounding box, whose
    top-left pixel is column ``x0``, row ``y0`` of ``binary``. A region is everything inside an
    outer contour that is above the threshold: holes (pixels below the threshold enclosed by
    the region) are not part of it, so neither its area nor its centroid counts them (a
    ring-shaped heat map is a ring, not a disk). An island inside a hole belongs to the region
    that encloses it.
    """
    contours, _ = cv2.findContours(binary, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    regions = []
    for contour in contours:
        x0, y0, w, h = cv2.boundingRect(contour)
        window = binary[y0 : y0 + h, x0 : x0 + w]
        filled = np.zeros_like(window)
        cv2.drawContours(filled, [contour], -1, 1, cv2.FILLED, offset=(-x0, -y0))
        regions.append((x0, y0, (filled & window).astype(bool)))
    return regions


def _region_point(heat: np.ndarray, region: np.ndarray, weighted: bool) -> tuple[float, float]:
    """The (x, y) point of ``region`` in ``heat`` (same shape): its centroid, or its maximum.

    The centroid comes from the spatial moments of the region (weighted by heat if
    ``weighted``), computed in float64 with numpy: ``cv2.moments`` reads a float32 array with
    2 columns as a list of 2-D points, which misplaces every region 2 pixels wide. If the
    pixel containing the centroid is not in the region (e.g. a C shape), the region's highest
    pixel is used instead (ties: smallest (row, col)).
    """
    weights = np.where(region, heat, 0.0) if weighted else region
    weights = weights.astype(np.float64)
    m00 = weights.sum()
    if m00 > 0:
        rows, cols = np.indices(region.shape)
        cx, cy = float((weights * cols).sum() / m00), float((weights * rows).sum() / m00)
        col, row = int(np.floor(cx + 0.5)), int(np.floor(cy + 0.5))
        if 0 <= row < region.shape[0] and 0 <= col < region.shape[1] and region[row, col]:
            return cx, cy
    row, col = np.unravel_index(np.argmax(np.where(region, heat, -np.inf)), region.shape)
    return float(col), float(row)


def find_peaks(
    heatmap: np.ndarray, image_size: tuple[int, int], config: PeakConfig | None = None
) -> list[Peak]:
    """Points of ``heatmap``, one per thresholded region, in original image coordinates.

    Steps: if the map's maximum is below ``config.floor`` → ``[]`` ("no object"); threshold at
    ``config.threshold`` (times the maximum if ``config.relative``); regions by contour
    detection (8-connected, holes excluded); regions under ``config.min_area`` pixels dropped;
    one point per region at its centroid, or at its maximum when the centroid lies outside it;
    the ``config.max_points`` best kept.

    Args:
        heatmap: (h, w) float array with values in [0, 1] (NaN counts as 0).
        image_size: (H, W) of the original image the points are returned in.
        config: detector settings (``PeakConfig()`` if None).

    Returns:
        Peaks sorted by score, highest first (ties: larger area, then smaller y, then x).
    """
    config = config or PeakConfig()
    heat = np.nan_to_num(np.asarray(heatmap, dtype=np.float32), nan=0.0)
    if heat.ndim != 2:
        raise ValueError(f"heatmap must be 2-D (h, w), got shape {heat.shape}")
    if heat.size == 0:
        return []
    top = float(heat.max())
    if top < config.floor:
        return []
    cut = config.threshold * top if config.relative else config.threshold
    binary = (heat >= cut).astype(np.uint8)

    found = []
    for x0, y0, region in _regions(binary):
        area = int(region.sum())
        if area < config.min_area:
            continue
        window = heat[y0 : y0 + region.shape[0], x0 : x0 + region.shape[1]]
        x, y = _region_point(window, region, config.weighted_centroid)
        found.append((float(window[region].max()), area, y0 + y, x0 + x))
    found.sort(key=lambda f: (-f[0], -f[1], f[2], f[3]))
    found = found[: config.max_points]
    if not found:
        return []

    points = rescale_points(np.array([[x, y] for _, _, y, x in found]), heat.shape, image_size)
    return [
        Peak(x=float(px), y=float(py), score=score, area=area, region_id=i)
        for i, ((score, area, _, _), (px, py)) in enumerate(zip(found, points, strict=True))
    ]
