"""Saliency-prediction losses for SAMIC's predicted heat maps: KLD, CC and NSS, plus BCE.

Definitions follow the saliency literature (MIT/Tuebingen saliency benchmark):

- KLD(P, Q) = Σ P · log(ε + P / (Q + ε)), with P = target / Σ target and Q = pred / Σ pred;
- CC = Pearson correlation of prediction and target heat map;
- NSS = mean, over the fixation pixels, of the prediction standardised by its mean and
  standard deviation (the *binary* point map gives the fixations);
- BCE = mean over pixels of −[t·log p + (1 − t)·log(1 − p)], the target heat map t as soft
  labels, p clamped to [ε, 1 − ε]. Not in the paper: KLD, CC and NSS do not change when the
  prediction is multiplied by a constant, so only BCE ties the map's scale to the target's
  (peaks near 1 at the points), which an absolute peak threshold (0.5) relies on.

All are computed per sample in float32 and averaged over the batch. Epsilons keep every term
and its gradient finite: an all-zero target or prediction, a constant prediction (CC = 0,
NSS = 0) and an empty fixation map (NSS = 0) are all allowed.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from samic_vos.runtime.config import require

# Guards divisions and logarithms; small against heat-map sums/variances, safe in float32.
EPS = 1e-7


# The measures saliency_loss logs (besides "loss"), in the order logs show them.
TERMS = ("kld", "cc", "nss", "bce")


@dataclass
class LossWeights:
    """Weights: loss = kld·KLD + cc·(1 − CC) + nss·(−NSS) + bce·BCE (paper: 1, 1, 1, no BCE)."""

    kld: float = 1.0
    cc: float = 1.0
    nss: float = 1.0
    # Calibration term, not in the paper (module doc). 0 = the paper's loss: on DAVIS, BCE
    # (weight 1 or 10) neither lifted the peaks to 0.5 nor helped relative peaks (BENCHMARKS.md).
    bce: float = 0.0

    def __post_init__(self) -> None:
        for name in ("kld", "cc", "nss", "bce"):
            require(getattr(self, name) >= 0, name, "a weight >= 0", getattr(self, name))


def _flat(x: Tensor) -> Tensor:
    """(B, ...) → (B, N) float32."""
    return x.reshape(x.shape[0], -1).float()


def kld(pred: Tensor, target: Tensor) -> Tensor:
    """Per-sample KL divergence of the normalised prediction from the normalised target.

    Args:
        pred, target: (B, 1, h, w) non-negative heat maps.

    Returns:
        (B,) float32, >= 0 up to ε; 0 when both are proportional.
    """
    p, q = _flat(target), _flat(pred)
    p = p / (p.sum(dim=1, keepdim=True) + EPS)
    q = q / (q.sum(dim=1, keepdim=True) + EPS)
    return (p * torch.log(EPS + p / (q + EPS))).sum(dim=1)


def cc(pred: Tensor, target: Tensor) -> Tensor:
    """Per-sample Pearson correlation coefficient of prediction and target.

    Args:
        pred, target: (B, 1, h, w) heat maps.

    Returns:
        (B,) float32 in [-1, 1]; 0 when either map is constant.
    """
    a, b = _flat(pred), _flat(target)
    a = a - a.mean(dim=1, keepdim=True)
    b = b - b.mean(dim=1, keepdim=True)
    norm = torch.sqrt((a * a).sum(dim=1) + EPS) * torch.sqrt((b * b).sum(dim=1) + EPS)
    return (a * b).sum(dim=1) / norm


def nss(pred: Tensor, fixations: Tensor) -> Tensor:
    """Per-sample normalised scanpath saliency.

    The prediction is standardised by its mean and its standard deviation (N − 1 in the
    denominator, like MATLAB's ``std`` in the benchmark code) and averaged over the pixels
    where ``fixations`` > 0.

    Args:
        pred: (B, 1, h, w) heat map.
        fixations: (B, 1, h, w) binary point map.

    Returns:
        (B,) float32; 0 for a sample without fixations or with a constant prediction.
    """
    a, fix = _flat(pred), (_flat(fixations) > 0).float()
    a = a - a.mean(dim=1, keepdim=True)
    std = torch.sqrt(a.pow(2).sum(dim=1, keepdim=True) / max(a.shape[1] - 1, 1) + EPS)
    count = fix.sum(dim=1)
    return (a / std * fix).sum(dim=1) / count.clamp(min=1.0)


def bce(pred: Tensor, target: Tensor) -> Tensor:
    """Per-sample pixel-wise binary cross-entropy with the target heat map as soft labels.

    Args:
        pred: (B, 1, h, w) predicted heat map in [0, 1]; clamped to [ε, 1 − ε] so the
            logarithms stay finite.
        target: (B, 1, h, w) target heat map in [0, 1].

    Returns:
        (B,) float32, >= 0; its minimum over ``pred`` is at ``pred == target`` (the binary
        entropy of the target, 0 for a 0/1 target).
    """
    p, t = _flat(pred).clamp(EPS, 1 - EPS), _flat(target)
    return -(t * torch.log(p) + (1 - t) * torch.log(1 - p)).mean(dim=1)


def saliency_loss(
    pred: Tensor, target_heat: Tensor, fixations: Tensor, weights: LossWeights | None = None
) -> tuple[Tensor, dict[str, float]]:
    """The training loss: kld·KLD + cc·(1 − CC) + nss·(−NSS) + bce·BCE, averaged over the batch.

    Args:
        pred: (B, 1, h, w) predicted heat map in [0, 1] (after the sigmoid).
        target_heat: (B, 1, h, w) ground-truth heat map in [0, 1].
        fixations: (B, 1, h, w) binary ground-truth point map.
        weights: term weights (``LossWeights()`` if None).

    Returns:
        The scalar loss (differentiable, float32) and, for logging, a dict of floats with
        ``loss`` and the ``TERMS`` (batch means of the unweighted measures; BCE is logged
        even when its weight is 0).
    """
    weights = weights or LossWeights()
    if pred.dim() != 4 or pred.shape[1] != 1:
        raise ValueError(f"pred must be (B, 1, h, w), got {tuple(pred.shape)}")
    for name, other in (("target_heat", target_heat), ("fixations", fixations)):
        if other.shape != pred.shape:
            raise ValueError(f"{name} shape {tuple(other.shape)} != pred {tuple(pred.shape)}")
    terms = {
        "kld": kld(pred, target_heat).mean(),
        "cc": cc(pred, target_heat).mean(),
        "nss": nss(pred, fixations).mean(),
        "bce": bce(pred, target_heat).mean(),
    }
    loss = (
        weights.kld * terms["kld"]
        + weights.cc * (1 - terms["cc"])
        - weights.nss * terms["nss"]
        + weights.bce * terms["bce"]
    )
    logged = {"loss": float(loss.detach())}
    logged.update({name: float(value.detach()) for name, value in terms.items()})
    return loss, logged
