"""SamSegmenter, first-frame prompts and device selection, on a tiny random-weight SAM."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from segment_anything import SamPredictor

from samic_vos.runtime.devices import select_device
from samic_vos.runtime.errors import UserError
from samic_vos.sam.encoder import EncoderConfig
from samic_vos.sam.models import build_sam
from samic_vos.sam.segmenter import (
    NO_OBJECT_LOGIT,
    SamSegmenter,
    Segmentation,
    group_points_by_component,
    prompts_from_mask,
)

HEIGHT, WIDTH = 90, 120
# Pixels whose logit is this close to 0 may flip between batched and single decoding.
THRESHOLD_TOLERANCE = 1e-4


@pytest.fixture(scope="module")
def sam():
    torch.manual_seed(0)
    return build_sam("tiny", random_init=True)


@pytest.fixture(scope="module")
def frame() -> np.ndarray:
    rng = np.random.default_rng(1)
    image = rng.integers(0, 50, (HEIGHT, WIDTH, 3), dtype=np.uint8)
    image[15:60, 10:50] = (220, 30, 30)
    image[40:80, 70:110] = (30, 30, 220)
    return image


@pytest.fixture()
def segmenter(sam, frame) -> SamSegmenter:
    seg = SamSegmenter(sam, "cpu", EncoderConfig(precision="fp32"))
    seg.set_frame(frame)
    return seg


def _near_threshold(*segmentations: Segmentation) -> np.ndarray:
    return np.any([np.abs(s.logits) < THRESHOLD_TOLERANCE for s in segmentations], axis=0)


def test_segment_shapes_dtypes_and_consistency(segmenter):
    groups = [np.array([[30.0, 35.0]]), np.array([[90.0, 60.0], [80.0, 50.0]])]
    result = segmenter.segment(groups)
    assert result.mask.shape == (HEIGHT, WIDTH) and result.mask.dtype == np.bool_
    assert result.logits.shape == (HEIGHT, WIDTH) and result.logits.dtype == np.float32
    np.testing.assert_array_equal(result.mask, result.logits > 0)
    assert 0.0 <= result.confidence <= 1.0
    assert len(result.group_scores) == 2
    assert all(0.0 <= s <= 1.0 for s in result.group_scores)


def test_union_of_groups_covers_each_group(segmenter):
    a = np.array([[30.0, 35.0]])
    b = np.array([[90.0, 60.0]])
    single_a, single_b = segmenter.segment([a]), segmenter.segment([b])
    both = segmenter.segment([a, b])
    settled = ~_near_threshold(single_a, single_b, both)
    np.testing.assert_array_equal((single_a.mask | single_b.mask)[settled], both.mask[settled])
    np.testing.assert_allclose(
        both.logits, np.maximum(single_a.logits, single_b.logits), rtol=0, atol=1e-4
    )
    np.testing.assert_allclose(
        both.group_scores, single_a.group_scores + single_b.group_scores, atol=1e-5
    )
    # Confidence: group scores weighted by the area of each group's mask.
    areas = np.array([single_a.mask.sum(), single_b.mask.sum()], dtype=float)
    if areas.sum() > 0:
        expected = float(np.dot(both.group_scores, areas) / areas.sum())
        assert both.confidence == pytest.approx(expected, abs=1e-3)


def test_matches_meta_predictor(sam, frame, segmenter):
    """One point: best of SAM's three masks; several points: SAM's single mask."""
    predictor = SamPredictor(sam)
    predictor.set_image(frame)
    one = np.array([[30.0, 35.0]])
    masks, iou, _ = predictor.predict(one, np.ones(1), multimask_output=True, return_logits=True)
    best = int(np.argmax(iou))
    ours = segmenter.segment([one])
    np.testing.assert_allclose(ours.logits, masks[best], atol=1e-4)
    assert ours.group_scores[0] == pytest.approx(float(np.clip(iou[best], 0, 1)), abs=1e-5)

    several = np.array([[90.0, 60.0], [80.0, 50.0], [100.0, 70.0]])
    masks, iou, _ = predictor.predict(several, np.ones(3), multimask_output=False)
    ours = segmenter.segment([several])
    settled = ~_near_threshold(ours)
    np.testing.assert_array_equal(ours.mask[settled], masks[0][settled])
    assert ours.group_scores[0] == pytest.approx(float(np.clip(iou[0], 0, 1)), abs=1e-5)


def test_no_groups_gives_an_empty_object(segmenter):
    for groups in ([], [np.zeros((0, 2))]):
        result = segmenter.segment(groups)
        assert not result.mask.any() and result.mask.shape == (HEIGHT, WIDTH)
        assert np.all(result.logits == NO_OBJECT_LOGIT)
        assert result.confidence == 0.0 and result.group_scores == []


def test_image_encoder_runs_once_per_frame(sam, frame):
    calls = []
    # The patch embedding is the first module of every encoder implementation.
    handle = sam.image_encoder.patch_embed.register_forward_hook(lambda *args: calls.append(1))
    try:
        seg = SamSegmenter(sam, "cpu", EncoderConfig(precision="fp32"))
        for t in range(2):
            seg.set_frame(np.roll(frame, 5 * t, axis=1))
            for objects in range(3):  # three objects, several groups each
                seg.segment([np.array([[10.0 + objects, 20.0]]), np.array([[60.0, 40.0]] * 2)])
            prompts_from_mask(seg, np.pad(np.ones((20, 20), bool), ((10, 60), (10, 90))))
            assert len(calls) == t + 1
    finally:
        handle.remove()


def test_segment_before_set_frame_fails(sam):
    with pytest.raises(RuntimeError, match="set_frame"):
        SamSegmenter(sam, "cpu", EncoderConfig(precision="fp32")).segment([np.array([[1.0, 1.0]])])


def test_group_points_by_component():
    mask = np.zeros((30, 40), bool)
    mask[2:10, 2:10] = True
    mask[15:25, 20:35] = True
    points = np.array([[5, 5], [25, 20], [3, 8], [0, 29]], dtype=np.float32)
    groups = group_points_by_component(points, mask)
    assert [g.tolist() for g in groups] == [[[5, 5], [3, 8]], [[25, 20]], [[0, 29]]]


def test_prompts_from_mask_on_tiny_sam(segmenter):
    mask = np.zeros((HEIGHT, WIDTH), bool)
    mask[15:60, 10:50] = True
    mask[70:85, 100:115] = True  # a second, small component
    points, segmentation = prompts_from_mask(segmenter, mask, max_points=4)
    assert 2 <= len(points) <= 4 and points.dtype == np.float32
    cols, rows = points[:, 0].astype(int), points[:, 1].astype(int)
    assert mask[rows, cols].all()
    again = segmenter.segment(group_points_by_component(points, mask))
    np.testing.assert_array_equal(again.logits, segmentation.logits)


class DiskSegmenter:
    """Stands in for SAM: each point yields a disk of radius ``radius`` around it."""

    def __init__(self, shape: tuple[int, int], radius: float) -> None:
        self.rows, self.cols = np.indices(shape)
        self.radius = radius
        self.calls = 0

    def segment(self, groups):
        self.calls += 1
        mask = np.zeros(self.rows.shape, bool)
        for group in groups:
            for x, y in group:
                mask |= (self.cols - x) ** 2 + (self.rows - y) ** 2 <= self.radius**2
        logits = np.where(mask, 1.0, -1.0).astype(np.float32)
        return Segmentation(mask, logits, 1.0, [1.0] * len(groups))


def test_prompts_from_mask_adds_points_until_max_points():
    mask = np.zeros((40, 200), bool)
    mask[10:30, 5:195] = True  # a long bar: small disks need many points
    disks = DiskSegmenter(mask.shape, radius=8)
    points, segmentation = prompts_from_mask(disks, mask, max_points=5, target_iou=0.99)
    assert len(points) == 5 and disks.calls == 5
    assert mask[points[:, 1].astype(int), points[:, 0].astype(int)].all()
    assert len({tuple(p) for p in points.tolist()}) == 5
    assert segmentation.mask.sum() > 4 * np.pi * 8**2  # five disks, barely overlapping


def test_prompts_from_mask_stops_at_target_iou():
    mask = np.zeros((60, 60), bool)
    rows, cols = np.indices(mask.shape)
    mask[(cols - 30) ** 2 + (rows - 30) ** 2 <= 15**2] = True
    disks = DiskSegmenter(mask.shape, radius=15)
    points, segmentation = prompts_from_mask(disks, mask, max_points=8, target_iou=0.9)
    assert points.tolist() == [[30.0, 30.0]] and disks.calls == 1
    np.testing.assert_array_equal(segmentation.mask, mask)


class FirstPointSegmenter(DiskSegmenter):
    """Ignores every point but the first: added points never improve the mask."""

    def segment(self, groups):
        return super().segment([np.concatenate(groups)[:1]])


def test_prompts_from_mask_stops_when_a_point_does_not_help():
    mask = np.zeros((40, 40), bool)
    mask[5:35, 5:35] = True
    pixels = DiskSegmenter(mask.shape, radius=0)  # each point adds one pixel: always better
    points, _ = prompts_from_mask(pixels, mask, max_points=8, target_iou=0.9)
    assert len(points) == 8
    stuck = FirstPointSegmenter(mask.shape, radius=5)
    points, segmentation = prompts_from_mask(stuck, mask, max_points=8, target_iou=0.9)
    assert len(points) == 1 and stuck.calls == 2  # the second point was tried and dropped
    np.testing.assert_array_equal(segmentation.mask, stuck.segment([points]).mask)
    covering = DiskSegmenter(mask.shape, radius=60)  # nothing of the mask is missed: stop
    points, _ = prompts_from_mask(covering, mask, max_points=8, target_iou=0.99)
    assert len(points) == 1 and covering.calls == 1


def test_prompts_from_empty_mask(segmenter):
    points, segmentation = prompts_from_mask(segmenter, np.zeros((HEIGHT, WIDTH), bool))
    assert points.shape == (0, 2)
    assert not segmentation.mask.any() and segmentation.confidence == 0.0


def test_select_device(monkeypatch):
    assert select_device("cpu") == torch.device("cpu")
    assert select_device("auto").type in {"cuda", "mps", "cpu"}
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(UserError) as err:
        select_device("cuda")
    assert "'cuda'" in str(err.value) and "cpu" in str(err.value)
    with pytest.raises(UserError, match="unknown device 'tpu'"):
        select_device("tpu")
    with pytest.raises(UserError, match="unknown device"):
        select_device("cpu:1")
