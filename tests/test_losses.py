"""Saliency losses (KLD, CC, NSS) and the BCE term against values by hand and in plain numpy."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from samic_vos.runtime.config import apply_overrides
from samic_vos.runtime.errors import UserError
from samic_vos.training.losses import TERMS, LossWeights, saliency_loss


def t(values) -> torch.Tensor:
    """A (B, 1, h, w) float32 tensor from a nested list of (B, h, w) values."""
    return torch.tensor(values, dtype=torch.float32).unsqueeze(1)


def numpy_terms(pred: np.ndarray, target: np.ndarray, fix: np.ndarray) -> dict[str, float]:
    """The textbook saliency measures of one (h, w) sample, in float64 without epsilons."""
    p, q = target / target.sum(), pred / pred.sum()
    mask = p > 0
    kld = float(np.sum(p[mask] * np.log(p[mask] / q[mask])))
    cc = float(np.corrcoef(pred.ravel(), target.ravel())[0, 1])
    nss = float(((pred - pred.mean()) / pred.std(ddof=1))[fix > 0].mean())
    bce = float(np.mean(-(target * np.log(pred) + (1 - target) * np.log(1 - pred))))
    return {"kld": kld, "cc": cc, "nss": nss, "bce": bce}


def test_two_pixel_example_computed_by_hand():
    # pred (0.25, 0.75) → Q = (1/4, 3/4); target (0.5, 0.5) → P = (1/2, 1/2).
    # KLD = ½·log(2) + ½·log(2/3); CC of a constant target is 0 by convention here;
    # NSS at pixel 2: mean 0.5, std (N−1) = √(2·0.25²) → 0.25 / 0.35355 = 1/√2.
    # BCE: both pixels −(½·log ¼ + ½·log ¾) = ½·log(16/3).
    weights = LossWeights(kld=1.0, cc=1.0, nss=1.0, bce=2.0)
    pred = t([[[0.25, 0.75]]])
    loss, terms = saliency_loss(pred, t([[[0.5, 0.5]]]), t([[[0.0, 1.0]]]), weights)
    kld = 0.5 * math.log(2) + 0.5 * math.log(2 / 3)
    bce = 0.5 * math.log(16 / 3)
    assert terms["kld"] == pytest.approx(kld, abs=1e-5)
    assert terms["cc"] == pytest.approx(0.0, abs=1e-6)
    assert terms["nss"] == pytest.approx(1 / math.sqrt(2), abs=1e-5)
    assert terms["bce"] == pytest.approx(bce, abs=1e-5)
    assert terms["loss"] == pytest.approx(kld + 1 - 1 / math.sqrt(2) + 2 * bce, abs=1e-5)
    assert float(loss) == pytest.approx(terms["loss"])

    # Against a target (0, 1): CC = 1, KLD = log(1 / (3/4)), BCE = −log ¾ at both pixels.
    _, terms = saliency_loss(pred, t([[[0.0, 1.0]]]), t([[[0.0, 1.0]]]), weights)
    assert terms["cc"] == pytest.approx(1.0, abs=1e-5)
    assert terms["kld"] == pytest.approx(math.log(4 / 3), abs=1e-5)
    assert terms["bce"] == pytest.approx(math.log(4 / 3), abs=1e-5)


def test_batch_matches_numpy_formulas_and_weights():
    rng = np.random.default_rng(1)
    pred = rng.uniform(0.05, 1.0, size=(3, 4, 5))
    target = rng.uniform(0.0, 1.0, size=(3, 4, 5))
    fix = np.zeros((3, 4, 5))
    fix[0, 1, 2] = fix[1, 3, 4] = fix[1, 0, 0] = fix[2, 2, 1] = 1
    per_sample = [numpy_terms(pred[b], target[b], fix[b]) for b in range(3)]
    expected = {k: np.mean([s[k] for s in per_sample]) for k in TERMS}

    weights = LossWeights(kld=2.0, cc=0.5, nss=0.25, bce=3.0)
    loss, terms = saliency_loss(t(pred), t(target), t(fix), weights)
    assert set(terms) == {"loss", *TERMS}
    for name in TERMS:
        assert terms[name] == pytest.approx(expected[name], abs=1e-5)
    want = (
        2.0 * expected["kld"]
        + 0.5 * (1 - expected["cc"])
        - 0.25 * expected["nss"]
        + 3.0 * expected["bce"]
    )
    assert float(loss) == pytest.approx(want, abs=1e-5)
    assert terms["loss"] == pytest.approx(want, abs=1e-5)


def test_perfect_prediction_has_zero_kld_and_unit_cc():
    heat = torch.rand(2, 1, 8, 8)
    _, terms = saliency_loss(heat, heat, (heat > 0.9).float())
    assert terms["kld"] == pytest.approx(0.0, abs=1e-5)
    assert terms["cc"] == pytest.approx(1.0, abs=1e-5)
    assert terms["nss"] > 0


def test_only_bce_depends_on_the_scale_of_the_prediction():
    # KLD, CC and NSS cannot tell a map from a tenth of it; BCE prefers the calibrated one.
    target = torch.zeros(1, 1, 8, 8)
    target[0, 0, 2:4, 5:7] = 1.0
    fix = torch.zeros_like(target)
    fix[0, 0, 3, 6] = 1.0
    pred = 0.01 + 0.98 * target
    _, full = saliency_loss(pred, target, fix)
    _, tenth = saliency_loss(pred / 10, target, fix)
    for name in ("kld", "cc", "nss"):
        assert tenth[name] == pytest.approx(full[name], rel=1e-3)  # ε in the std
    assert full["bce"] == pytest.approx(-math.log(0.99), abs=1e-5)
    assert tenth["bce"] > full["bce"] + 0.1


def finite_loss_and_grad(pred_logits: torch.Tensor, target: torch.Tensor, fix: torch.Tensor):
    logits = pred_logits.clone().requires_grad_(True)
    loss, terms = saliency_loss(torch.sigmoid(logits), target, fix, LossWeights(bce=1.0))
    loss.backward()
    assert torch.isfinite(loss)
    assert all(math.isfinite(v) for v in terms.values())
    assert torch.isfinite(logits.grad).all()
    return terms


def test_constant_prediction_is_finite_with_zero_cc_and_nss():
    target = torch.rand(2, 1, 6, 6)
    fix = torch.zeros(2, 1, 6, 6)
    fix[:, :, 2, 3] = 1
    terms = finite_loss_and_grad(torch.zeros(2, 1, 6, 6), target, fix)
    assert terms["cc"] == pytest.approx(0.0, abs=1e-6)
    assert terms["nss"] == pytest.approx(0.0, abs=1e-6)


def test_empty_fixations_and_zero_maps_are_finite():
    target = torch.rand(2, 1, 6, 6)
    terms = finite_loss_and_grad(torch.randn(2, 1, 6, 6), target, torch.zeros(2, 1, 6, 6))
    assert terms["nss"] == 0.0
    # Saturated prediction (sigmoid underflows to 0) and an all-zero target.
    finite_loss_and_grad(torch.full((1, 1, 6, 6), -200.0), torch.zeros(1, 1, 6, 6), target[:1])
    # Saturated at 0 and at 1 against the opposite labels: BCE is capped near −log ε (1 − ε
    # rounds to 1 − 1.19e-7 in float32, hence the 2% tolerance).
    ones = torch.ones(1, 1, 6, 6)
    for logit, label in ((-200.0, ones), (200.0, 0 * ones)):
        terms = finite_loss_and_grad(torch.full((1, 1, 6, 6), logit), label, target[:1])
        assert terms["bce"] == pytest.approx(-math.log(1e-7), rel=2e-2)


def test_gradients_are_finite_and_the_loss_decreases_under_gradient_descent():
    target = torch.zeros(1, 1, 16, 16)
    target[0, 0, 5:8, 9:12] = 1.0
    fix = torch.zeros_like(target)
    fix[0, 0, 6, 10] = 1.0
    logits = torch.zeros(1, 1, 16, 16, requires_grad=True)
    optimiser = torch.optim.SGD([logits], lr=1.0)
    history = []
    for _ in range(30):
        optimiser.zero_grad()
        loss, terms = saliency_loss(torch.sigmoid(logits), target, fix)
        loss.backward()
        assert torch.isfinite(logits.grad).all()
        optimiser.step()
        history.append(terms["loss"])
    assert history[-1] < history[0] - 1.0


def test_shape_mismatch_is_rejected():
    with pytest.raises(ValueError, match="target_heat"):
        saliency_loss(torch.rand(1, 1, 4, 4), torch.rand(1, 1, 4, 5), torch.zeros(1, 1, 4, 4))
    with pytest.raises(ValueError, match="pred"):
        saliency_loss(torch.rand(1, 4, 4), torch.rand(1, 4, 4), torch.zeros(1, 4, 4))


def test_negative_weights_are_user_errors():
    with pytest.raises(UserError, match="must be a weight >= 0"):
        apply_overrides(LossWeights(), {"nss": -1.0}, "train.yaml")
