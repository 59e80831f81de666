"""The SAMIC network: reference image + its point-prompt heat map, target image → target heat map.

HSNet-style (Min et al., ICCV 2021), with the support mask replaced by the reference heat map:

1. Frozen ResNet-50 pyramid (:mod:`samic_vos.model.backbone`): 13 feature maps per image.
2. Per feature pair, the cosine correlation of every target position with every reference
   position, the reference side weighted by the heat map pooled to that level's grid, clipped
   at 0; stacked into 3 hypercorrelations (layer4: 3 channels, layer3: 6, layer2: 4), each
   ``(B, C, Hq, Wq, Hs, Ws)`` with query = target, support = reference.
3. Squeezing blocks (center-pivot 4D convolutions, :mod:`samic_vos.model.conv4d`, + GroupNorm
   + ReLU) shrink the support dims per level; mixing blocks merge the levels coarse to fine.
4. The support dims are averaged out and a 2D decoder predicts a 1-channel heat map, upsampled
   to the input resolution: logits from :meth:`SamicNet.predict`, a sigmoid in ``forward``.

About 2.57M learnable parameters with the default channels; the frozen backbone (23.5M) excluded.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from samic_vos.model.backbone import (
    BACKBONE_KINDS,
    LEVEL_BLOCKS,
    NUM_FEATURES,
    RESIZE_MODES,
    ResNet50Pyramid,
    build_backbone,
    preprocess,
)
from samic_vos.model.conv4d import ALIGN_CORNERS, CenterPivotConv4d, resize_query_dims
from samic_vos.prompts.heatmaps import HEAT_CUTOFF
from samic_vos.runtime.config import require, require_choice

__all__ = [
    "SamicHead",
    "SamicNet",
    "SamicNetConfig",
    "build_samic",
    "hypercorrelation",
    "pool_heat",
    "preprocess",
]

HEAT_POOLS = ("max", "area")
COSINE_EPS = 1e-5  # added to feature norms before dividing: x / (‖x‖ + eps), as HSNet
# Squeezing blocks per level, coarse to fine (layer4, layer3, layer2): 4D kernel sizes and
# support strides of their three 4D convolutions (HSNet's). The strides shrink every level's
# support dims to the same ⌈H/256⌉ × ⌈W/256⌉ grid, so the levels can be added when mixing.
SQUEEZE_KERNELS = ((3, 3, 3), (5, 3, 3), (5, 5, 3))
SQUEEZE_STRIDES = ((2, 2, 2), (4, 2, 2), (4, 4, 2))
MIX_KERNEL = 3


@dataclass
class SamicNetConfig:
    """Architecture of a SAMIC network; stored in every checkpoint to rebuild it.

    Attributes:
        input_size: ``(H, W)`` network input size in pixels, both ≥ 32 (paper 224×224; HSNet
            400×400). The network itself runs at any size; this is what :func:`preprocess`
            and the heat maps fed to it use.
        backbone: ``"imagenet"`` (torchvision's ImageNet ResNet-50) or ``"random"`` (random
            initialisation from ``backbone_seed``; tests and experiments only, warned loudly).
        backbone_seed: seed of the random backbone (ignored for ``"imagenet"``).
        channels: widths of the three 4D convolutions of each squeezing block (HSNet's 16, 64,
            128); the last is also the width of the mixing blocks and the decoder's first
            convolutions, the middle one the decoder's second stage.
        groups: GroupNorm groups after every 4D convolution (HSNet's 4); divides ``channels``.
        heat_pool: how the reference heat map is brought to each feature grid: ``"max"``
            (adaptive max pooling: a narrow peak keeps its value ≈ 1 even at stride 32) or
            ``"area"`` (adaptive average: keeps its mass, weaker at coarse levels). Never
            bilinear sampling, which misses a narrow Gaussian between stride-32 samples.
        heat_before_norm: ``False``: the heat map scales the L2-normalised reference features,
            so correlations keep the heat map's grading. ``True``: HSNet's order, raw features
            × heat then normalised, which makes every position with nonzero heat (including a
            Gaussian's far tail) count fully, as a binary mask would (a reference feature f
            under heat h gets length ``h‖f‖ / (h‖f‖ + 1e-5)``: 1 unless h‖f‖ is near 1e-5).
        heat_cutoff: reference heat below this is 0 where it enters the correlation (after
            pooling to each level's grid), so no denormal float reaches its matrix products;
            in [0, 1). Heat maps from :func:`samic_vos.prompts.heatmaps.points_to_heatmap` already
            stop at the same default, :data:`samic_vos.prompts.heatmaps.HEAT_CUTOFF`.
        resize: how :func:`preprocess` resizes images to ``input_size``, one of
            ``RESIZE_MODES`` (:mod:`samic_vos.model.backbone`): ``"cv2"`` (ours) or
            ``"pil_bilinear"`` (HSNet's, for runs warm-started from HSNet).
    """

    input_size: tuple[int, int] = (224, 224)
    backbone: str = "imagenet"
    backbone_seed: int = 0
    channels: tuple[int, int, int] = (16, 64, 128)
    groups: int = 4
    heat_pool: str = "max"
    heat_before_norm: bool = False
    heat_cutoff: float = HEAT_CUTOFF  # no denormals in the correlation: see HEAT_CUTOFF
    resize: str = RESIZE_MODES[0]  # cv2 area/linear: see RESIZE_MODES for why not PIL's

    def __post_init__(self) -> None:
        size = tuple(self.input_size)
        ok = len(size) == 2 and all(isinstance(v, int) and v >= 32 for v in size)
        require(ok, "input_size", "two integers [H, W], each >= 32", list(size))
        self.input_size = (int(size[0]), int(size[1]))
        self.channels = tuple(int(c) for c in self.channels)  # type: ignore[assignment]
        require_choice("backbone", self.backbone, BACKBONE_KINDS)
        require_choice("heat_pool", self.heat_pool, HEAT_POOLS)
        require(self.groups >= 1, "groups", "an integer >= 1", self.groups)
        ok = len(self.channels) == 3 and all(c > 0 and c % self.groups == 0 for c in self.channels)
        require(ok, "channels", f"3 positive multiples of groups={self.groups}", self.channels)
        require(0 <= self.heat_cutoff < 1, "heat_cutoff", "in [0, 1)", self.heat_cutoff)
        require_choice("resize", self.resize, RESIZE_MODES)


def pool_heat(heat: Tensor, size: tuple[int, int], mode: str = "max") -> Tensor:
    """Downsample a heat map ``(B, 1, H, W)`` in [0, 1] to a feature grid ``size = (h, w)``.

    Each output cell pools the input pixels it covers (adaptive pooling: ``"max"`` or
    ``"area"`` = mean), so a peak narrower than the stride is never skipped.
    """
    if mode == "max":
        return F.adaptive_max_pool2d(heat, size)
    if mode == "area":
        return F.adaptive_avg_pool2d(heat, size)
    raise ValueError(f"unknown heat pooling '{mode}'")


def hypercorrelation(
    ref_feats: list[Tensor],
    ref_heat: Tensor,
    tgt_feats: list[Tensor],
    heat_pool: str = "max",
    heat_before_norm: bool = False,
    heat_cutoff: float = HEAT_CUTOFF,
) -> list[Tensor]:
    """Heat-weighted cosine correlations stacked per pyramid level, coarse to fine.

    Args:
        ref_feats, tgt_feats: the 13 backbone maps of reference and target (same batch B).
        ref_heat: ``(B, 1, H, W)`` reference heat map in [0, 1] at the input resolution.
        heat_cutoff: pooled heat below it counts as 0 (see :class:`SamicNetConfig`).

    Returns:
        3 tensors ``(B, L, Hq, Wq, Hs, Ws)``, L = 3 (layer4), 6 (layer3), 4 (layer2); query
        (q) = target, support (s) = reference positions; values in [0, 1].
    """
    corrs = []
    for ref, tgt in zip(ref_feats, tgt_feats, strict=True):
        # Norms in float32: a 2048-dim sum of squares can overflow float16 under autocast.
        ref, tgt = ref.float(), tgt.float()
        heat = pool_heat(ref_heat.float(), tuple(ref.shape[-2:]), heat_pool)
        heat = heat.masked_fill(heat < heat_cutoff, 0.0)
        ref = _unit(ref * heat) if heat_before_norm else _unit(ref) * heat
        tgt = _unit(tgt)
        b, _, hq, wq = tgt.shape
        hs, ws = ref.shape[-2:]
        corr = _support_correlation(tgt.flatten(2).transpose(1, 2), ref.flatten(2), heat)
        corrs.append(corr.clamp_(min=0).view(b, hq, wq, hs, ws))
    levels = []
    start = 0
    for n in LEVEL_BLOCKS:
        levels.append(torch.stack(corrs[start : start + n], dim=1))
        start += n
    return levels[::-1]


def _unit(x: Tensor) -> Tensor:
    """``x / (‖x‖ + COSINE_EPS)``, the norm over the channels (dim 1) of ``(B, C, H, W)``.

    HSNet's normalisation (``Correlation.multilayer_correlation``): the eps is *added* to the
    norm, not a floor on it as in ``F.normalize``, so a vector of norm n comes out with length
    ``n / (n + eps)``: about 1 for backbone features, and fading smoothly to 0 for a reference
    feature scaled by a heat value near 0 (``heat_before_norm``).
    """
    return x / (torch.linalg.vector_norm(x, dim=1, keepdim=True) + COSINE_EPS)


def _support_correlation(tgt: Tensor, ref: Tensor, heat: Tensor) -> Tensor:
    """``tgt @ ref``: (B, Q, C) query features by (B, C, S) heat-weighted support features →
    (B, Q, S). A support position whose pooled ``heat`` (B, 1, Hs, Ws) is 0 has a zero feature
    column, so its correlations are 0: on a CPU only the columns some batch element heats are
    multiplied (a prompt's Gaussians cover 10–20% of the map), the others set to 0. On other
    devices the whole product runs (finding the columns would wait for the device).
    """
    if tgt.device.type != "cpu":
        return torch.bmm(tgt, ref)
    heated = (heat.flatten(1) > 0).any(dim=0).nonzero().squeeze(1)
    if len(heated) == ref.shape[-1]:
        return torch.bmm(tgt, ref)
    corr = tgt.new_zeros(tgt.shape[0], tgt.shape[1], ref.shape[-1])
    corr[:, :, heated] = torch.bmm(tgt, ref[:, :, heated])
    return corr


def _conv4d_block(
    in_channels: int,
    channels: tuple[int, ...],
    kernels: tuple[int, ...],
    strides: tuple[int, ...],
    groups: int,
) -> nn.Sequential:
    """4D convolutions (support strides ``strides``), each followed by GroupNorm and ReLU."""
    layers: list[nn.Module] = []
    for out_channels, kernel, stride in zip(channels, kernels, strides, strict=True):
        layers += [
            CenterPivotConv4d(in_channels, out_channels, kernel, stride),
            nn.GroupNorm(groups, out_channels),
            nn.ReLU(inplace=True),
        ]
        in_channels = out_channels
    return nn.Sequential(*layers)


class SamicHead(nn.Module):
    """The learnable part: hypercorrelation squeezing and mixing learner + 2D decoder.

    Its ``forward(ref_feats, ref_heat, tgt_feats)`` is :meth:`SamicNet.predict`; wrap this
    module (not the whole net) in DistributedDataParallel when training on cached features.
    """

    def __init__(self, config: SamicNetConfig) -> None:
        super().__init__()
        self.heat_pool = config.heat_pool
        self.heat_before_norm = config.heat_before_norm
        self.heat_cutoff = config.heat_cutoff
        c1, c2, c3 = config.channels
        g = config.groups
        self.squeeze = nn.ModuleList(
            _conv4d_block(n, config.channels, k, s, g)
            for n, k, s in zip(LEVEL_BLOCKS[::-1], SQUEEZE_KERNELS, SQUEEZE_STRIDES, strict=True)
        )
        self.mix43 = _conv4d_block(c3, (c3,) * 3, (MIX_KERNEL,) * 3, (1,) * 3, g)
        self.mix32 = _conv4d_block(c3, (c3,) * 3, (MIX_KERNEL,) * 3, (1,) * 3, g)
        self.decoder1 = nn.Sequential(
            nn.Conv2d(c3, c3, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(c3, c2, 3, padding=1),
            nn.ReLU(inplace=True),
        )
        self.decoder2 = nn.Sequential(
            nn.Conv2d(c2, c2, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(c2, 1, 3, padding=1),
        )

    def forward(self, ref_feats: list[Tensor], ref_heat: Tensor, tgt_feats: list[Tensor]) -> Tensor:
        """Logits ``(B, 1, H, W)`` of the target heat map at ``ref_heat``'s resolution."""
        if len(ref_feats) != NUM_FEATURES or len(tgt_feats) != NUM_FEATURES:
            raise ValueError(
                f"expected {NUM_FEATURES} feature maps per image, got "
                f"{len(ref_feats)} (reference) and {len(tgt_feats)} (target)"
            )
        if ref_heat.ndim != 4 or ref_heat.shape[1] != 1:
            raise ValueError(f"ref_heat must be (B, 1, H, W), got {tuple(ref_heat.shape)}")
        if not ref_feats[0].shape[0] == ref_heat.shape[0] == tgt_feats[0].shape[0]:
            raise ValueError(
                "reference features, reference heat map and target features differ in batch size"
            )
        with torch.no_grad():  # nothing learnable before the correlation (as in HSNet)
            pyramid = hypercorrelation(
                ref_feats,
                ref_heat,
                tgt_feats,
                self.heat_pool,
                self.heat_before_norm,
                self.heat_cutoff,
            )
        sq4, sq3, sq2 = (block(c) for block, c in zip(self.squeeze, pyramid, strict=True))
        mixed = self.mix43(resize_query_dims(sq4, tuple(sq3.shape[2:4])) + sq3)
        mixed = self.mix32(resize_query_dims(mixed, tuple(sq2.shape[2:4])) + sq2)
        encoded = mixed.flatten(4).mean(dim=-1)  # average over the support dims: (B, C, Hq, Wq)
        x = self.decoder1(encoded)
        # HSNet doubles the width on both sides (square inputs only); we double each side.
        size = (2 * x.shape[-2], 2 * x.shape[-1])
        x = F.interpolate(x, size=size, mode="bilinear", align_corners=ALIGN_CORNERS)
        x = self.decoder2(x)
        return F.interpolate(
            x, size=tuple(ref_heat.shape[-2:]), mode="bilinear", align_corners=ALIGN_CORNERS
        )


class SamicNet(nn.Module):
    """Frozen backbone + learnable :class:`SamicHead`.

    Build it with :func:`build_samic`; save and load it with :mod:`samic_vos.model.checkpoint`
    (which stores :meth:`learnable_state_dict` only).
    """

    def __init__(self, config: SamicNetConfig, backbone: ResNet50Pyramid) -> None:
        super().__init__()
        self.config = config
        self.backbone = backbone
        self.head = SamicHead(config)

    def extract_features(self, images: Tensor) -> list[Tensor]:
        """The 13 backbone maps of ``(B, 3, H, W)`` ImageNet-normalised images (no grad).

        Compute them once per frame: frame t's features serve as target at t and as
        reference at t+1.
        """
        return self.backbone(images)

    def predict(self, ref_feats: list[Tensor], ref_heat: Tensor, tgt_feats: list[Tensor]) -> Tensor:
        """Target heat-map logits ``(B, 1, H, W)`` from features alone.

        Args:
            ref_feats, tgt_feats: :meth:`extract_features` of reference and target images.
            ref_heat: ``(B, 1, H, W)`` reference heat map in [0, 1] at the input resolution
                (rows, cols = image y, x); the output has the same size.
        """
        return self.head(ref_feats, ref_heat, tgt_feats)

    def forward(self, ref_images: Tensor, ref_heats: Tensor, tgt_images: Tensor) -> Tensor:
        """Target heat map ``(B, 1, H, W)`` in [0, 1] (sigmoid of :meth:`predict`).

        ``ref_images``, ``tgt_images``: ``(B, 3, H, W)`` ImageNet-normalised;
        ``ref_heats``: ``(B, 1, H, W)`` in [0, 1].
        """
        logits = self.predict(
            self.extract_features(ref_images), ref_heats, self.extract_features(tgt_images)
        )
        return torch.sigmoid(logits)

    def learnable_state_dict(self) -> dict[str, Tensor]:
        """State of the learnable head only (the frozen backbone is rebuilt, never saved)."""
        return self.head.state_dict()

    def num_learnable_parameters(self) -> int:
        """Number of trainable parameters (frozen backbone excluded)."""
        return sum(p.numel() for p in self.parameters() if p.requires_grad)


def build_samic(
    config: SamicNetConfig, backbone_weights: str | os.PathLike[str] | None = None
) -> SamicNet:
    """A SAMIC network with a freshly initialised head (global torch RNG) on the CPU.

    ``backbone_weights``: torchvision ResNet-50 ImageNet state dict for ``config.backbone ==
    "imagenet"``; ``None`` looks it up in the weights registry (cache, download when online,
    else a one-line UserError naming the ``backbone_weights`` argument).
    """
    backbone = build_backbone(config.backbone, config.backbone_seed, backbone_weights)
    return SamicNet(config, backbone)
