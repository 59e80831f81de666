"""The SAMIC network: backbone pyramid, 4D convolution, heat pooling, model API, checkpoints."""

from __future__ import annotations

import copy
import logging

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from torchvision.models import resnet50

from samic_vos.model.backbone import IMAGENET_MEAN, IMAGENET_STD, build_backbone
from samic_vos.model.checkpoint import load_samic, save_samic
from samic_vos.model.conv4d import CenterPivotConv4d
from samic_vos.model.samic_net import (
    SamicNet,
    SamicNetConfig,
    build_samic,
    hypercorrelation,
    pool_heat,
    preprocess,
)
from samic_vos.runtime.errors import UserError

TINY = SamicNetConfig(input_size=(64, 64), backbone="random", backbone_seed=0)


@pytest.fixture(scope="module")
def net() -> SamicNet:
    torch.manual_seed(0)
    return build_samic(TINY).eval()


def _gaussian(h: int, w: int, x: float, y: float, sigma: float) -> torch.Tensor:
    """(1, 1, h, w) Gaussian heat map with its peak (1 at the centre) at pixel (x, y)."""
    yy, xx = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    g = torch.exp(-((xx - x) ** 2 + (yy - y) ** 2) / (2 * sigma**2))
    return g[None, None].float()


def _images(n: int, h: int, w: int, seed: int) -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return [torch.randn(1, 3, h, w, generator=gen) for _ in range(n)]


def test_learnable_parameter_count_is_hsnet_size_and_backbone_frozen(net: SamicNet) -> None:
    assert 2_500_000 <= net.num_learnable_parameters() <= 2_700_000
    backbone = list(net.backbone.parameters())
    assert sum(p.numel() for p in backbone) > 20_000_000  # the ResNet-50 is there ...
    assert not any(p.requires_grad for p in backbone)  # ... and frozen
    assert all(p.requires_grad for p in net.head.parameters())


def test_backbone_pyramid_shapes_and_stays_in_eval_mode(net: SamicNet) -> None:
    (img,) = _images(1, 64, 96, seed=1)
    feats = net.extract_features(img)
    shapes = [tuple(f.shape) for f in feats]
    assert shapes == [(1, 512, 8, 12)] * 4 + [(1, 1024, 4, 6)] * 6 + [(1, 2048, 2, 3)] * 3
    assert min(float(f.min()) for f in feats) < 0  # taken before the final ReLU
    assert not feats[0].requires_grad
    net.train()
    try:
        assert not net.backbone.training and net.head.training
        again = net.extract_features(img)  # batch norms must not switch to batch statistics
    finally:
        net.eval()
    assert all(torch.equal(a, b) for a, b in zip(feats, again, strict=True))


def test_output_shape_and_range_for_two_input_sizes_in_one_process(net: SamicNet) -> None:
    for h, w in [(224, 224), (160, 256)]:
        ref, tgt = _images(2, h, w, seed=h)
        heat = _gaussian(h, w, x=w / 3, y=h / 2, sigma=0.02 * w)
        with torch.no_grad():
            out = net(ref, heat, tgt)
        assert out.shape == (1, 1, h, w)
        assert float(out.min()) >= 0.0 and float(out.max()) <= 1.0
        assert float(out.std()) > 0  # a real map, not a constant


