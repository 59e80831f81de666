"""Heat map → points: the peak detector on crafted maps, in original image coordinates."""

from __future__ import annotations

import numpy as np
import pytest

from samic_vos.prompts.heatmaps import points_to_heatmap, rescale_points
from samic_vos.prompts.peaks import Peak, PeakConfig, find_peaks
from samic_vos.runtime.config import apply_overrides
from samic_vos.runtime.errors import UserError

IMAGE = (480, 854)  # (H, W) of a DAVIS frame: anisotropic against a square heat map
MAP = (64, 64)
PAPER = PeakConfig(threshold=0.5, relative=False, floor=0.5)  # the paper's absolute detector
SCALE_X, SCALE_Y = IMAGE[1] / MAP[1], IMAGE[0] / MAP[0]  # original pixels per heat-map pixel


def blob(heat: np.ndarray, col: float, row: float, sigma: float, amplitude: float) -> None:
    """Add (by maximum) a Gaussian of the given amplitude centred at (col, row) of ``heat``."""
    rows, cols = np.mgrid[: heat.shape[0], : heat.shape[1]]
    g = amplitude * np.exp(-((cols - col) ** 2 + (rows - row) ** 2) / (2 * sigma**2))
    np.maximum(heat, g, out=heat)


def to_image(col: float, row: float) -> tuple[float, float]:
    """Heat-map (col, row) → original (x, y), written out: x = (col + 0.5)·W/w − 0.5."""
    return (col + 0.5) * SCALE_X - 0.5, (row + 0.5) * SCALE_Y - 0.5


def heat_at(heat: np.ndarray, peak: Peak) -> float:
    """The heat value of the map pixel containing ``peak`` (given in original coordinates)."""
    ((col, row),) = rescale_points(np.array([[peak.x, peak.y]]), IMAGE, MAP)
    return float(heat[int(np.floor(row + 0.5)), int(np.floor(col + 0.5))])


def test_two_blobs_give_two_points_at_their_centres_in_original_coordinates():
    heat = np.zeros(MAP, np.float32)
    blob(heat, col=15, row=20, sigma=2.5, amplitude=0.8)
    blob(heat, col=45, row=50, sigma=3.0, amplitude=0.95)
    peaks = find_peaks(heat, IMAGE, PAPER)
    assert len(peaks) == 2
    assert [p.score for p in peaks] == pytest.approx([0.95, 0.8])  # sorted, highest first
    assert [p.region_id for p in peaks] == [0, 1]
    for peak, (col, row) in zip(peaks, [(45, 50), (15, 20)], strict=True):
        x, y = to_image(col, row)
        assert peak.x == pytest.approx(x, abs=0.05 * SCALE_X)
        assert peak.y == pytest.approx(y, abs=0.05 * SCALE_Y)
    # Separate scales: (45, 50) on the map is (45.5·854/64 − 0.5, 50.5·480/64 − 0.5).
    assert (peaks[0].x, peaks[0].y) == pytest.approx((606.64, 378.25), abs=0.7)
    # Area: pixels above 0.5 of a σ = 3 Gaussian of amplitude 0.95 (radius 3.39 px).
    rows, cols = np.mgrid[:64, :64]
    expected_area = int((0.95 * np.exp(-((cols - 45) ** 2 + (rows - 50) ** 2) / 18) >= 0.5).sum())
    assert peaks[0].area == expected_area


def test_c_shaped_blob_whose_centroid_lies_outside_gets_a_point_inside():
    rows, cols = np.mgrid[:64, :64]
    radius = np.hypot(cols - 32, rows - 32)
    c_shape = (radius >= 8) & (radius <= 14) & ~((cols > 32) & (np.abs(rows - 32) < 6))
    heat = np.where(c_shape, 0.6 + 0.3 * (cols < 24) * (rows > 30), 0.0).astype(np.float32)
    # The centroid of the C is in its empty middle: the naive answer would be outside.
    centroid_col, centroid_row = cols[c_shape].mean(), rows[c_shape].mean()
    assert not c_shape[round(centroid_row), round(centroid_col)]
    for weighted in (True, False):
        peaks = find_peaks(heat, IMAGE, PeakConfig(weighted_centroid=weighted))
        assert len(peaks) == 1
        assert heat_at(heat, peaks[0]) >= 0.5
        assert peaks[0].score == pytest.approx(0.9)
        assert peaks[0].area == int(c_shape.sum())


def test_ring_region_excludes_its_hole():
    rows, cols = np.mgrid[:64, :64]
    radius = np.hypot(cols - 32, rows - 32)
    ring = (radius >= 8) & (radius <= 12)
    heat = np.where(ring, 0.8, 0.1).astype(np.float32)
    (peak,) = find_peaks(heat, IMAGE)
    assert peak.area == int(ring.sum())  # the hole's pixels are not counted
    assert heat_at(heat, peak) == pytest.approx(0.8)  # the point is on the ring, not the hole


def test_blob_below_the_floor_gives_no_points():
    heat = np.zeros(MAP, np.float32)
    blob(heat, col=30, row=30, sigma=3, amplitude=0.55)
    assert len(find_peaks(heat, IMAGE, PAPER)) == 1  # above the paper's threshold and floor 0.5
    assert find_peaks(heat, IMAGE, PeakConfig(relative=False, floor=0.6)) == []
    # Relative threshold (the default): a weak but clear blob is found, unless below the floor.
    weak = heat * 0.5
    assert find_peaks(weak, IMAGE, PAPER) == []
    assert len(find_peaks(weak, IMAGE)) == 1
    assert len(find_peaks(weak, IMAGE, PeakConfig(relative=True, floor=0.2))) == 1
    assert find_peaks(weak, IMAGE, PeakConfig(relative=True, floor=0.3)) == []
    assert find_peaks(heat * 0.08, IMAGE) == []  # maximum 0.044 < the default floor 0.05


