"""Few-shot scores against values computed by hand (HSNet's and PerSAM's definitions)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from samic_vos.eval.fewshot_metrics import HsnetMeter, PersamMeter, hsnet_areas, nearest_resize


def row(*values: int) -> np.ndarray:
    """A (1, N) bool mask."""
    return np.array([values], dtype=bool)


def test_hsnet_areas_of_one_episode() -> None:
    # pred 1100, gt 0110: fg I = 1, U = 3; bg I = 1 (last pixel), U = 3.
    assert hsnet_areas(row(1, 1, 0, 0), row(0, 1, 1, 0)).tolist() == [[1, 1], [3, 3]]


def test_hsnet_two_classes_sum_areas_before_dividing() -> None:
    meter = HsnetMeter(["a", "b"])
    # class a, two episodes of 4 pixels:
    #   pred 1100 / gt 1000: fg I 1 U 2; bg I 2 U 3
    #   pred 0011 / gt 0011: fg I 2 U 2; bg I 2 U 2
    meter.update("a", row(1, 1, 0, 0), row(1, 0, 0, 0))
    meter.update("a", row(0, 0, 1, 1), row(0, 0, 1, 1))
    # class b, one episode: pred 1111 / gt 0001: fg I 1 U 4; bg I 0 U 3
    meter.update("b", row(1, 1, 1, 1), row(0, 0, 0, 1))
    per_class = meter.per_class()
    assert per_class["a"] == pytest.approx(100 * 3 / 4)  # (1 + 2) / (2 + 2), not mean(1/2, 1)
    assert per_class["b"] == pytest.approx(100 * 1 / 4)
    assert meter.miou() == pytest.approx(50.0)
    # FB-IoU: fg 4/8 and bg 4/8 over all classes' summed areas.
    assert meter.fb_iou() == pytest.approx(50.0)
    summary = meter.summary()
    assert summary["global"] == {"mIoU": pytest.approx(50.0), "FB-IoU": pytest.approx(50.0)}
    assert summary["per_class"] == per_class


def test_hsnet_fb_iou_background_term() -> None:
    meter = HsnetMeter(["a"])
    # 10 pixels: gt fg = first 2; pred fg = first 3. fg I 2 U 3; bg I 7 U 8.
    gt = np.zeros((2, 5), dtype=bool)
    gt[0, :2] = True
    pred = gt.copy()
    pred[0, 2] = True
    meter.update("a", pred, gt)
    assert meter.miou() == pytest.approx(100 * 2 / 3)
    assert meter.fb_iou() == pytest.approx(100 * (2 / 3 + 7 / 8) / 2)


def test_hsnet_empty_prediction_and_empty_ground_truth() -> None:
    meter = HsnetMeter(["missed", "absent", "unseen"])
    meter.update("missed", row(0, 0, 0, 0), row(0, 1, 1, 0))  # fg I 0 U 2; bg I 2 U 4
    meter.update("absent", row(0, 0, 0, 0), row(0, 0, 0, 0))  # fg I 0 U 0 → 0/max(0,1) = 0
    per_class = meter.per_class()
    assert per_class == {"missed": 0.0, "absent": 0.0, "unseen": 0.0}
    assert meter.miou() == 0.0  # classes without episodes count, as HSNet's class_ids_interest
    assert meter.fb_iou() == pytest.approx(100 * (0 / 2 + 6 / 8) / 2)
    empty = HsnetMeter(["a"])
    assert math.isnan(empty.fb_iou())  # 0/0, as HSNet's torch division
    with pytest.raises(ValueError, match="class 'z' is not one of"):
        meter.update("z", row(1), row(1))


def test_persam_iou_with_its_epsilon() -> None:
    meter = PersamMeter()
    meter.update("dog", row(1, 1, 0, 0), row(1, 0, 0, 0))  # I 1 U 2
    meter.update("dog", row(0, 0, 1, 1), row(0, 0, 1, 1))  # I 2 U 2
    meter.update("can", row(0, 0, 0, 0), row(0, 1, 1, 0))  # empty prediction: I 0 U 2
    meter.update("cup", row(0, 0, 0, 0), row(0, 0, 0, 0))  # empty both: 0 / (0 + 1e-10) = 0
    per_class = meter.per_class()
    assert per_class["dog"] == pytest.approx(100 * 3 / (4 + 1e-10), rel=1e-15)
    assert per_class["can"] == 0.0 and per_class["cup"] == 0.0
    assert list(per_class) == ["dog", "can", "cup"]
    assert meter.miou() == pytest.approx(75.0 / 3)
    assert meter.summary() == {"global": {"mIoU": meter.miou()}, "per_class": per_class}
    assert math.isnan(PersamMeter().miou())


def test_masks_of_different_sizes_are_refused() -> None:
    with pytest.raises(ValueError, match="one size"):
        hsnet_areas(row(1, 0), row(1, 0, 0))


@pytest.mark.parametrize(
    ("shape", "size"), [((224, 224), (400, 400)), ((7, 5), (3, 13)), ((480, 854), (400, 400))]
)
def test_nearest_resize_is_torchs_nearest_interpolation(shape, size) -> None:
    import torch
    import torch.nn.functional as F

    mask = np.random.default_rng(0).random(shape) < 0.5
    want = F.interpolate(torch.from_numpy(mask).float()[None, None], size, mode="nearest")
    assert np.array_equal(nearest_resize(mask, size), want[0, 0].numpy() > 0.5)


def test_hsnet_counts_at_its_eval_size() -> None:
    # 1x3 → 1x4: source columns 0, 0, 1, 2 (pixel 0 counts twice).
    gt, pred = row(1, 0, 0), row(1, 1, 0)
    native, hsnet = HsnetMeter(["a"]), HsnetMeter(["a"], eval_size=(1, 4))
    native.update("a", pred, gt)
    hsnet.update("a", pred, gt)  # gt 1100, pred 1110: fg I 2 U 3; bg I 1 U 2
    assert native.miou() == pytest.approx(100 / 2)
    assert hsnet.miou() == pytest.approx(100 * 2 / 3)
    assert hsnet.fb_iou() == pytest.approx(100 * (2 / 3 + 1 / 2) / 2)