def test_conv4d_is_center_pivot_and_has_no_size_cache() -> None:
    torch.manual_seed(0)
    conv = CenterPivotConv4d(1, 1, kernel_size=3, support_stride=1)
    torch.nn.init.zeros_(conv.query_conv.bias)
    torch.nn.init.zeros_(conv.support_conv.bias)
    x = torch.zeros(1, 1, 5, 6, 7, 4)
    x[0, 0, 2, 3, 4, 1] = 1.0  # a delta at query (2, 3), support (4, 1)
    with torch.no_grad():
        y = conv(x)[0, 0]
    wq = conv.query_conv.weight[0, 0]
    ws = conv.support_conv.weight[0, 0]
    expected = torch.zeros_like(y)
    for dy in (-1, 0, 1):  # cross-correlation: output at q + d reads kernel tap (1 - d)
        for dx in (-1, 0, 1):
            expected[2 + dy, 3 + dx, 4, 1] += wq[1 - dy, 1 - dx]  # query plane
            expected[2, 3, 4 + dy, 1 + dx] += ws[1 - dy, 1 - dx]  # support plane
    torch.testing.assert_close(y, expected)

    strided = CenterPivotConv4d(3, 8, kernel_size=3, support_stride=2)
    a, b = torch.rand(2, 3, 6, 6, 8, 8), torch.rand(1, 3, 5, 7, 9, 5)
    with torch.no_grad():
        assert strided(a).shape == (2, 8, 6, 6, 4, 4)
        out_b = strided(b)  # second size, same module
        fresh = copy.deepcopy(strided)
        fresh.load_state_dict(strided.state_dict())
        assert out_b.shape == (1, 8, 5, 7, 5, 3)
        torch.testing.assert_close(out_b, fresh(b), rtol=0, atol=0)


def test_features_reused_as_reference_match_forward(net: SamicNet) -> None:
    frames = _images(3, 64, 64, seed=5)
    heat = _gaussian(64, 64, x=20, y=40, sigma=3)
    with torch.no_grad():
        feats = [net.extract_features(f) for f in frames]  # each frame's features once
        via_features = [torch.sigmoid(net.predict(feats[t - 1], heat, feats[t])) for t in (1, 2)]
        via_forward = [net(frames[t - 1], heat, frames[t]) for t in (1, 2)]
    for a, b in zip(via_features, via_forward, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-6)
    assert not torch.allclose(via_features[0], via_features[1])


def test_heat_pooling_keeps_a_narrow_gaussian_at_every_level(net: SamicNet) -> None:
    # σ = 1.5 px placed between the stride-32 bilinear sample points (32 i + 15.5).
    heat = _gaussian(224, 224, x=100, y=97, sigma=1.5)
    level_sizes = [(28, 28), (14, 14), (7, 7)]
    for size in level_sizes:
        assert float(pool_heat(heat, size, "max").max()) > 0.9
        assert float(pool_heat(heat, size, "area").max()) > 1e-3
    # The trap this avoids: bilinear sampling to the stride-32 grid loses the peak.
    sampled = F.interpolate(heat, size=(7, 7), mode="bilinear", align_corners=False)
    assert float(sampled.max()) < 1e-6
    # The signal reaches the learner: every level's correlation is nonzero.
    (image,) = _images(1, 224, 224, seed=2)
    with torch.no_grad():
        feats = net.extract_features(image)
        levels = hypercorrelation(feats, heat, feats)
    assert [tuple(c.shape[:2]) for c in levels] == [(1, 3), (1, 6), (1, 4)]
    assert [tuple(c.shape[2:]) for c in levels] == [(7, 7, 7, 7), (14,) * 4, (28,) * 4]
    assert all(float(c.max()) > 0.05 for c in levels)
    assert all(float(c.min()) >= 0.0 and float(c.max()) <= 1.0 + 1e-5 for c in levels)


def test_heat_weighting_after_normalisation_keeps_its_grading(net: SamicNet) -> None:
    ref, tgt = _images(2, 64, 64, seed=3)
    heat = torch.zeros(1, 1, 64, 64)
    heat[..., 16:40, 8:48] = 0.8  # a plateau: no far tail below the cosine eps
    with torch.no_grad():
        rf, tf = net.extract_features(ref), net.extract_features(tgt)
        full = hypercorrelation(rf, heat, tf)
        half = hypercorrelation(rf, heat / 2, tf)
        hs_full = hypercorrelation(rf, heat, tf, heat_before_norm=True)
        hs_half = hypercorrelation(rf, heat / 2, tf, heat_before_norm=True)
    for a, b in zip(full, half, strict=True):
        torch.testing.assert_close(b, a / 2)
    for a, b in zip(hs_full, hs_half, strict=True):  # HSNet's order: any nonzero heat counts fully
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