def test_empty_and_zero_maps_give_no_points():
    assert find_peaks(np.zeros(MAP, np.float32), IMAGE) == []
    assert find_peaks(np.zeros((0, 0), np.float32), IMAGE) == []
    with pytest.raises(ValueError, match="2-D"):
        find_peaks(np.zeros((1, 8, 8), np.float32), IMAGE)


def test_max_points_keeps_the_highest_scoring_regions():
    heat = np.zeros(MAP, np.float32)
    amplitudes = [0.6, 0.9, 0.7, 1.0, 0.8]
    for i, amplitude in enumerate(amplitudes):
        blob(heat, col=6 + 12 * i, row=32, sigma=2, amplitude=amplitude)
    assert len(find_peaks(heat, IMAGE)) == 5
    peaks = find_peaks(heat, IMAGE, PeakConfig(max_points=3))
    assert [p.score for p in peaks] == pytest.approx([1.0, 0.9, 0.8])
    expected_x = [to_image(6 + 12 * i, 32)[0] for i in (3, 1, 4)]
    assert [p.x for p in peaks] == pytest.approx(expected_x, abs=0.1 * SCALE_X)


def test_min_area_drops_small_regions():
    heat = np.zeros(MAP, np.float32)
    heat[10, 10:13] = 0.99  # a 3-pixel speck with the highest value
    blob(heat, col=40, row=40, sigma=3, amplitude=0.9)
    peaks = find_peaks(heat, IMAGE)
    assert len(peaks) == 1 and peaks[0].score == pytest.approx(0.9)
    peaks = find_peaks(heat, IMAGE, PeakConfig(min_area=3))
    assert len(peaks) == 2 and peaks[0].area == 3
    assert (peaks[0].x, peaks[0].y) == pytest.approx(to_image(11, 10))


@pytest.mark.parametrize(("out_size", "tolerance"), [((224, 224), (1.0, 1.0)), (MAP, None)])
def test_round_trip_points_heatmap_peaks(out_size, tolerance):
    # Within one original pixel at the paper's 224×224 input; within one heat-map pixel (in
    # original units) on a coarse 64×64 map.
    tolerance = tolerance or (SCALE_X, SCALE_Y)
    rng = np.random.default_rng(0)
    for _ in range(20):
        points = np.stack(
            [rng.uniform(20, 830, 3), rng.choice([60.0, 240.0, 420.0], 3, replace=False)], axis=1
        )
        heat = points_to_heatmap(points, IMAGE, out_size)
        peaks = find_peaks(heat, IMAGE)
        assert len(peaks) == 3
        found = np.array(sorted((p.y, p.x) for p in peaks))[:, ::-1]
        expected = points[np.argsort(points[:, 1])]
        assert np.all(np.abs(found - expected) <= tolerance)
        assert all(p.score == 1.0 for p in peaks)


def test_bad_settings_are_user_errors():
    with pytest.raises(UserError, match="threshold"):
        apply_overrides(PeakConfig(), {"threshold": 1.5}, "tracker.yaml")
    with pytest.raises(UserError, match="floor"):
        PeakConfig(floor=-0.1)
    with pytest.raises(UserError, match="min_area"):
        PeakConfig(min_area=0)
    # 0 points would silently lose every object after frame 0.
    with pytest.raises(UserError, match=r"max_points must be an integer >= 1, got 0"):
        apply_overrides(PeakConfig(), {"max_points": 0}, "tracker.yaml")
    assert apply_overrides(PeakConfig(), {"threshold": 0.3}).threshold == 0.3


@pytest.mark.parametrize("width", [1, 2, 3])
@pytest.mark.parametrize("height", [1, 2, 3])
@pytest.mark.parametrize("weighted", [True, False])
def test_small_regions_get_their_exact_centroid(width, height, weighted):
    # Regions 1–3 pixels wide and tall (cv2.moments once misread 2-column float arrays as
    # point lists: a uniform 2×2 region at (30, 30) came out at (30.0, 30.0), not (30.5, 30.5)).
    heat = np.zeros(MAP, np.float32)
    values = {}
    for dy in range(height):
        for dx in range(width):
            values[30 + dx, 28 + dy] = 0.6 + 0.1 * dx + 0.05 * dy  # (col, row) → heat
            heat[28 + dy, 30 + dx] = values[30 + dx, 28 + dy]
    weights = {key: (value if weighted else 1.0) for key, value in values.items()}
    total = sum(weights.values())
    expected_x = sum(col * w for (col, _), w in weights.items()) / total
    expected_y = sum(row * w for (_, row), w in weights.items()) / total
    config = PeakConfig(threshold=0.5, relative=False, min_area=1, weighted_centroid=weighted)
    (peak,) = find_peaks(heat, MAP, config)  # image size = map size: coordinates unchanged
    assert (peak.x, peak.y) == pytest.approx((expected_x, expected_y), abs=1e-5)
    assert peak.area == width * height


def test_uniform_two_by_two_region_is_centred_between_its_pixels():
    heat = np.zeros(MAP, np.float32)
    heat[30:32, 30:32] = 0.9
    (peak,) = find_peaks(heat, MAP, PeakConfig(min_area=1))
    assert (peak.x, peak.y) == pytest.approx((30.5, 30.5), abs=1e-6)
