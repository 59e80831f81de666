"""Adapt SAMIC on the first frame when no trained checkpoint is given.

`samic-vos track` without ``--samic`` builds a fresh network and teaches its head to carry the
prompts of frame 0 between augmented views of frame 0 itself: each view is a random crop, flip
and colour jitter of the frame (:func:`samic_vos.train_dataset.draw_geometry`); each object's
prompts in a view are interior points of its mask in that view
(:func:`samic_vos.mask_points.interior_points`). A step predicts, for a batch of (reference view,
target view, object) triples, the target view's heat map from the reference view's, with the
saliency loss of training. The frozen backbone never changes, so every view's features are
computed once and the steps run on the head alone.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from samic_vos.config import require
from samic_vos.console import bar
from samic_vos.heatmaps import fixation_map, points_to_heatmap
from samic_vos.losses import LossWeights, saliency_loss
from samic_vos.mask_io import VOID_ID, object_ids
from samic_vos.mask_points import interior_points
from samic_vos.samic_net import SamicNet, preprocess
from samic_vos.train_dataset import (
    AugmentConfig,
    Geometry,
    draw_geometry,
    identity_geometry,
    jitter_colours,
)


@dataclass
class AdaptationConfig:
    """First-frame adaptation (the paper trains offline; this is our bounded stand-in)."""

    views: int = 8  # augmented views of frame 0 (view 0 is the frame itself)
    steps: int = 150  # optimisation steps; bounded so a CPU run stays in minutes
    batch_size: int = 4
    lr: float = 1e-3  # Adam, as training
    points_per_object: int = 3  # interior points per object and view (its prompts)
    seed: int = 0
    augment: AugmentConfig = field(default_factory=lambda: AugmentConfig(min_scale=0.7))
    loss: LossWeights = field(default_factory=LossWeights)

    def __post_init__(self) -> None:
        require(
            self.views >= 2, "views", "an integer >= 2 (frame 0 and an augmented view)", self.views
        )
        require(self.steps >= 0, "steps", "an integer >= 0", self.steps)
        require(self.batch_size >= 1, "batch_size", "an integer >= 1", self.batch_size)
        require(self.lr > 0, "lr", "a number > 0", self.lr)
        ppo = self.points_per_object
        require(ppo >= 1, "points_per_object", "an integer >= 1", ppo)


@dataclass
class _View:
    feats: list[torch.Tensor]  # backbone features, batch 1
    heats: dict[int, torch.Tensor]  # object id → (1, h, w) heat map of its prompts
    fixations: dict[int, torch.Tensor]  # object id → (1, h, w) binary point map


def adapt_on_first_frame(
    net: SamicNet,
    rgb: np.ndarray,
    ids: np.ndarray,
    config: AdaptationConfig,
    *,
    heat_sigma: float,
    device: torch.device,
    progress: bool = True,
) -> dict[str, float]:
    """Train ``net``'s head in place on views of one frame; returns the final loss terms.

    Args:
        net: the network, on ``device``; its head is trained, its backbone stays frozen.
        rgb: frame 0, uint8 (H, W, 3) RGB.
        ids: frame 0's id map, uint8 (H, W): 0 background, 255 void, other values objects.
        heat_sigma: σ of the prompt Gaussians (the tracker's, so both draw the same maps).
    """
    rng = np.random.default_rng(config.seed)
    torch.manual_seed(config.seed)
    present = object_ids(ids)
    views = [
        _make_view(net, rgb, ids, present, geometry, factors, config, heat_sigma, device)
        for geometry, factors in _draw_views(rng, rgb, ids, config)
    ]
    triples = [
        (r, t, k)
        for r in range(len(views))
        for t in range(len(views))
        for k in present
        if r != t and k in views[r].heats and k in views[t].heats
    ]
    if not triples:
        return {}
    net.head.train()
    optimizer = torch.optim.Adam(net.head.parameters(), lr=config.lr)
    terms: dict[str, float] = {}
    steps_bar = bar(range(config.steps), desc="adapting SAMIC on frame 0", disable=not progress)
    for _ in steps_bar:
        chosen = [triples[i] for i in rng.integers(0, len(triples), config.batch_size)]
        ref_feats = _stack([views[r].feats for r, _, _ in chosen])
        tgt_feats = _stack([views[t].feats for _, t, _ in chosen])
        ref_heat = torch.stack([views[r].heats[k] for r, _, k in chosen])
        tgt_heat = torch.stack([views[t].heats[k] for _, t, k in chosen])
        tgt_fix = torch.stack([views[t].fixations[k] for _, t, k in chosen])
        pred = torch.sigmoid(net.predict(ref_feats, ref_heat, tgt_feats))
        loss, terms = saliency_loss(pred, tgt_heat, tgt_fix, config.loss)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        steps_bar.set_postfix({k: f"{v:.3f}" for k, v in terms.items()})
    net.head.eval()
    return terms


def _draw_views(
    rng: np.random.Generator, rgb: np.ndarray, ids: np.ndarray, config: AdaptationConfig
) -> list[tuple[Geometry, list[float] | None]]:
    """View 0 is the frame as is; the others keep every object's interior point in the crop."""
    size = (rgb.shape[0], rgb.shape[1])
    anchors = interior_points((ids != 0) & (ids != VOID_ID), max_points=64)
    spans = (config.augment.brightness, config.augment.contrast, config.augment.saturation)
    views: list[tuple[Geometry, list[float] | None]] = [(identity_geometry(size), None)]
    for _ in range(config.views - 1):
        geometry = draw_geometry(rng, size, anchors, config.augment)
        views.append((geometry, [rng.uniform(1.0 - v, 1.0 + v) for v in spans]))
    return views


def _make_view(
    net: SamicNet,
    rgb: np.ndarray,
    ids: np.ndarray,
    present: list[int],
    geometry: Geometry,
    factors: list[float] | None,
    config: AdaptationConfig,
    heat_sigma: float,
    device: torch.device,
) -> _View:
    image = geometry.image(rgb)
    if factors is not None:
        image = jitter_colours(image, factors)
    view_ids = geometry.image(ids)
    size = (view_ids.shape[0], view_ids.shape[1])
    input_size = net.config.input_size
    with torch.no_grad():
        feats = net.extract_features(preprocess(image, input_size).to(device))
    heats: dict[int, torch.Tensor] = {}
    fixations: dict[int, torch.Tensor] = {}
    for obj_id in present:
        points = interior_points(view_ids == obj_id, config.points_per_object)
        if len(points) == 0:
            continue  # the object is cropped out of this view
        heat = points_to_heatmap(points, size, input_size, heat_sigma)
        heats[obj_id] = torch.from_numpy(heat)[None].to(device)
        fixations[obj_id] = torch.from_numpy(fixation_map(points, size, input_size))[None].to(
            device
        )
    return _View(feats, heats, fixations)


def _stack(feature_lists: list[list[torch.Tensor]]) -> list[torch.Tensor]:
    """Per level, the batch-1 feature maps of several views concatenated along the batch."""
    return [torch.cat(level) for level in zip(*feature_lists, strict=True)]