def test_preprocess_resizes_anisotropically_and_normalises() -> None:
    image = np.zeros((90, 300, 3), np.uint8)
    image[...] = (255, 128, 0)
    x = preprocess(image, (64, 96))
    assert x.shape == (1, 3, 64, 96) and x.dtype == torch.float32
    rgb = zip((255, 128, 0), IMAGENET_MEAN, IMAGENET_STD, strict=True)
    expected = [(v / 255 - m) / s for v, m, s in rgb]
    torch.testing.assert_close(x[0, :, 10, 50], torch.tensor(expected), rtol=0, atol=1e-5)
    with pytest.raises(ValueError):
        preprocess(image.astype(np.float32), (64, 64))


def test_pil_bilinear_resize_is_hsnets_and_differs_from_cv2_area() -> None:
    image = np.random.default_rng(0).integers(0, 256, (90, 300, 3), dtype=np.uint8)
    pil = np.asarray(Image.fromarray(image).resize((96, 64), Image.BILINEAR), np.float32)
    std = np.array(IMAGENET_STD, np.float32)
    expected = (pil / 255 - np.array(IMAGENET_MEAN, np.float32)) / std
    got = preprocess(image, (64, 96), "pil_bilinear")[0].permute(1, 2, 0).numpy()
    np.testing.assert_allclose(got, expected, atol=1e-5)
    cv2_area = preprocess(image, (64, 96), "cv2")[0].permute(1, 2, 0).numpy()
    assert np.abs(cv2_area - got).max() > 0.05  # not the same filter
    with pytest.raises(UserError, match=r"resize must be one of cv2, pil_bilinear, got 'x'"):
        SamicNetConfig(resize="x")


