"""Our SDPA image encoder against Meta's ImageEncoderViT, on a small random-weight SAM.

The architecture has windowed blocks whose grid needs padding (10×10 tokens, windows of 4)
and a global block; relative-position tables are random (SAM initialises them to zero, which
would hide a wrong bias). Frames are not square, as video frames are not.
"""

from __future__ import annotations

import dataclasses
import logging

import numpy as np
import pytest
import torch
from segment_anything.modeling import ImageEncoderViT
from segment_anything.modeling.image_encoder import Attention, Block

from samic_vos.runtime.errors import UserError
from samic_vos.sam.encoder import EncoderConfig, build_image_encoder, resolve_precision
from samic_vos.sam.models import SAM_ARCHS, build_sam, randomize_relative_positions
from samic_vos.sam.segmenter import SamSegmenter, mask_iou

# The tests' tiny SAM with one more windowed block and a 10×10 token grid (windows of 4: padded).
ARCH = dataclasses.replace(SAM_ARCHS["tiny"], encoder_depth=3, image_size=160)
META_FORWARDS = (ImageEncoderViT.forward, Block.forward, Attention.forward)


def _relative_error(ours: torch.Tensor, reference: torch.Tensor) -> float:
    return float((ours - reference).norm() / reference.norm())


@pytest.fixture(scope="module")
def sam():
    torch.manual_seed(0)
    model = build_sam(ARCH, random_init=True)
    randomize_relative_positions(model, std=0.5)
    return model


@pytest.fixture(scope="module")
def images() -> torch.Tensor:
    return torch.randn(
        2, 3, ARCH.image_size, ARCH.image_size, generator=torch.Generator().manual_seed(1)
    )


@pytest.fixture(scope="module")
def frame() -> np.ndarray:
    """A 100×150 frame (rows × cols) with two coloured blocks on noise."""
    rng = np.random.default_rng(2)
    image = rng.integers(0, 60, (100, 150, 3), dtype=np.uint8)
    image[10:70, 15:60] = (230, 40, 40)
    image[50:95, 90:140] = (40, 40, 230)
    return image


def test_architecture_has_padded_windows_and_a_global_block(sam):
    grid = ARCH.image_size // ARCH.patch_size
    windows = [b.window_size for b in sam.image_encoder.blocks]
    assert windows == [4, 0, 4] and grid % 4 != 0


@pytest.mark.parametrize("chunk_mib", [None, 1e-6, 0.01])
def test_fp32_equals_meta(sam, images, chunk_mib):
    """Whole mask, one query row per chunk, and a few windows per chunk all give Meta's result."""
    with torch.inference_mode():
        reference = sam.image_encoder(images)
    ours = build_image_encoder(sam, EncoderConfig(precision="fp32", mask_chunk_mib=chunk_mib))(
        images
    )
    assert ours.dtype == torch.float32 and ours.shape == reference.shape == (2, 32, 10, 10)
    assert _relative_error(ours, reference) < 1e-5


def test_meta_encoder_unchanged_after_ours_ran(sam, images):
    with torch.inference_mode():
        before = sam.image_encoder(images)
    build_image_encoder(sam, EncoderConfig())(images)
    assert (ImageEncoderViT.forward, Block.forward, Attention.forward) == META_FORWARDS
    assert type(sam.image_encoder) is ImageEncoderViT
    with torch.inference_mode():
        after = sam.image_encoder(images)
    torch.testing.assert_close(after, before, rtol=0, atol=0)


def test_reference_implementation_is_meta_forward(sam, images):
    with torch.inference_mode():
        reference = sam.image_encoder(images)
    ours = build_image_encoder(sam, EncoderConfig(implementation="reference", precision="fp32"))(
        images
    )
    torch.testing.assert_close(ours, reference, rtol=0, atol=0)


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_half_precision_close_and_float32_out(sam, images, precision):
    with torch.inference_mode():
        reference = sam.image_encoder(images)
    ours = build_image_encoder(sam, EncoderConfig(precision=precision))(images)
    assert ours.dtype == torch.float32
    assert _relative_error(ours, reference) < (2e-2 if precision == "bf16" else 5e-3)


