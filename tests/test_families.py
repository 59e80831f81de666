"""HQ-SAM, MedSAM and SAM 2.1 segmenters against each package's own predictor (or, for MedSAM,
its published inference recipe), on random-weight models built by each package's builder.

Tolerance: masks equal; logits and scores within 1e-5 (measured on this CPU: most bit-exact,
the largest difference 1.2e-7; MedSAM's logits are compared as its probabilities)."""

from __future__ import annotations

import dataclasses
import logging

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from samic_vos.runtime.errors import UserError
from samic_vos.sam.encoder import EncoderConfig
from samic_vos.sam.families import SEGMENTERS
from samic_vos.sam.models import build_named, load_named, save_sam
from samic_vos.sam.names import SAM_MODELS

HEIGHT, WIDTH = 70, 100
POINTS = np.array([[40.0, 30.0], [70.0, 20.0]], dtype=np.float32)
BOX = np.array([12.0, 8.0, 66.0, 55.0], dtype=np.float32)


@pytest.fixture(scope="module")
def frame() -> np.ndarray:
    rng = np.random.default_rng(3)
    image = rng.integers(0, 60, (HEIGHT, WIDTH, 3), dtype=np.uint8)
    image[10:50, 15:60] = (200, 40, 40)
    return image


def _segmenter(name: str, frame: np.ndarray):
    torch.manual_seed(0)
    model = build_named(name)
    family = {"tiny_hq": "hq", "tiny_medsam": "medsam", "tiny_sam2": "sam2"}[name]
    segmenter = SEGMENTERS[family](model, "cpu", EncoderConfig(precision="fp32"))
    segmenter.set_frame(frame)
    return model, segmenter


def _close(ours: np.ndarray, theirs: np.ndarray) -> None:
    np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-5)


PROMPTS = [
    ({"points": POINTS[:1], "labels": np.array([1])}, True),
    ({"points": POINTS, "labels": np.array([1, 0])}, False),
    ({"box": BOX}, False),
    ({"points": POINTS[:1], "labels": np.array([1]), "box": BOX}, False),
]


@pytest.mark.parametrize(("prompt", "multimask"), PROMPTS)
def test_hq_sam_equals_its_predictor(frame, prompt, multimask):
    pytest.importorskip("segment_anything_hq")
    from segment_anything_hq import SamPredictor

    model, segmenter = _segmenter("tiny_hq", frame)
    predictor = SamPredictor(model)
    predictor.set_image(frame)
    masks, iou, low = predictor.predict(
        point_coords=prompt.get("points"),
        point_labels=prompt.get("labels"),
        box=prompt.get("box"),
        multimask_output=multimask,
        return_logits=True,
    )
    ours = segmenter.prompt(**prompt, multimask=multimask)
    _close(ours.logits, masks[0])
    _close(ours.low_res_logits, low[0])
    assert ours.iou == pytest.approx(float(iou[0]), abs=1e-5)
    np.testing.assert_array_equal(ours.mask, masks[0] > 0)


