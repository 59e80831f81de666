"""The views of frame 0 that first-frame adaptation trains on, and their loss.

A view is a crop, flip and colour jitter of frame 0
(:func:`samic_vos.training.train_dataset.draw_geometry`,
:func:`samic_vos.training.train_dataset.jitter_colours`), its backbone features, and per object the
heat map and fixation map of the object's interior points in that view.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from samic_vos.data.mask_io import VOID_ID
from samic_vos.model.samic_net import SamicNet, preprocess
from samic_vos.prompts.heatmaps import fixation_map, points_to_heatmap
from samic_vos.prompts.mask_points import interior_points
from samic_vos.training.losses import LossWeights, saliency_loss
from samic_vos.training.train_dataset import (
    AugmentConfig,
    Geometry,
    draw_geometry,
    identity_geometry,
    jitter_colours,
)


@dataclass
class View:
    """One view: features and, per object present in it, its prompt maps."""

    feats: list[torch.Tensor]  # backbone features, batch 1
    heats: dict[int, torch.Tensor]  # object id → (1, h, w) heat map of its prompts
    fixations: dict[int, torch.Tensor]  # object id → (1, h, w) binary point map


def all_triples(
    refs: list[View], targets: list[View], present: list[int]
) -> list[tuple[int, int, int]]:
    """Every (reference index, target index, object id) with the object in both views
    (a view is never its own target when both lists are the same)."""
    return [
        (r, t, k)
        for r in range(len(refs))
        for t in range(len(targets))
        for k in present
        if refs[r] is not targets[t] and k in refs[r].heats and k in targets[t].heats
    ]


def view_loss(
    net: SamicNet,
    refs: list[View],
    targets: list[View],
    batch: list[tuple[int, int, int]],
    weights: LossWeights,
) -> tuple[torch.Tensor, dict[str, float]]:
    """The saliency loss of predicting each target view of ``batch`` from its reference."""
    ref_feats = stack_features([refs[r].feats for r, _, _ in batch])
    tgt_feats = stack_features([targets[t].feats for _, t, _ in batch])
    ref_heat = torch.stack([refs[r].heats[k] for r, _, k in batch])
    tgt_heat = torch.stack([targets[t].heats[k] for _, t, k in batch])
    tgt_fix = torch.stack([targets[t].fixations[k] for _, t, k in batch])
    pred = torch.sigmoid(net.predict(ref_feats, ref_heat, tgt_feats))
    return saliency_loss(pred, tgt_heat, tgt_fix, weights)


def draw_views(
    rng: np.random.Generator, rgb: np.ndarray, ids: np.ndarray, count: int, augment: AugmentConfig
) -> list[tuple[Geometry, list[float] | None]]:
    """``count`` training views and, last, one more (held out): geometry and colour factors.
    View 0 is the frame as is; the others keep every object's interior point in the crop."""
    size = (rgb.shape[0], rgb.shape[1])
    anchors = interior_points((ids != 0) & (ids != VOID_ID), max_points=64)
    spans = (augment.brightness, augment.contrast, augment.saturation)
    views: list[tuple[Geometry, list[float] | None]] = [(identity_geometry(size), None)]
    for _ in range(count):
        geometry = draw_geometry(rng, size, anchors, augment)
        views.append((geometry, [rng.uniform(1.0 - v, 1.0 + v) for v in spans]))
    return views


def make_view(
    net: SamicNet,
    rgb: np.ndarray,
    ids: np.ndarray,
    present: list[int],
    geometry: Geometry,
    factors: list[float] | None,
    points_per_object: int,
    heat_sigma: float,
    device: torch.device,
) -> View:
    """The view of frame ``rgb`` (ids ``ids``) through ``geometry`` and colour ``factors``."""
    image = geometry.image(rgb)
    if factors is not None:
        image = jitter_colours(image, factors)
    view_ids = geometry.image(ids)
    size = (view_ids.shape[0], view_ids.shape[1])
    input_size = net.config.input_size
    with torch.no_grad():
        feats = net.extract_features(preprocess(image, input_size, net.config.resize).to(device))
    heats: dict[int, torch.Tensor] = {}
    fixations: dict[int, torch.Tensor] = {}
    for obj_id in present:
        points = interior_points(view_ids == obj_id, points_per_object)
        if len(points) == 0:
            continue  # the object is cropped out of this view
        heat = points_to_heatmap(points, size, input_size, heat_sigma)
        heats[obj_id] = torch.from_numpy(heat)[None].to(device)
        fixations[obj_id] = torch.from_numpy(fixation_map(points, size, input_size))[None].to(
            device
        )
    return View(feats, heats, fixations)


def stack_features(feature_lists: list[list[torch.Tensor]]) -> list[torch.Tensor]:
    """Per level, the batch-1 feature maps of several views concatenated along the batch."""
    return [torch.cat(level) for level in zip(*feature_lists, strict=True)]