def test_random_backbone_is_seeded_and_announced(
    caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    state = torch.get_rng_state()
    with caplog.at_level(logging.WARNING):
        a = build_backbone("random", seed=7)
    assert torch.equal(state, torch.get_rng_state())  # the global RNG is left alone
    assert "RANDOMLY INITIALISED" in caplog.text
    from samic_vos.runtime import console

    console.configure(0)  # as the CLI does: one prefixed line on stderr
    capsys.readouterr()
    build_backbone("random", seed=7)
    assert "samic-vos: warning: SAMIC backbone is RANDOMLY INITIALISED" in capsys.readouterr().err
    b, c = build_backbone("random", seed=7), build_backbone("random", seed=8)
    assert torch.equal(a.stem[0].weight, b.stem[0].weight)
    assert not torch.equal(a.stem[0].weight, c.stem[0].weight)


def test_config_rejects_bad_values() -> None:
    with pytest.raises(UserError, match="input_size"):
        SamicNetConfig(input_size=(16, 64))
    with pytest.raises(UserError, match="backbone"):
        SamicNetConfig(backbone="vgg")
    with pytest.raises(UserError, match="heat_pool"):
        SamicNetConfig(heat_pool="bilinear")


def test_save_load_round_trip_gives_identical_outputs(net: SamicNet, tmp_path) -> None:
    ref, tgt = _images(2, 64, 64, seed=9)
    heat = _gaussian(64, 64, x=10, y=50, sigma=2)
    path = tmp_path / "samic.pt"
    save_samic(path, net, config={"epochs": 3, "data": tmp_path}, metrics={"val_loss": 0.25})
    assert path.stat().st_size < 12_000_000  # learnable weights only, no 94 MB backbone
    loaded, meta = load_samic(path)
    assert meta["metrics"] == {"val_loss": 0.25}
    assert meta["config"] == {"epochs": 3, "data": str(tmp_path)}
    assert meta["version"] and meta["net_config"]["input_size"] == [64, 64]
    assert loaded.config == net.config and not loaded.training
    with torch.no_grad():
        assert torch.equal(loaded(ref, heat, tgt), net(ref, heat, tgt))
        # The backbone really is rebuilt from the stored seed: another seed changes the output.
        other = build_samic(SamicNetConfig(input_size=(64, 64), backbone="random", backbone_seed=1))
        other.head.load_state_dict(net.head.state_dict())
        assert not torch.allclose(other(ref, heat, tgt), net(ref, heat, tgt))


def test_imagenet_backbone_from_local_state_dict(tmp_path) -> None:
    torch.manual_seed(3)
    resnet = resnet50(weights=None)
    weights = tmp_path / "my_resnet50.pth"
    torch.save(resnet.state_dict(), weights)
    config = SamicNetConfig(input_size=(64, 64), backbone="imagenet")
    model = build_samic(config, backbone_weights=weights).eval()
    assert torch.equal(model.backbone.stem[0].weight, resnet.conv1.weight)
    assert torch.equal(model.backbone.layer4[2].bn3.running_var, resnet.layer4[2].bn3.running_var)
    path = tmp_path / "samic.pt"
    save_samic(path, model)
    loaded, meta = load_samic(path, backbone_weights=weights)
    assert meta["net_config"]["backbone"] == "imagenet"
    ref, tgt = _images(2, 64, 64, seed=4)
    heat = _gaussian(64, 64, x=32, y=32, sigma=2)
    with torch.no_grad():
        assert torch.equal(loaded(ref, heat, tgt), model(ref, heat, tgt))
    wrong = tmp_path / "not_resnet.pth"
    torch.save({"conv1.weight": torch.zeros(3)}, wrong)
    with pytest.raises(UserError, match="not_resnet.pth"):
        build_samic(config, backbone_weights=wrong)


def test_missing_corrupt_or_foreign_checkpoint_is_a_user_error(tmp_path) -> None:
    foreign = tmp_path / "foreign.pt"
    torch.save({"conv.weight": torch.zeros(2, 2)}, foreign)
    text = tmp_path / "notes.pt"
    text.write_text("not a checkpoint\n")
    for path in (foreign, text, tmp_path / "missing.pt"):
        with pytest.raises(UserError, match=path.name):
            load_samic(path)


def test_correlation_skips_only_support_positions_no_reference_heats(net: SamicNet) -> None:
    """The CPU path multiplies only the support columns some reference heats: the same
    correlations as the whole product (cosines weighted by the pooled heat, floored at 0), for
    two references heating different places (batch 2) and for a map heated everywhere."""
    ref, tgt = _images(2, 96, 96, seed=4)
    heat = torch.zeros(2, 1, 96, 96)
    heat[0, :, 10:30, 12:40] = 0.9
    heat[1, :, 60:90, 50:70] = 0.6
    everywhere = torch.full((2, 1, 96, 96), 0.5)
    with torch.no_grad():
        rf = [f.expand(2, -1, -1, -1) for f in net.extract_features(ref)]
        tf = [f.expand(2, -1, -1, -1) for f in net.extract_features(tgt)]
        for weights in (heat, everywhere):
            levels = hypercorrelation(rf, weights, tf)
            got = [c for level in levels[::-1] for c in level.unbind(1)]  # feature order
            for r, t, g in zip(rf, tf, got, strict=True):
                pooled = pool_heat(weights, tuple(r.shape[-2:]), "max")
                support = (r / (r.norm(dim=1, keepdim=True) + 1e-5) * pooled).flatten(2)
                query = (t / (t.norm(dim=1, keepdim=True) + 1e-5)).flatten(2).transpose(1, 2)
                expected = torch.bmm(query, support).clamp(min=0)
                torch.testing.assert_close(g.flatten(1, 2).flatten(2), expected)
