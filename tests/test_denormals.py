"""No denormal floats in SAMIC's correlation: heat maps stop at a cutoff, CPU flushes them."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from samic_vos.data.mask_io import read_mask
from samic_vos.model.samic_net import SamicNetConfig, build_samic
from samic_vos.prompts.heatmaps import HEAT_CUTOFF, points_to_heatmap
from samic_vos.prompts.mask_points import interior_points
from samic_vos.runtime.devices import select_device
from samic_vos.runtime.errors import UserError

TINY = np.finfo(np.float32).tiny  # the smallest normal float32, 1.18e-38


def _denormals(x: torch.Tensor) -> int:
    return int(((x != 0) & (x.abs() < TINY)).sum())


def _flushing() -> bool:
    """Whether the CPU currently flushes denormal results to 0."""
    return float(torch.tensor([1e-38]) * 0.5) == 0.0


@pytest.fixture
def no_flush():
    """Denormals kept (the CPU's default), so only the source of the tensors is tested."""
    was = _flushing()
    torch.set_flush_denormal(False)
    yield
    torch.set_flush_denormal(was)


@pytest.fixture(scope="module")
def judo_heat(shared_data) -> tuple[np.ndarray, tuple[int, int]]:
    """The judo first mask's prompt points (x, y) and the frame size (H, W)."""
    ids = read_mask(shared_data / "judo" / "Annotations" / "480p" / "judo" / "00000.png")
    return interior_points(ids == 1, 3), ids.shape


def _bmm_inputs_and_outputs(monkeypatch, net, heat: np.ndarray) -> list[torch.Tensor]:
    """Every tensor entering or leaving torch.bmm, and every head module output, in one
    prediction of ``net`` from ``heat``."""
    seen: list[torch.Tensor] = []
    bmm = torch.bmm

    def spy(a, b):
        out = bmm(a, b)
        seen.extend([a, b, out])
        return out

    monkeypatch.setattr(torch, "bmm", spy)
    hooks = [
        m.register_forward_hook(lambda _m, _i, out: seen.append(out.detach()))
        for m in net.head.modules()
    ]
    images = torch.randn(2, 1, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        ref, tgt = (net.extract_features(x) for x in images)
        net.predict(ref, torch.from_numpy(heat)[None, None], tgt)
    for hook in hooks:
        hook.remove()
    monkeypatch.setattr(torch, "bmm", bmm)
    return seen


def test_no_denormal_reaches_the_correlation(monkeypatch, no_flush, judo_heat):
    points, image_size = judo_heat
    torch.manual_seed(0)
    net = build_samic(SamicNetConfig(backbone="random")).eval()
    heat = points_to_heatmap(points, image_size, (224, 224))
    assert _denormals(torch.from_numpy(heat)) == 0 and heat.max() == 1.0
    assert heat[heat > 0].min() >= HEAT_CUTOFF
    seen = _bmm_inputs_and_outputs(monkeypatch, net, heat)
    assert len(seen) > 13 * 3  # 13 correlations and every head module
    assert sum(_denormals(x) for x in seen) == 0
    # Without the cutoffs the tail is ~4% denormal pixels and they do reach the products.
    raw = points_to_heatmap(points, image_size, (224, 224), cutoff=0.0)
    assert _denormals(torch.from_numpy(raw)) > 0.02 * raw.size
    net.head.heat_cutoff = 0.0
    seen = _bmm_inputs_and_outputs(monkeypatch, net, raw)
    assert sum(_denormals(x) for x in seen[: 3 * 13]) > 0


def test_the_net_cuts_heat_it_is_given_without_a_cutoff(monkeypatch, no_flush, judo_heat):
    points, image_size = judo_heat
    torch.manual_seed(0)
    net = build_samic(SamicNetConfig(backbone="random")).eval()
    raw = points_to_heatmap(points, image_size, (224, 224), cutoff=0.0)  # a caller's own map
    seen = _bmm_inputs_and_outputs(monkeypatch, net, raw)
    assert sum(_denormals(x) for x in seen) == 0


def test_every_job_flushes_denormals_on_the_cpu(no_flush):
    assert not _flushing()
    select_device("cpu")  # what every pipeline calls first
    assert _flushing()


def test_cutoff_settings_are_checked():
    with pytest.raises(UserError, match=r"heat_cutoff must be in \[0, 1\), got -1"):
        SamicNetConfig(heat_cutoff=-1)
    with pytest.raises(ValueError, match="cutoff"):
        points_to_heatmap(np.zeros((1, 2)), (10, 10), (10, 10), cutoff=1.0)
