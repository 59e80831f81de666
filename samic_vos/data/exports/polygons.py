"""Polygons of a mask's outlines, for the formats that store shapes (YOLO-seg, LabelMe, COCO)."""

from __future__ import annotations

import cv2
import numpy as np

MIN_POINTS = 3  # a polygon's fewest points (LabelMe and YOLO-seg refuse fewer)


def mask_polygons(mask: np.ndarray) -> list[np.ndarray]:
    """The outer outline of each connected part of (H, W) bool ``mask``: (N, 2) float64 (x, y)
    pixel indices (column, row) of its boundary pixels in order (OpenCV's contours, every point
    kept), N >= 3, the largest part first. A part of one or two pixels, whose outline has fewer
    points, repeats them (a degenerate polygon: the pixel, or the two, is all a rasteriser
    draws), so that no part, and no object of one or two pixels, is lost. Filling them at pixel
    centres (OpenCV ``fillPoly``, Pillow's ``ImageDraw.polygon`` with its outline, as LabelMe
    draws shapes) gives the part back without its holes."""
    contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    outlines = [
        np.resize(c.reshape(-1, 2), (max(len(c), MIN_POINTS), 2)).astype(np.float64)
        for c in contours
    ]
    return sorted(outlines, key=lambda c: -cv2.contourArea(c.astype(np.float32)))


COCO_UPSAMPLE = 2  # outlines traced on a mask twice as fine: a quarter pixel inside the edges


def coco_polygons(mask: np.ndarray) -> list[np.ndarray]:
    """The outer outline of each connected part of (H, W) bool ``mask`` as COCO polygons:
    (N, 2) float64 (x, y) vertices in COCO's continuous coordinates (pixel (x, y) covers
    [x, x + 1) x [y, y + 1)), a quarter pixel inside the parts' pixel edges, so that
    pycocotools' rasteriser (``frPyObjects``, pixel centres) gives each part's pixels back
    exactly, its holes filled (COCO polygons cannot hold holes). Largest part first."""
    fine = np.kron(mask.astype(np.uint8), np.ones((COCO_UPSAMPLE, COCO_UPSAMPLE), np.uint8))
    contours, _ = cv2.findContours(fine, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    outlines = [(c.reshape(-1, 2).astype(np.float64) + 0.5) / COCO_UPSAMPLE for c in contours]
    return sorted(outlines, key=lambda c: -cv2.contourArea(c.astype(np.float32)))
