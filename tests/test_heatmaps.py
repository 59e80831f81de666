"""Points → heat maps: values at and around points, rescaling, fixation maps, K-shot averaging."""

from __future__ import annotations

import math

import numpy as np
import pytest

from samic_vos.prompts.heatmaps import (
    average_heatmaps,
    fixation_map,
    points_to_heatmap,
    rescale_points,
)


def test_peak_is_one_at_a_pixel_centre_and_gaussian_around_it():
    heat = points_to_heatmap(np.array([[20.0, 10.0]]), (50, 100), (50, 100), sigma=0.02)
    sigma_px = 0.02 * 100  # σ is a fraction of the longer side of the heat map
    assert heat.dtype == np.float32 and heat.shape == (50, 100)
    assert heat[10, 20] == 1.0
    assert np.unravel_index(np.argmax(heat), heat.shape) == (10, 20)
    for d_row, d_col in [(0, 1), (1, 0), (2, 2), (-3, 1), (0, -5)]:
        expected = math.exp(-(d_row**2 + d_col**2) / (2 * sigma_px**2))
        assert heat[10 + d_row, 20 + d_col] == pytest.approx(expected, rel=1e-5)
    # Isotropic in the heat map even though the map is not square.
    assert heat[13, 20] == pytest.approx(heat[10, 23], rel=1e-6)
    assert heat.min() >= 0.0 and heat.max() <= 1.0


def test_points_are_rescaled_with_separate_x_and_y_scales():
    # A 480×854 image on a 64×64 map: the point chosen to land on pixel centre (col 1, row 40)
    # through x' = (x + 0.5)·64/854 − 0.5 and y' = (y + 0.5)·64/480 − 0.5.
    image, out = (480, 854), (64, 64)
    x = (1 + 0.5) * 854 / 64 - 0.5
    y = (40 + 0.5) * 480 / 64 - 0.5
    heat = points_to_heatmap(np.array([[x, y]]), image, out)
    assert np.unravel_index(np.argmax(heat), heat.shape) == (40, 1)
    assert heat[40, 1] == 1.0
    assert rescale_points(np.array([[426.5, 239.5]]), image, out) == pytest.approx(
        np.array([[31.5, 31.5]])
    )


def test_point_between_pixel_centres_still_peaks_at_one():
    # A narrow Gaussian (σ = 0.3 px) between pixel centres: the nearest pixel is still exactly 1.
    heat = points_to_heatmap(np.array([[3.4, 5.2]]), (16, 16), (16, 16), sigma=0.3 / 16)
    assert heat[5, 3] == 1.0
    assert heat[5, 4] == pytest.approx(math.exp(-(0.6**2 - 0.4**2) / (2 * 0.3**2)), rel=1e-5)
    assert heat.max() == 1.0


def test_overlapping_points_combine_by_maximum_not_sum():
    heat = points_to_heatmap(np.array([[10.0, 10.0], [12.0, 10.0]]), (32, 32), (32, 32), 0.1)
    single = points_to_heatmap(np.array([[10.0, 10.0]]), (32, 32), (32, 32), 0.1)
    assert heat[10, 10] == 1.0 and heat[10, 12] == 1.0
    assert heat.max() == 1.0
    assert heat[10, 11] == pytest.approx(single[10, 11])  # max of two equal tails, not their sum


def test_no_points_gives_zeros_and_bad_sigma_is_rejected():
    heat = points_to_heatmap(np.zeros((0, 2)), (480, 854), (24, 32))
    assert heat.shape == (24, 32) and heat.dtype == np.float32 and not heat.any()
    with pytest.raises(ValueError, match="sigma"):
        points_to_heatmap(np.array([[1.0, 1.0]]), (8, 8), (8, 8), sigma=0.0)
    with pytest.raises(ValueError, match="finite"):
        points_to_heatmap(np.array([[np.nan, 1.0]]), (8, 8), (8, 8))


def test_point_outside_the_image_leaves_only_a_tail():
    heat = points_to_heatmap(np.array([[-10.0, 4.0]]), (8, 8), (8, 8), sigma=0.25)
    sigma_px = 0.25 * 8
    assert heat.max() == pytest.approx(math.exp(-(10**2) / (2 * sigma_px**2)), rel=1e-4)


def test_rescale_points_round_trip():
    points = np.array([[0.0, 0.0], [853.0, 479.0], [100.25, 333.75]])
    there = rescale_points(points, (480, 854), (64, 48))
    assert rescale_points(there, (64, 48), (480, 854)) == pytest.approx(points)
    # The image's outer edges map onto the map's outer edges.
    edges = rescale_points(np.array([[-0.5, -0.5], [853.5, 479.5]]), (480, 854), (64, 48))
    assert edges == pytest.approx(np.array([[-0.5, -0.5], [47.5, 63.5]]))


def test_fixation_map_marks_the_pixel_containing_each_point():
    points = np.array([[426.5, 239.5], [0.0, 0.0], [853.4, 479.4], [900.0, 10.0]])
    fix = fixation_map(points, (480, 854), (64, 64))
    assert fix.dtype == np.float32 and fix.shape == (64, 64)
    # Centre of the image (31.5, 31.5) rounds up to (32, 32); the last point is outside.
    assert sorted(zip(*np.nonzero(fix), strict=True)) == [(0, 0), (32, 32), (63, 63)]
    assert set(np.unique(fix)) == {0.0, 1.0}


def test_average_heatmaps_is_the_mean():
    a = points_to_heatmap(np.array([[4.0, 4.0]]), (16, 16), (16, 16))
    b = points_to_heatmap(np.array([[10.0, 12.0]]), (16, 16), (16, 16))
    mean = average_heatmaps([a, b])
    assert mean.dtype == np.float32
    assert mean[4, 4] == pytest.approx((1.0 + b[4, 4]) / 2)
    assert mean == pytest.approx((a + b) / 2)
    assert average_heatmaps([a]) == pytest.approx(a)
    with pytest.raises(ValueError):
        average_heatmaps([a, np.zeros((8, 8))])
    with pytest.raises(ValueError):
        average_heatmaps([])