@pytest.mark.parametrize(("prompt", "multimask"), PROMPTS)
def test_sam2_equals_its_image_predictor(frame, prompt, multimask):
    pytest.importorskip("sam2")
    from sam2.sam2_image_predictor import SAM2ImagePredictor

    model, segmenter = _segmenter("tiny_sam2", frame)
    predictor = SAM2ImagePredictor(model)
    side = model.image_size
    predictor._bb_feat_sizes = [(side // 4,) * 2, (side // 8,) * 2, (side // 16,) * 2]
    predictor.set_image(frame)
    masks, iou, low = predictor.predict(
        point_coords=prompt.get("points"),
        point_labels=prompt.get("labels"),
        box=prompt.get("box"),
        multimask_output=multimask,
        return_logits=True,
    )
    best = int(np.argmax(iou))
    ours = segmenter.prompt(**prompt, multimask=multimask)
    _close(segmenter.embedding.features.numpy(), predictor._features["image_embed"].numpy())
    _close(ours.logits, masks[best])
    _close(np.clip(ours.low_res_logits, -32, 32), low[best])
    assert ours.iou == pytest.approx(float(iou[best]), abs=1e-5)
    np.testing.assert_array_equal(ours.mask, masks[best] > 0)


def test_sam2_batched_groups_equal_one_prompt_each(frame):
    pytest.importorskip("sam2")
    _, segmenter = _segmenter("tiny_sam2", frame)
    groups = [POINTS[:1], POINTS[1:]]
    _, logits = segmenter.segment_instances(groups)
    for group, got in zip(groups, logits, strict=True):
        alone = segmenter.prompt(points=group, multimask=True)
        _close(got, alone.logits)


def test_sam2_position_encodings_are_the_packages_own_without_a_copy_per_image(frame):
    pytest.importorskip("sam2")
    wrapped, _ = _segmenter("tiny_sam2", frame)
    torch.manual_seed(0)
    stock = build_named("tiny_sam2")
    assert list(wrapped.state_dict()) == list(stock.state_dict())
    images = torch.randn(2, 3, stock.image_size, stock.image_size)
    for precision in (torch.float32, torch.bfloat16):
        with (
            torch.inference_mode(),
            torch.autocast("cpu", precision, enabled=precision != torch.float32),
        ):
            ours, theirs = wrapped.image_encoder(images), stock.image_encoder(images)
            again = wrapped.image_encoder(images)
        for mine, its, kept in zip(
            ours["vision_pos_enc"], theirs["vision_pos_enc"], again["vision_pos_enc"], strict=True
        ):
            assert mine.dtype == its.dtype and mine.shape == its.shape
            assert torch.equal(mine, its)
            assert kept.data_ptr() == mine.data_ptr()  # kept, not recomputed or copied
        for mine, its in zip(ours["backbone_fpn"], theirs["backbone_fpn"], strict=True):
            assert torch.equal(mine, its)


@pytest.mark.parametrize("name", ["tiny_hq", "tiny_medsam", "tiny_sam2"])
def test_pause_points_run_once_per_encoder_block_and_change_nothing(frame, name):
    pytest.importorskip(
        {"tiny_hq": "segment_anything_hq", "tiny_sam2": "sam2"}.get(name, "skimage")
    )
    from samic_vos.sam.encoder import add_pause_points

    model, segmenter = _segmenter(name, frame)
    before = segmenter.embedding.features.clone()
    blocks = model.image_encoder.trunk.blocks if name == "tiny_sam2" else model.image_encoder.blocks
    calls: list[int] = []
    remove = add_pause_points(model, lambda: calls.append(1))
    segmenter.set_frame(frame)
    assert len(calls) == len(blocks) > 0
    assert torch.equal(segmenter.embedding.features, before)
    remove()
    segmenter.set_frame(frame)
    assert len(calls) == len(blocks)


def _medsam_recipe(model, frame: np.ndarray, box: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """MedSAM_Inference.py (bowang-lab/MedSAM), step by step: (H, W) probabilities and mask."""
    from skimage import transform

    side = model.image_encoder.img_size
    img = transform.resize(
        frame, (side, side), order=3, preserve_range=True, anti_aliasing=True
    ).astype(np.uint8)
    img = (img - img.min()) / np.clip(img.max() - img.min(), a_min=1e-8, a_max=None)
    tensor = torch.tensor(img).float().permute(2, 0, 1).unsqueeze(0)
    with torch.no_grad():
        embedding = model.image_encoder(tensor)
        box_side = box / np.array([WIDTH, HEIGHT, WIDTH, HEIGHT]) * side
        box_torch = torch.as_tensor(box_side[None, None], dtype=torch.float)
        sparse, dense = model.prompt_encoder(points=None, boxes=box_torch, masks=None)
        low, _ = model.mask_decoder(
            image_embeddings=embedding,
            image_pe=model.prompt_encoder.get_dense_pe(),
            sparse_prompt_embeddings=sparse,
            dense_prompt_embeddings=dense,
            multimask_output=False,
        )
        prob = F.interpolate(
            torch.sigmoid(low), size=(HEIGHT, WIDTH), mode="bilinear", align_corners=False
        )
    prob = prob.squeeze().numpy()
    return prob, (prob > 0.5)


def test_medsam_equals_its_inference_recipe(frame):
    pytest.importorskip("skimage")
    model, segmenter = _segmenter("tiny_medsam", frame)
    prob, mask = _medsam_recipe(model, frame, BOX)
    ours = segmenter.prompt(box=BOX)
    np.testing.assert_array_equal(ours.mask, mask)
    _close(torch.sigmoid(torch.from_numpy(ours.logits)).numpy(), np.clip(prob, 1e-6, 1 - 1e-6))


@pytest.mark.parametrize(
    ("saved", "asked"), [("tiny_sam2", "tiny_hq"), ("tiny_hq", "tiny_sam2"), ("tiny_hq", "tiny")]
)
def test_a_checkpoint_of_another_family_is_refused_in_one_line(tmp_path, saved, asked):
    pytest.importorskip("sam2")
    pytest.importorskip("segment_anything_hq")
    torch.manual_seed(0)
    path = tmp_path / "model.pt"
    save_sam(path, build_named(saved), saved)
    with pytest.raises(UserError) as err:
        load_named(asked, path)
    assert "\n" not in str(err.value) and str(path) in str(err.value)
    model, name = load_named(None, path)  # the file names its own model
    assert name == saved


def test_the_unverified_note_comes_only_with_weights_that_load(tmp_path, monkeypatch, caplog):
    # A name with registry weights (as vit_b has) and the user's own file: the note that the
    # file is used unverified is shown once it has loaded, never beside the refusal of a file
    # of another family (two lines where the refusal is one).
    pytest.importorskip("segment_anything_hq")
    official = dataclasses.replace(SAM_MODELS["tiny"], weights="sam_vit_b")
    monkeypatch.setitem(SAM_MODELS, "tiny", official)
    torch.manual_seed(0)
    other, mine = tmp_path / "hq.pt", tmp_path / "mine.pt"
    save_sam(other, build_named("tiny_hq"), "tiny_hq")
    save_sam(mine, build_named("tiny"), "tiny")
    caplog.set_level(logging.INFO, logger="samic_vos")
    with pytest.raises(UserError, match="holds a hq model, not a sam one"):
        load_named("tiny", other)
    assert [r.getMessage() for r in caplog.records] == []
    assert load_named("tiny", mine)[1] == "tiny"
    assert [r.getMessage() for r in caplog.records] == [
        f"`sam_checkpoint` {mine}: not the official sam_vit_b_01ec64.pth; used as is, unverified"
    ]


def test_raw_official_style_files_are_recognised(tmp_path):
    pytest.importorskip("sam2")
    torch.manual_seed(0)
    model = build_named("tiny_sam2")
    path = tmp_path / "sam2.pt"
    torch.save({"model": model.state_dict()}, path)  # SAM 2's official layout
    with pytest.raises(UserError, match="holds a sam2 model: pass `sam_model`"):
        load_named(None, path)
    loaded, name = load_named("tiny_sam2", path)
    assert name == "tiny_sam2"
    for key, value in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value)
