"""The decoder's reused image-only projections: masks, logits and scores exactly those of Meta's
stock SamPredictor on the same embedding, the projections computed once per image, again on a
new image."""

from __future__ import annotations

import numpy as np
import torch
from segment_anything import SamPredictor
from torch import nn

from samic_vos.sam.decoder_reuse import ReusingLinear
from samic_vos.sam.models import build_sam
from samic_vos.sam.segmenter import SamSegmenter

PROMPTS = [  # (points, labels, box) clicked one after the other, as in SAMBOX
    (np.array([[30.0, 30.0]]), np.array([1]), None),
    (np.array([[30.0, 30.0], [70.0, 20.0]]), np.array([1, 0]), None),
    (np.array([[30.0, 30.0], [70.0, 20.0], [40.0, 45.0]]), np.array([1, 0, 1]), None),
    (None, None, np.array([10.0, 5.0, 65.0, 55.0])),
]


def _images() -> list[np.ndarray]:
    rng = np.random.default_rng(5)
    images = [rng.integers(0, 60, (70, 100, 3), dtype=np.uint8) for _ in range(2)]
    images[0][10:50, 15:60] = (200, 40, 40)
    images[1][30:65, 40:90] = (40, 200, 40)
    return images


def _stock_sam():
    torch.manual_seed(0)
    return build_sam("tiny", random_init=True)


def test_reused_projections_give_the_stock_decoders_results():
    stock = SamPredictor(_stock_sam().eval())
    segmenter = SamSegmenter(_stock_sam(), "cpu")
    reusing = [m for m in segmenter.sam.modules() if isinstance(m, ReusingLinear)]
    assert len(reusing) == 3 and not any(
        isinstance(m, ReusingLinear) for m in stock.model.modules()
    )
    assert segmenter.sam.state_dict().keys() == stock.model.state_dict().keys()
    for image in _images():
        segmenter.set_frame(image)
        embedding = segmenter.embedding  # Meta's decoder on the same embedding
        stock.reset_image()
        stock.features, stock.is_image_set = embedding.features, True
        stock.input_size, stock.original_size = embedding.input_size, embedding.original_size
        for points, labels, box in PROMPTS:
            multimask = points is not None and len(points) == 1
            ours = segmenter.prompt(points, labels, box, multimask=multimask)
            with segmenter.threads.stage("decoder"):  # same thread count: same float sums
                masks, scores, low_res = stock.predict(
                    points, labels, box, multimask_output=multimask, return_logits=True
                )
            best = int(np.argmax(scores))
            # bit for bit (the full-size logits are upscaled by our code, one mask at a time)
            assert np.array_equal(ours.low_res_logits, low_res[best])
            assert ours.iou == float(scores[best])
            assert np.array_equal(ours.mask, masks[best] > 0)
    # each image: the three projections computed on its first prompt, reused for the others
    counts = segmenter.decoder_reuse
    assert counts.calls == 3 * len(PROMPTS) * 2
    assert counts.reused == 3 * (len(PROMPTS) - 1) * 2


def test_a_second_segmenter_on_the_same_model_shares_the_counts():
    sam = _stock_sam()
    first, second = SamSegmenter(sam, "cpu"), SamSegmenter(sam, "cpu")
    assert first.decoder_reuse is second.decoder_reuse
    assert all(
        type(m) in (ReusingLinear, nn.Linear) for m in sam.modules() if isinstance(m, nn.Linear)
    )
