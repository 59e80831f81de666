"""Deterministic points from masks: interior points and the largest missed part."""

from __future__ import annotations

import numpy as np
import pytest

from samic_vos.prompts.mask_points import interior_points, largest_error_point

ROWS, COLS = np.mgrid[:80, :120]


def disk(col: int, row: int, radius: float) -> np.ndarray:
    return (COLS - col) ** 2 + (ROWS - row) ** 2 <= radius**2


def test_disk_gives_its_centre_as_x_y():
    points = interior_points(disk(col=70, row=30, radius=12))
    assert points.dtype == np.float32 and points.shape == (1, 2)
    assert points.tolist() == [[70.0, 30.0]]  # (x, y) = (col, row)


def test_two_components_largest_first_and_max_points():
    mask = disk(col=20, row=20, radius=6) | disk(col=80, row=50, radius=15)
    assert interior_points(mask).tolist() == [[80.0, 50.0]]
    assert interior_points(mask, max_points=2).tolist() == [[80.0, 50.0], [20.0, 20.0]]
    assert interior_points(mask, max_points=5).shape == (2, 2)  # one point per component
    assert interior_points(mask, max_points=0).shape == (0, 2)


def test_small_components_dropped_unless_they_are_all_there_is():
    speck = np.zeros((80, 120), bool)
    speck[5:8, 5:8] = True  # 9 pixels < the default min_area of 16
    mask = speck | disk(col=60, row=40, radius=10)
    assert interior_points(mask, max_points=3).tolist() == [[60.0, 40.0]]
    assert interior_points(mask, max_points=3, min_area=9).tolist() == [[60.0, 40.0], [6.0, 6.0]]
    assert interior_points(speck).tolist() == [[6.0, 6.0]]


def test_ring_point_lies_on_the_ring_midway_between_its_edges():
    ring = disk(col=60, row=40, radius=20) & ~disk(col=60, row=40, radius=10)
    ((x, y),) = interior_points(ring)
    assert ring[int(y), int(x)]
    assert np.hypot(x - 60, y - 40) == pytest.approx(15, abs=1.0)


def test_component_cut_by_the_image_border_and_tie_break():
    # A 20×20 square touching the left edge: the border counts as boundary, so the point is in
    # the middle of the visible square; columns 9 and 10 (rows 19 and 20) tie → smallest.
    mask = np.zeros((80, 120), bool)
    mask[10:30, 0:20] = True
    assert interior_points(mask).tolist() == [[9.0, 19.0]]


def test_empty_mask_gives_no_points():
    points = interior_points(np.zeros((80, 120), bool), max_points=3)
    assert points.shape == (0, 2) and points.dtype == np.float32
    with pytest.raises(ValueError, match="2-D"):
        interior_points(np.zeros((1, 80, 120), bool))


def test_largest_error_point_is_inside_the_largest_missed_part():
    target = np.zeros((80, 120), bool)
    target[10:70, 10:110] = True
    current = target.copy()
    current[10:70, 60:110] = False  # the right half is missed (60 × 50)
    current[10:20, 10:20] = False  # and a small corner (10 × 10)
    x, y = largest_error_point(target, current)
    assert target[int(y), int(x)] and not current[int(y), int(x)]
    assert x >= 60  # in the larger missed part, not the corner
    # 25 px from the part's left/right edges at columns 84–85, and at least 25 from its top and
    # bottom on rows 34–45: of those ties the smallest (row, col).
    assert (x, y) == (84.0, 34.0)


def test_nothing_missed_gives_none():
    target = disk(col=60, row=40, radius=10)
    assert largest_error_point(target, target | disk(col=10, row=10, radius=3)) is None
    assert largest_error_point(np.zeros((80, 120), bool), np.zeros((80, 120), bool)) is None
    with pytest.raises(ValueError, match="shape"):
        largest_error_point(target, target[:, :60])
