"""The SAM segmenter: points → masks with Meta's ``segment-anything``.

:meth:`SamSegmenter.set_frame` runs SAM's image encoder once per frame (the dominant cost,
timed on its own by the benchmark); :meth:`SamSegmenter.segment` then decodes any number of
point groups against that one embedding, for every object of the frame.

Coordinates: points are float (x, y) = (col, row) in original image pixels (x right, y down,
pixel centres at integers), as in ``SamPredictor.predict``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np
import torch
from segment_anything import SamPredictor
from segment_anything.modeling import Sam

from samic_vos.devices import amp_supported, autocast_context
from samic_vos.errors import UserError
from samic_vos.mask_points import (
    DEFAULT_MIN_AREA,
    MAX_POINTS_PER_OBJECT,
    interior_points,
    largest_error_point,
)

# Logit of a pixel no group covers (an object with no prompt): far below any SAM logit, yet
# finite so that differences and softmaxes over objects stay NaN-free.
NO_OBJECT_LOGIT = -1.0e4


@dataclass
class Segmentation:
    """One object's mask in one frame.

    Attributes:
        mask: (H, W) bool, the union of the groups' masks; equals ``logits > 0``.
        logits: (H, W) float32, per pixel the maximum of the groups' SAM mask logits
            (:data:`NO_OBJECT_LOGIT` everywhere when there is no group); overlaps between
            objects are resolved by comparing these.
        confidence: in [0, 1], the mean of ``group_scores`` weighted by the area of each
            group's mask (plain mean if every group's mask is empty; 0 with no group).
        group_scores: per group, SAM's predicted IoU of its mask clipped to [0, 1] (SAM's
            prediction can exceed 1).
    """

    mask: np.ndarray
    logits: np.ndarray
    confidence: float
    group_scores: list[float]


class SamSegmenter:
    """SAM on one frame at a time: an image embedding per frame, shared by all prompts.

    Args:
        sam: a SAM model (see :mod:`samic_vos.sam_models`); moved to ``device``, eval mode.
        device: where SAM runs.
        amp: bfloat16 autocast around the image encoder. ``None``: on where supported (CUDA
            with bfloat16); ``True``: required (``UserError`` if ``device`` lacks it);
            ``False``: float32 everywhere. The prompt decoder always runs in float32.
    """

    def __init__(self, sam: Sam, device: torch.device | str, *, amp: bool | None = None) -> None:
        self.device = torch.device(device)
        supported = amp_supported(self.device)
        if amp and not supported:
            raise UserError(
                f"mixed precision needs a CUDA device with bfloat16 support, not {self.device}; "
                "run without it"
            )
        self.amp = supported if amp is None else amp
        self.sam = sam.to(self.device).eval()
        self._predictor = SamPredictor(self.sam)
        self._frame_size: tuple[int, int] | None = None

    def set_frame(self, rgb: np.ndarray) -> None:
        """Compute the image embedding of ``rgb``, a (H, W, 3) uint8 RGB frame."""
        if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
            raise ValueError(f"expected an (H, W, 3) uint8 RGB frame, got {rgb.shape} {rgb.dtype}")
        context = autocast_context(self.device) if self.amp else contextlib.nullcontext()
        with torch.inference_mode(), context:
            self._predictor.set_image(rgb, image_format="RGB")
            # The decoder runs in float32, whatever precision the encoder gave.
            self._predictor.features = self._predictor.features.float()
        self._frame_size = (rgb.shape[0], rgb.shape[1])

    @torch.inference_mode()
    def segment(self, groups: Sequence[np.ndarray]) -> Segmentation:
        """Mask of one object from groups of positive points on the current frame.

        Each group, an (N_i, 2) float array of (x, y) pixel coordinates, is prompted on its
        own: one point → SAM's three masks, the one with the best predicted IoU is kept;
        several points → SAM's single mask. The object's mask is the union of the groups'.
        Groups with the same number of points are decoded in one batch.
        """
        if self._frame_size is None:
            raise RuntimeError("call set_frame() before segment()")
        height, width = self._frame_size
        groups = [np.asarray(g, dtype=np.float32).reshape(-1, 2) for g in groups]
        groups = [g for g in groups if len(g)]
        if not groups:
            return Segmentation(
                mask=np.zeros((height, width), dtype=bool),
                logits=np.full((height, width), NO_OBJECT_LOGIT, dtype=np.float32),
                confidence=0.0,
                group_scores=[],
            )
        logits = torch.empty((len(groups), height, width), device=self.device)
        scores = torch.empty(len(groups), device=self.device)
        by_size: dict[int, list[int]] = {}
        for index, group in enumerate(groups):
            by_size.setdefault(len(group), []).append(index)
        for indexes in by_size.values():
            batch_logits, batch_scores = self._decode(np.stack([groups[i] for i in indexes]))
            logits[indexes] = batch_logits
            scores[indexes] = batch_scores
        group_masks = logits > self.sam.mask_threshold
        union_logits = logits.amax(dim=0)
        areas = group_masks.flatten(1).sum(dim=1).float()
        scores = scores.clamp(0.0, 1.0)
        weights = areas if areas.sum() > 0 else torch.ones_like(areas)
        confidence = float((scores * weights).sum() / weights.sum())
        union_logits = union_logits.float().cpu().numpy()
        return Segmentation(
            mask=union_logits > self.sam.mask_threshold,
            logits=union_logits,
            confidence=confidence,
            group_scores=[float(s) for s in scores.cpu()],
        )

    def _decode(self, points: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """Decode a batch of B groups of N points (B, N, 2) → logits (B, H, W), IoU (B,)."""
        predictor = self._predictor
        batch, count = points.shape[:2]
        coords = predictor.transform.apply_coords(points, predictor.original_size)
        coords_t = torch.as_tensor(coords, dtype=torch.float32, device=self.device)
        labels_t = torch.ones((batch, count), dtype=torch.int, device=self.device)
        sparse, dense = self.sam.prompt_encoder(points=(coords_t, labels_t), boxes=None, masks=None)
        low_res, iou = self.sam.mask_decoder(
            image_embeddings=predictor.features,
            image_pe=self.sam.prompt_encoder.get_dense_pe(),
            sparse_prompt_embeddings=sparse,
            dense_prompt_embeddings=dense,
            multimask_output=count == 1,
        )
        best = iou.argmax(dim=1)  # single-mask output: C == 1, so best == 0
        rows = torch.arange(batch, device=self.device)
        low_res, iou = low_res[rows, best][:, None], iou[rows, best]
        # Upscale only the kept mask of each group (SamPredictor upscales all three).
        full = self.sam.postprocess_masks(low_res, predictor.input_size, predictor.original_size)
        return full[:, 0], iou


def group_points_by_component(points: np.ndarray, mask: np.ndarray) -> list[np.ndarray]:
    """Split (N, 2) (x, y) ``points`` into groups, one per 8-connected component of ``mask``.

    Groups keep the points' order and are ordered by their first point; a point outside
    ``mask`` forms a group of its own.
    """
    _, labels = cv2.connectedComponents(mask.astype(np.uint8), connectivity=8)
    groups: dict[int, list[np.ndarray]] = {}
    for index, point in enumerate(np.asarray(points, dtype=np.float32).reshape(-1, 2)):
        label = int(labels[int(round(point[1])), int(round(point[0]))])
        groups.setdefault(label if label > 0 else -1 - index, []).append(point)
    return [np.stack(group) for group in groups.values()]


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else 1.0


def prompts_from_mask(
    segmenter: SamSegmenter,
    mask: np.ndarray,
    *,
    max_points: int = MAX_POINTS_PER_OBJECT,
    target_iou: float = 0.9,
    min_area: int = DEFAULT_MIN_AREA,
) -> tuple[np.ndarray, Segmentation]:
    """Frame-0 prompts: positive points added until SAM reproduces ``mask``, as SAMBOX users do.

    Starts from one interior point per connected component of ``mask`` (components under
    ``min_area`` pixels skipped, largest first, at most ``max_points``; see
    :func:`samic_vos.mask_points.interior_points`), then repeatedly adds the interior point of
    the largest part of ``mask`` that SAM's mask misses, until SAM's mask reaches IoU
    ``target_iou`` with ``mask``, ``max_points`` points are used, nothing is missed, or an
    added point does not raise the IoU (that point is dropped). Points are prompted in one
    group per connected component of ``mask`` (:func:`group_points_by_component`), so a
    component's points give one single-mask SAM prompt, as a person clicking it would.
    :meth:`SamSegmenter.set_frame` must have been called with the frame of ``mask``.

    Args:
        segmenter: the segmenter, its frame set.
        mask: (H, W) bool mask of one object.

    Returns:
        ``(points, segmentation)``: (N, 2) float32 (x, y) points inside ``mask``
        (N <= max_points; (0, 2) for an empty mask) and SAM's segmentation from them.
    """
    mask = np.asarray(mask, dtype=bool)
    points = interior_points(mask, max_points, min_area)
    best = segmenter.segment(group_points_by_component(points, mask))
    best_iou = _iou(best.mask, mask)
    while best_iou < target_iou and len(points) < max_points:
        missed = largest_error_point(mask, best.mask)
        if missed is None:
            break
        candidate = np.vstack([points, np.array([missed], dtype=np.float32)])
        segmentation = segmenter.segment(group_points_by_component(candidate, mask))
        iou = _iou(segmentation.mask, mask)
        if iou <= best_iou:
            break
        points, best, best_iou = candidate, segmentation, iou
    return points, best
