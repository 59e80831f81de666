"""SAM builders and checkpoints: official architectures, tiny models, save/load round trips."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from PIL import Image
from segment_anything import build_sam_vit_b, build_sam_vit_h, build_sam_vit_l

from samic_vos.runtime.errors import UserError
from samic_vos.sam.models import (
    SAM_ARCHS,
    build_sam,
    count_parameters,
    load_sam,
    save_sam,
)
from samic_vos.sam.segmenter import SamSegmenter


def _shapes(model: torch.nn.Module) -> dict[str, tuple[int, ...]]:
    return {name: tuple(t.shape) for name, t in model.state_dict().items()}


@pytest.mark.parametrize(
    ("name", "official_builder", "published_millions"),
    [
        ("vit_b", build_sam_vit_b, 93.7),
        ("vit_l", build_sam_vit_l, 312.3),
        ("vit_h", build_sam_vit_h, 641.1),
    ],
)
def test_official_architectures_match_meta_builders(name, official_builder, published_millions):
    # Both built on the meta device: nothing is allocated, even for ViT-H.
    with torch.device("meta"):
        theirs = official_builder()
        ours = build_sam(name, random_init=True)
    assert _shapes(ours) == _shapes(theirs)
    count = count_parameters(name)
    assert count == sum(p.numel() for p in theirs.parameters())
    assert abs(count / 1e6 - published_millions) < 0.05


def test_tiny_model_is_small():
    assert count_parameters("tiny") < 200_000


def test_random_weights_only_on_request():
    with pytest.raises(ValueError, match="random_init"):
        build_sam("tiny")


@pytest.fixture(scope="module")
def tiny_sam():
    torch.manual_seed(0)
    return build_sam("tiny", random_init=True)


@pytest.fixture(scope="module")
def frame(davis_root) -> np.ndarray:
    """A real DAVIS frame (480, 854, 3) uint8."""
    return np.array(Image.open(davis_root / "JPEGImages/480p/bear/00000.jpg").convert("RGB"))


def _masks(sam, frame) -> list[np.ndarray]:
    segmenter = SamSegmenter(sam, "cpu")
    segmenter.set_frame(frame)
    groups = [np.array([[400.0, 250.0]]), np.array([[300.0, 200.0], [500.0, 300.0]])]
    return [segmenter.segment([g]).logits for g in groups]


def test_our_format_round_trip_rebuilds_the_architecture(tmp_path, tiny_sam, frame):
    path = tmp_path / "tiny_sam.pth"
    save_sam(path, tiny_sam, "tiny")
    assert list(tmp_path.iterdir()) == [path]  # written atomically, no temporary left
    # The file carries its architecture: without a model name, it is the one loaded.
    for loaded in (load_sam(None, path, device="cpu"), build_sam("tiny", path)):
        assert _shapes(loaded) == _shapes(tiny_sam)
        assert not loaded.training
        for a, b in zip(_masks(tiny_sam, frame), _masks(loaded, frame), strict=True):
            np.testing.assert_array_equal(a, b)


def test_raw_state_dict_round_trip(tmp_path, tiny_sam, frame):
    # Official checkpoints are raw state dicts; a GPU-saved one loads on the CPU too.
    path = tmp_path / "raw.pth"
    torch.save(tiny_sam.state_dict(), path)
    for loaded in (build_sam("tiny", path), load_sam("tiny", path)):
        for a, b in zip(_masks(tiny_sam, frame), _masks(loaded, frame), strict=True):
            np.testing.assert_array_equal(a, b)


def test_mismatched_checkpoint_names_file_and_right_model(tmp_path, tiny_sam):
    path = tmp_path / "raw.pth"
    torch.save(tiny_sam.state_dict(), path)
    wider = dataclasses.replace(SAM_ARCHS["tiny"], encoder_embed_dim=48)
    for load in (lambda: build_sam(wider, path), lambda: load_sam("vit_b", path)):
        with pytest.raises(UserError) as err:
            load()
        message = str(err.value)
        assert str(path) in message and "`sam_model` tiny" in message
        assert "\n" not in message


def test_a_model_name_that_disagrees_with_the_checkpoint_is_refused(tmp_path, tiny_sam):
    path = tmp_path / "tiny_sam.pth"
    save_sam(path, tiny_sam, "tiny")
    with pytest.raises(UserError, match="holds a SAM tiny model, not vit_b"):
        load_sam("vit_b", path)
    raw = tmp_path / "raw.pth"
    torch.save(tiny_sam.state_dict(), raw)
    assert _shapes(load_sam(None, raw)) == _shapes(tiny_sam)  # recognised by its shapes


def test_our_format_with_another_architecture_is_refused_by_build_sam(tmp_path, tiny_sam):
    path = tmp_path / "tiny_sam.pth"
    save_sam(path, tiny_sam, "tiny")
    wider = dataclasses.replace(SAM_ARCHS["tiny"], encoder_embed_dim=48)
    with pytest.raises(UserError, match="`sam_model` tiny"):
        build_sam(wider, path)


def test_foreign_state_dict_is_a_user_error(tmp_path):
    path = tmp_path / "other.pth"
    torch.save({"conv.weight": torch.zeros(3, 3)}, path)
    with pytest.raises(UserError, match="not a SAM checkpoint of any known size"):
        build_sam("tiny", path)


def test_unreadable_and_missing_checkpoints_are_user_errors(tmp_path):
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"not a checkpoint")
    with pytest.raises(UserError, match=f"{garbage}: not a PyTorch checkpoint"):
        build_sam("tiny", garbage)
    with pytest.raises(UserError, match="not found"):
        build_sam("tiny", tmp_path / "missing.pth")


def test_tiny_without_checkpoint_and_unknown_model_are_user_errors():
    with pytest.raises(UserError, match="`sam_checkpoint`"):
        load_sam("tiny")
    with pytest.raises(UserError, match="vit_b"):
        load_sam("vit_x")
