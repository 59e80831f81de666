"""Parity with HSNet's learner: align_corners resizes, and HSNet checkpoints as a warm start."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from hsnet_reference import (
    bilinear_align_corners,
    hsnet_correlation,
    hsnet_foreground,
    random_hsnet_checkpoint,
)

from samic_vos.model.backbone import LEVEL_BLOCKS
from samic_vos.model.conv4d import resize_query_dims
from samic_vos.model.hsnet_weights import load_hsnet_learner
from samic_vos.model.samic_net import SamicHead, SamicNetConfig, hypercorrelation, pool_heat
from samic_vos.runtime.errors import UserError


def test_align_corners_formula_on_a_literal_case():
    # 1-D: [0, 10] onto 3 pixels → [0, 5, 10]; 2 → 4 pixels: positions 0, 1/3, 2/3, 1.
    np.testing.assert_allclose(
        bilinear_align_corners(np.array([[0.0, 10.0]]), (1, 3)), [[0, 5, 10]]
    )
    got = bilinear_align_corners(np.array([[0.0, 3.0], [6.0, 9.0]]), (4, 4))
    np.testing.assert_allclose(got[0], [0, 1, 2, 3])
    np.testing.assert_allclose(got[:, 0], [0, 2, 4, 6])
    np.testing.assert_allclose(got[3, 3], 9.0)


def test_query_resize_between_levels_aligns_corners_like_hsnet():
    x = torch.rand(2, 3, 2, 3, 2, 1, generator=torch.Generator().manual_seed(0))
    got = resize_query_dims(x, (4, 7))
    assert got.shape == (2, 3, 4, 7, 2, 1)
    # Query dims (2, 3) resized per (batch, channel, support position) by the written formula.
    expected = bilinear_align_corners(x.permute(0, 1, 4, 5, 2, 3).double().numpy(), (4, 7))
    np.testing.assert_allclose(got.permute(0, 1, 4, 5, 2, 3).numpy(), expected, atol=1e-6)
    # Corner cells are copied exactly (align_corners=False would blend them with neighbours).
    assert torch.equal(got[:, :, 0, 0], x[:, :, 0, 0]) and torch.equal(
        got[:, :, -1, -1], x[:, :, -1, -1]
    )


def _features(batch: int, size: tuple[int, int], seed: int) -> list[torch.Tensor]:
    """13 random feature maps at the strides of the pyramid (few channels: only cosines count)."""
    gen = torch.Generator().manual_seed(seed)
    h, w = size
    feats = []
    for blocks, stride in zip(LEVEL_BLOCKS, (8, 16, 32), strict=True):
        shape = (batch, 8, -(-h // stride), -(-w // stride))
        feats += [torch.randn(*shape, generator=gen) for _ in range(blocks)]
    return feats


@pytest.mark.parametrize("size", [(64, 64), (64, 96)])
def test_correlation_is_hsnets_for_the_pooled_heat(size):
    """With ``heat_before_norm`` (HSNet's order) and the heat map as pooled to each grid taken
    as HSNet's support mask, the hypercorrelation is HSNet's: the eps is added to the norms
    (``x / (‖x‖ + 1e-5)``, not ``F.normalize``'s floor), so a feature under heat near
    1e-5 / ‖f‖ keeps about half its length; clamped at 0; levels layer4, layer3, layer2."""
    ref, tgt = _features(2, size, seed=5), _features(2, size, seed=6)
    heat = torch.zeros(2, 1, *size)
    heat[0] = torch.logspace(-5.5, 0, size[1])  # every column one heat, 3e-6 to 1
    heat[1, :, 8:40, 16:48] = 1.0  # a binary mask
    with torch.no_grad():
        ours = hypercorrelation(ref, heat, tgt, "max", heat_before_norm=True)
    masks = [pool_heat(heat, tuple(f.shape[-2:]), "max") for f in ref]
    expected = hsnet_correlation(tgt, ref, masks)
    assert [c.shape for c in ours] == [c.shape for c in expected]
    assert [c.shape[1] for c in ours] == [3, 6, 4]
    for got, want in zip(ours, expected, strict=True):
        torch.testing.assert_close(got.double(), want, rtol=0, atol=1e-6)


@pytest.mark.parametrize("size", [(64, 64), (64, 96)])
def test_hsnet_checkpoint_gives_hsnets_foreground_probability(tmp_path, size):
    path = tmp_path / "best_model.pt"
    state = random_hsnet_checkpoint(seed=1)
    torch.save(state, path)
    head = SamicHead(SamicNetConfig(input_size=size, backbone="random"))
    load_hsnet_learner(head, path)
    ref, tgt = _features(2, size, seed=2), _features(2, size, seed=3)
    heat = torch.rand(2, 1, *size, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        ours = torch.sigmoid(head.eval()(ref, heat, tgt))[:, 0]
        pyramid = hypercorrelation(ref, heat, tgt)
    expected = hsnet_foreground(pyramid, state, size)
    assert ours.shape == (2, *size)
    assert float(expected.std()) > 1e-3  # a real map, not saturated
    torch.testing.assert_close(ours.double(), expected, rtol=0, atol=2e-5)


def test_wrong_checkpoints_are_refused_in_one_line(tmp_path):
    head = SamicHead(SamicNetConfig(backbone="random"))
    before = {k: v.clone() for k, v in head.state_dict().items()}
    resnet101 = tmp_path / "hsnet_resnet101.pt"  # layer3 has 23 blocks there, not 6
    torch.save(random_hsnet_checkpoint(seed=0, inch=(3, 23, 4)), resnet101)
    with pytest.raises(UserError, match=r"hsnet_resnet101\.pt: not an HSNet ResNet-50") as err:
        load_hsnet_learner(head, resnet101)
    assert "(16, 23, 5, 5)" in str(err.value)  # says which shape is wrong
    not_hsnet = tmp_path / "resnet50.pth"
    torch.save({"conv1.weight": torch.zeros(64, 3, 7, 7)}, not_hsnet)
    with pytest.raises(UserError, match="no HSNet learner weights") as err:
        load_hsnet_learner(head, not_hsnet)
    assert "\n" not in str(err.value)
    assert all(torch.equal(before[k], v) for k, v in head.state_dict().items())  # untouched


def test_shipped_hsnet_warm_start_config_loads():
    from samic_vos.runtime.config import load_config
    from samic_vos.training.job import TrainJobConfig

    path = Path(__file__).resolve().parents[1] / "configs" / "train_hsnet_warm.yaml"
    net = load_config(TrainJobConfig(), path).network
    assert (net.input_size, net.heat_before_norm, net.resize) == ((400, 400), True, "pil_bilinear")
    assert net.channels == (16, 64, 128) and net.groups == 4  # HSNet's learner fits