def _masks(segmenter: SamSegmenter, frame: np.ndarray) -> list:
    segmenter.set_frame(frame)
    prompts = [[np.array([[30.0, 40.0]])], [np.array([[110.0, 70.0], [100.0, 80.0]])]]
    return [segmenter.segment(groups) for groups in prompts]


def test_masks_equal_meta_from_the_same_prompts(sam, frame):
    reference = _masks(
        SamSegmenter(sam, "cpu", EncoderConfig(implementation="reference", precision="fp32")), frame
    )
    ours = _masks(SamSegmenter(sam, "cpu", EncoderConfig(precision="fp32")), frame)
    for theirs, mine in zip(reference, ours, strict=True):
        assert mine.mask.shape == (100, 150)
        np.testing.assert_allclose(mine.logits, theirs.logits, atol=1e-3)
        assert mask_iou(mine.mask, theirs.mask) >= 0.999
        assert mine.confidence == pytest.approx(theirs.confidence, abs=1e-4)


def test_bf16_masks_close_to_meta(sam, frame):
    reference = _masks(
        SamSegmenter(sam, "cpu", EncoderConfig(implementation="reference", precision="fp32")), frame
    )
    ours = _masks(SamSegmenter(sam, "cpu", EncoderConfig(precision="bf16")), frame)
    for theirs, mine in zip(reference, ours, strict=True):
        assert theirs.mask.sum() > 100  # a real mask, not an empty one matching an empty one
        assert mask_iou(mine.mask, theirs.mask) >= 0.98


@pytest.mark.parametrize(
    ("key", "value"),
    [("precision", "fp64"), ("implementation", "flash"), ("run_ahead", "yes"), ("compile", "no")],
)
def test_config_rejects_bad_values(key, value):
    with pytest.raises(UserError, match=f"encoder.{key} must be"):
        EncoderConfig(**{key: value})


@pytest.mark.parametrize("chunk", [0, -1.0, "big"])
def test_config_rejects_bad_chunk(chunk):
    with pytest.raises(UserError, match="encoder.mask_chunk_mib must be a positive number"):
        EncoderConfig(mask_chunk_mib=chunk)


@pytest.mark.parametrize(
    ("avx512_bf16", "amx", "expected"),
    [
        (False, False, torch.float32),
        (True, False, torch.bfloat16),
        (False, True, torch.bfloat16),
    ],
)
def test_precision_auto_on_cpu_is_bf16_only_where_computed_natively(
    monkeypatch, avx512_bf16, amx, expected
):
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: avx512_bf16)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: amx)
    assert resolve_precision("auto", torch.device("cpu")) == expected
    assert resolve_precision("fp32", torch.device("cpu")) == torch.float32


@pytest.mark.parametrize("fast", [False, True])
def test_half_on_a_cpu_without_fast_support_warns_once(monkeypatch, caplog, fast):
    for probe in ("_is_avx512_bf16_supported", "_is_amx_tile_supported"):
        monkeypatch.setattr(torch.cpu, probe, lambda: fast)
    with caplog.at_level(logging.WARNING, logger="samic_vos.sam.encoder"):
        assert resolve_precision("bf16", torch.device("cpu")) == torch.bfloat16
    warnings = [r.getMessage() for r in caplog.records]
    if fast:
        assert warnings == []
    else:
        assert len(warnings) == 1 and "no fast bf16" in warnings[0] and "\n" not in warnings[0]


def test_compile_is_opt_in_and_its_first_call_is_logged_once(monkeypatch, caplog, sam, images):
    compiled = []

    def fake_compile(module):
        compiled.append(module)
        return module

    monkeypatch.setattr(torch, "compile", fake_compile)
    build_image_encoder(sam, EncoderConfig())
    assert compiled == []
    with caplog.at_level(logging.INFO, logger="samic_vos.sam.encoder"):
        encoder = build_image_encoder(sam, EncoderConfig(compile=True))
        for _ in range(3):
            encoder(images)
    assert len(compiled) == 1
    first_call = [r for r in caplog.records if "compiled on its first call" in r.getMessage()]
    assert len(first_call) == 1
