"""SamSegmenter.prompt (points with labels, box, mask input) and embed/set_embedding, checked
against Meta's SamPredictor on a tiny random-weight SAM."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from segment_anything import SamPredictor

from samic_vos.sam.encoder import EncoderConfig
from samic_vos.sam.models import build_sam
from samic_vos.sam.segmenter import SamSegmenter

HEIGHT, WIDTH = 70, 100


@pytest.fixture(scope="module")
def sam():
    torch.manual_seed(0)
    return build_sam("tiny", random_init=True)


@pytest.fixture(scope="module")
def frame() -> np.ndarray:
    rng = np.random.default_rng(3)
    image = rng.integers(0, 60, (HEIGHT, WIDTH, 3), dtype=np.uint8)
    image[10:50, 15:60] = (200, 40, 40)
    return image


@pytest.fixture(scope="module")
def predictor(sam, frame) -> SamPredictor:
    predictor = SamPredictor(sam)
    predictor.set_image(frame)
    return predictor


@pytest.fixture(scope="module")
def segmenter(sam, frame) -> SamSegmenter:
    segmenter = SamSegmenter(sam, "cpu", EncoderConfig(precision="fp32"))
    segmenter.set_frame(frame)
    return segmenter


POINTS = np.array([[30.0, 30.0], [70.0, 20.0], [40.0, 45.0]])
LABELS = np.array([1, 0, 1])
BOX = np.array([10.0, 5.0, 65.0, 55.0])


@pytest.mark.parametrize(
    ("points", "labels", "box", "multimask"),
    [
        (POINTS[:1], LABELS[:1], None, True),  # a lone point: best of SAM's three masks
        (POINTS, LABELS, None, False),  # a negative point among positives
        (None, None, BOX, False),  # a box alone
        (POINTS[:2], LABELS[:2], BOX, False),  # points and a box
    ],
)
def test_prompt_matches_meta_predictor(segmenter, predictor, points, labels, box, multimask):
    masks, iou, low_res = predictor.predict(
        points, labels, box, multimask_output=multimask, return_logits=True
    )
    best = int(np.argmax(iou))
    ours = segmenter.prompt(points, labels, box)
    np.testing.assert_allclose(ours.logits, masks[best], atol=1e-4)
    np.testing.assert_allclose(ours.low_res_logits, low_res[best], atol=1e-4)
    assert ours.iou == pytest.approx(float(iou[best]), abs=1e-5)
    np.testing.assert_array_equal(ours.mask, ours.logits > 0)
    assert ours.mask.shape == (HEIGHT, WIDTH) and ours.low_res_logits.shape == (
        32,
        32,
    )  # 4 x the tiny grid


def test_negative_point_and_box_change_the_mask(segmenter):
    positive = segmenter.prompt(POINTS[[0, 2]], np.array([1, 1]))
    with_negative = segmenter.prompt(POINTS, LABELS)
    with_box = segmenter.prompt(POINTS[[0, 2]], np.array([1, 1]), BOX)
    assert not np.array_equal(positive.logits, with_negative.logits)
    assert not np.array_equal(positive.logits, with_box.logits)


def test_mask_input_refines_like_meta(segmenter, predictor):
    first = segmenter.prompt(POINTS[:2], LABELS[:2])
    masks, iou, _ = predictor.predict(
        POINTS[:2],
        LABELS[:2],
        mask_input=first.low_res_logits[None],
        multimask_output=False,
        return_logits=True,
    )
    refined = segmenter.prompt(POINTS[:2], LABELS[:2], mask_input=first.low_res_logits)
    np.testing.assert_allclose(refined.logits, masks[0], atol=1e-4)
    assert refined.iou == pytest.approx(float(iou[0]), abs=1e-5)
    assert not np.array_equal(refined.logits, first.logits)


def test_prompt_needs_a_point_or_a_box(segmenter):
    with pytest.raises(ValueError, match="point or a box"):
        segmenter.prompt(np.zeros((0, 2)))


def test_embed_then_set_embedding_equals_set_frame(sam, frame, segmenter):
    other = np.ascontiguousarray(frame[::-1])
    fresh = SamSegmenter(sam, "cpu", EncoderConfig(precision="fp32"))
    embedding = fresh.embed(other)
    assert embedding.features.dtype == torch.float32 and embedding.features.shape[0] == 1
    assert embedding.original_size == (HEIGHT, WIDTH) and max(embedding.input_size) == 128
    fresh.set_embedding(embedding)
    reference = SamSegmenter(sam, "cpu", EncoderConfig(precision="fp32"))
    reference.set_frame(other)
    np.testing.assert_array_equal(
        fresh.prompt(POINTS, LABELS).logits, reference.prompt(POINTS, LABELS).logits
    )
