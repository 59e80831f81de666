"""The SAM segmenter: points → masks with Meta's ``segment-anything``.

:meth:`SamSegmenter.set_frame` runs SAM's image encoder once per frame (the dominant cost,
timed on its own by the benchmark; which encoder runs, and how, is chosen by
:func:`samic_vos.sam.encoder.build_image_encoder`); :meth:`SamSegmenter.segment` then
decodes any number of point groups against that one embedding, for every object of the frame.
:meth:`SamSegmenter.prompt` takes every kind of SAM prompt (positive and negative points, a box,
the previous low-resolution logits as ``mask_input``). :meth:`SamSegmenter.embed` and
:meth:`SamSegmenter.set_embedding` split ``set_frame`` so that an embedding can be computed
elsewhere (a background thread) or loaded from a cache.

Coordinates: points are float (x, y) = (col, row) in original image pixels (x right, y down,
pixel centres at integers), as in ``SamPredictor.predict``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np
import torch
from segment_anything.utils.transforms import ResizeLongestSide

from samic_vos.prompts.mask_points import (
    DEFAULT_MIN_AREA,
    MAX_POINTS_PER_OBJECT,
    interior_points,
    largest_error_point,
)
from samic_vos.runtime.stage_threads import StageThreads
from samic_vos.sam.decoder_reuse import reuse_image_projections
from samic_vos.sam.encoder import EncoderConfig, SamImageEncoder, build_image_encoder
from samic_vos.sam.guidance import DecoderGuidance, guided_decoding

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


@dataclass(frozen=True)
class ImageEmbedding:
    """SAM's image embedding of one image.

    Attributes:
        features: (1, C, h, w) float32, the image encoder's output (C = 256, h = w = 64 for the
            official models).
        input_size: (rows, cols) of the image once resized for the encoder (longest side =
            the encoder's input side), before padding.
        original_size: (H, W) of the image.
        extras: the other image features a family's mask decoder reads (empty for SAM and
            MedSAM; HQ-SAM: the (1, h, w, C_vit) ViT features after its first global block;
            SAM 2.1: its (1, C0, 4h, 4w) and (1, C1, 2h, 2w) high-resolution features).
    """

    features: torch.Tensor
    input_size: tuple[int, int]
    original_size: tuple[int, int]
    extras: tuple[torch.Tensor, ...] = ()


@dataclass
class PromptResult:
    """SAM's answer to one prompt.

    Attributes:
        mask: (H, W) bool, ``logits > 0``.
        logits: (H, W) float32 mask logits at the image's resolution.
        low_res_logits: (4h, 4w) float32 logits as SAM's decoder gives them, h × w being the
            embedding's grid ((256, 256) for the official models; padded like the encoder's
            square input): pass them back as ``mask_input`` to refine.
        iou: SAM's predicted IoU of the mask (it can exceed 1).
    """

    mask: np.ndarray
    logits: np.ndarray
    low_res_logits: np.ndarray
    iou: float


class SamSegmenter:
    """SAM on one frame at a time: an image embedding per frame, shared by all prompts.

    Args:
        sam: a SAM model (see :mod:`samic_vos.sam.models`); moved to ``device``, eval mode.
        device: where SAM runs.
        encoder: how SAM's image encoder runs (implementation, precision, compile; default
            ``EncoderConfig()``). The prompt encoder and mask decoder always run in float32.
        threads: torch threads per stage of the pipeline this segmenter serves (default: all
            ``auto``); the encoder runs under ``encoder``'s count, the prompt decoding under
            ``decoder``'s, and prompters run their own stages under theirs.
    """

    family = "sam"

    def __init__(
        self,
        sam: torch.nn.Module,
        device: torch.device | str,
        encoder: EncoderConfig | None = None,
        threads: StageThreads | None = None,
    ) -> None:
        self.device = torch.device(device)
        self.threads = threads or StageThreads.resolve()
        self.sam = sam.to(self.device).eval()
        self.encoder = self._build_encoder(encoder or EncoderConfig())
        self.mask_threshold = 0.0
        # Prompts on one image share the decoder's image-only first projections (exact).
        self.decoder_reuse = (
            reuse_image_projections(self.sam) if hasattr(self.sam, "mask_decoder") else None
        )
        # The name in samic_vos.sam.names.SAM_MODELS it was loaded as (None: built by hand).
        self.model_name: str | None = None
        self._current: ImageEmbedding | None = None
        self._frame_size: tuple[int, int] | None = None
        # SAM's dense positional encoding of the embedding grid: constant for a model, and
        # costing about as much as the prompt encoder, so computed once.
        self._image_pe: torch.Tensor | None = None

    # --- what differs between model families (overridden in samic_vos.sam.families) -------

    def _build_encoder(self, config: EncoderConfig) -> SamImageEncoder:
        """The image encoder this family runs (SAM: ours, :func:`build_image_encoder`)."""
        self.transform = ResizeLongestSide(self.sam.image_encoder.img_size)
        return build_image_encoder(self.sam, config, self.device)

    def _resized(self, rgb: np.ndarray) -> torch.Tensor:
        """(H, W, 3) uint8 → (1, 3, h, w) uint8 on the device, the longest side resized to the
        encoder's input side (SAM's ``ResizeLongestSide``); ``sam.preprocess`` normalises and
        pads it."""
        resized = self.transform.apply_image(rgb)
        return torch.as_tensor(resized, device=self.device).permute(2, 0, 1).contiguous()[None]

    def _encode(self, rgb: np.ndarray) -> ImageEmbedding:
        """SAM's pre-processing (resize the longest side, normalise, pad) and encoder."""
        pixels = self._resized(rgb)
        features = self.encoder(self.sam.preprocess(pixels))  # float32, whatever precision
        return ImageEmbedding(
            features=features,
            input_size=(int(pixels.shape[-2]), int(pixels.shape[-1])),
            original_size=(int(rgb.shape[0]), int(rgb.shape[1])),
        )

    def _to_input_frame(self, xy: np.ndarray) -> np.ndarray:
        """(..., 2) (x, y) image pixels → the encoder input's pixel frame."""
        return self.transform.apply_coords(xy, self._current.original_size)  # type: ignore[union-attr]

    def _prompt_embeddings(
        self,
        points: tuple[torch.Tensor, torch.Tensor] | None,
        boxes: torch.Tensor | None,
        masks: torch.Tensor | None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        return self.sam.prompt_encoder(points=points, boxes=boxes, masks=masks)

    def _mask_decoder(
        self, sparse: torch.Tensor, dense: torch.Tensor, multimask: bool
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, C, 4h, 4w) low-resolution logits and (B, C) predicted IoU."""
        if self._image_pe is None:
            self._image_pe = self.sam.prompt_encoder.get_dense_pe()
        return self.sam.mask_decoder(
            image_embeddings=self._current.features,  # type: ignore[union-attr]
            image_pe=self._image_pe,
            sparse_prompt_embeddings=sparse,
            dense_prompt_embeddings=dense,
            multimask_output=multimask,
        )

    def _decoder_transformer(self) -> torch.nn.Module:
        """The mask decoder's two-way transformer (where PerSAM's guidance goes)."""
        return self.sam.mask_decoder.transformer

    def upscale(self, low_res: torch.Tensor, embedding: ImageEmbedding) -> torch.Tensor:
        """(B, C, 4h, 4w) low-resolution maps → (B, C, H, W) at ``embedding``'s image size
        (SAM: unpadded, resized; what the family's own predictor does)."""
        return self.sam.postprocess_masks(low_res, embedding.input_size, embedding.original_size)

    def mask_as_image(self, mask: np.ndarray, value: int) -> torch.Tensor:
        """(S, S) float32 on the device: the (H, W) bool ``mask`` read as PerSAM reads a
        reference mask: painted with ``value`` (1–255) in the red channel of an RGB image and
        pre-processed as the image is (SAM: resized by the longest side, normalised by SAM's
        pixel mean and std, padded with 0), red channel kept. > 0 where the mask's value beats
        the red pixel mean (so, near the mask's edge, where enough of it is around)."""
        image = np.zeros((*mask.shape, 3), np.uint8)
        image[..., 0] = np.where(mask, value, 0)
        return self.sam.preprocess(self._resized(image))[0, 0]

    # --- the same for every family ---------------------------------------------------------

    def set_frame(self, rgb: np.ndarray) -> None:
        """Compute the image embedding of ``rgb``, a (H, W, 3) uint8 RGB frame, and use it."""
        self.set_embedding(self.embed(rgb))

    def embed(self, rgb: np.ndarray) -> ImageEmbedding:
        """The image embedding of ``rgb``, a (H, W, 3) uint8 RGB image (the current frame is
        left as it is, so this may run in another thread than the decoding)."""
        if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
            raise ValueError(f"expected an (H, W, 3) uint8 RGB frame, got {rgb.shape} {rgb.dtype}")
        with torch.inference_mode(), self.threads.stage("encoder"):
            return self._encode(rgb)

    @property
    def embedding(self) -> ImageEmbedding:
        """The current frame's embedding (what :meth:`set_frame` computed)."""
        if self._current is None:
            raise RuntimeError("call set_frame() before reading the embedding")
        return self._current

    def set_embedding(self, embedding: ImageEmbedding) -> None:
        """Decode the following prompts against ``embedding`` (from :meth:`embed`)."""
        self._current = ImageEmbedding(
            features=embedding.features.to(self.device, torch.float32),
            input_size=tuple(embedding.input_size),  # type: ignore[arg-type]
            original_size=tuple(embedding.original_size),  # type: ignore[arg-type]
            extras=tuple(t.to(self.device, torch.float32) for t in embedding.extras),
        )
        self._frame_size = self._current.original_size

    def segment(self, groups: Sequence[np.ndarray]) -> Segmentation:
        """Mask of one object from groups of positive points on the current frame.

        Each group, an (N_i, 2) float array of (x, y) pixel coordinates, is prompted on its
        own: one point → SAM's three masks, the one with the best predicted IoU is kept;
        several points → SAM's single mask. The object's mask is the union of the groups'.
        Groups with the same number of points are decoded in one batch.
        """
        return self._segment(groups)[0]

    def segment_instances(self, groups: Sequence[np.ndarray]) -> tuple[Segmentation, np.ndarray]:
        """:meth:`segment`, and each group's own mask logits: (G, H, W) float32, one per
        non-empty group in order (its mask is ``logits > 0``; (0, H, W) without a group)."""
        segmentation, logits = self._segment(groups)
        return segmentation, logits.float().cpu().numpy()

    @torch.inference_mode()
    def _segment(self, groups: Sequence[np.ndarray]) -> tuple[Segmentation, torch.Tensor]:
        """:meth:`segment` and the (G, H, W) per-group logits on the device."""
        if self._frame_size is None:
            raise RuntimeError("call set_frame() before segment()")
        height, width = self._frame_size
        groups = [np.asarray(g, dtype=np.float32).reshape(-1, 2) for g in groups]
        groups = [g for g in groups if len(g)]
        logits = torch.empty((len(groups), height, width), device=self.device)
        if not groups:
            empty = Segmentation(
                mask=np.zeros((height, width), dtype=bool),
                logits=np.full((height, width), NO_OBJECT_LOGIT, dtype=np.float32),
                confidence=0.0,
                group_scores=[],
            )
            return empty, logits
        scores = torch.empty(len(groups), device=self.device)
        by_size: dict[int, list[int]] = {}
        for index, group in enumerate(groups):
            by_size.setdefault(len(group), []).append(index)
        for indexes in by_size.values():
            points = np.stack([groups[i] for i in indexes])
            labels = np.ones(points.shape[:2], dtype=np.int64)
            batch_logits, batch_scores, _ = self._decode(
                points, labels, multimask=len(points[0]) == 1
            )
            logits[indexes] = batch_logits[:, 0]
            scores[indexes] = batch_scores[:, 0]
        group_masks = logits > self.mask_threshold
        union_logits = logits.amax(dim=0)
        areas = group_masks.flatten(1).sum(dim=1)
        scores = scores.clamp(0.0, 1.0)
        confidence = weighted_confidence(scores.cpu().numpy(), areas.cpu().numpy())
        union_logits = union_logits.float().cpu().numpy()
        segmentation = Segmentation(
            mask=union_logits > self.mask_threshold,
            logits=union_logits,
            confidence=confidence,
            group_scores=[float(s) for s in scores.cpu()],
        )
        return segmentation, logits

    @torch.inference_mode()
    def prompt(
        self,
        points: np.ndarray | None = None,
        labels: np.ndarray | None = None,
        box: np.ndarray | None = None,
        mask_input: np.ndarray | None = None,
        multimask: bool | None = None,
        guidance: DecoderGuidance | None = None,
    ) -> PromptResult:
        """One SAM prompt of any kind on the current frame.

        Args:
            points: (N, 2) float (x, y) pixel coordinates, or ``None``.
            labels: (N,) int, 1 for a positive point, 0 for a negative one (default: all 1).
            box: (4,) float (x0, y0, x1, y1) pixel coordinates, or ``None``.
            mask_input: (4h, 4w) float32 low-resolution logits of an earlier
                :class:`PromptResult` (refinement), or ``None``.
            multimask: SAM's three masks, the best predicted IoU kept. Default: only for a lone
                point (one point, no box, no mask input), where SAM's single mask is ambiguous.
            guidance: PerSAM's decoder guidance (:mod:`samic_vos.sam.guidance`), or ``None``.

        At least one point or a box is needed.
        """
        return self._prompt(points, labels, box, mask_input, multimask, guidance, every=False)[0]

    @torch.inference_mode()
    def prompt_all_masks(
        self,
        points: np.ndarray | None = None,
        labels: np.ndarray | None = None,
        box: np.ndarray | None = None,
        mask_input: np.ndarray | None = None,
    ) -> list[PromptResult]:
        """SAM's three masks (multimask output) for one prompt of :meth:`prompt`'s kinds, in
        SAM's order (HQ-SAM's decoder keeps one of them itself: a list of one)."""
        return self._prompt(points, labels, box, mask_input, True, None, every=True)

    def _prompt(
        self,
        points: np.ndarray | None,
        labels: np.ndarray | None,
        box: np.ndarray | None,
        mask_input: np.ndarray | None,
        multimask: bool | None,
        guidance: DecoderGuidance | None,
        *,
        every: bool,
    ) -> list[PromptResult]:
        if self._frame_size is None:
            raise RuntimeError("call set_frame() before prompt()")
        coords = None if points is None else np.asarray(points, dtype=np.float32).reshape(1, -1, 2)
        if coords is not None and coords.shape[1] == 0:
            coords = None
        if coords is None and box is None:
            raise ValueError("a SAM prompt needs at least one point or a box")
        if coords is not None:
            labels = np.ones(coords.shape[1]) if labels is None else np.asarray(labels)
            labels = labels.reshape(1, -1)
        boxes = None if box is None else np.asarray(box, dtype=np.float32).reshape(1, 4)
        masks = None if mask_input is None else np.asarray(mask_input, np.float32)[None, None]
        if multimask is None:
            multimask = coords is not None and coords.shape[1] == 1 and box is None
            multimask = multimask and mask_input is None
        logits, iou, low_res = self._decode(
            coords, labels, boxes, masks, multimask=multimask, guidance=guidance, every=every
        )
        results = []
        for index in range(logits.shape[1]):
            full = logits[0, index].float().cpu().numpy()
            results.append(
                PromptResult(
                    mask=full > self.mask_threshold,
                    logits=full,
                    low_res_logits=low_res[0, index].float().cpu().numpy(),
                    iou=float(iou[0, index]),
                )
            )
        return results

    def _decode(
        self,
        points: np.ndarray | None,
        labels: np.ndarray | None,
        boxes: np.ndarray | None = None,
        masks: np.ndarray | None = None,
        *,
        multimask: bool,
        guidance: DecoderGuidance | None = None,
        every: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Decode a batch of B prompts: points (B, N, 2) with labels (B, N), boxes (B, 4),
        low-res masks (B, 1, 4h, 4w), each optional → full-size logits (B, M, H, W), IoU (B, M),
        low-res logits (B, M, 4h, 4w): M = 1, with ``multimask`` the best of SAM's three masks,
        unless ``every`` keeps all three (M = 3)."""
        with self.threads.stage("decoder"):
            return self._decode_batch(points, labels, boxes, masks, multimask, guidance, every)

    def _decode_batch(
        self,
        points: np.ndarray | None,
        labels: np.ndarray | None,
        boxes: np.ndarray | None,
        masks: np.ndarray | None,
        multimask: bool,
        guidance: DecoderGuidance | None,
        every: bool,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        point_prompt = None
        if points is not None:
            point_prompt = (
                torch.as_tensor(
                    self._to_input_frame(points), dtype=torch.float32, device=self.device
                ),
                torch.as_tensor(labels, dtype=torch.int, device=self.device),
            )
        box_t = None
        if boxes is not None:
            corners = self._to_input_frame(np.asarray(boxes, np.float32).reshape(-1, 2, 2))
            box_t = torch.as_tensor(corners.reshape(-1, 4), dtype=torch.float32, device=self.device)
        mask_t = None if masks is None else torch.as_tensor(masks, device=self.device)
        sparse, dense = self._prompt_embeddings(point_prompt, box_t, mask_t)
        with guided_decoding(self._decoder_transformer(), guidance):
            low_res, iou = self._mask_decoder(sparse, dense, multimask)
        if not every:
            best = iou.argmax(dim=1)  # single-mask output: C == 1, so best == 0
            rows = torch.arange(low_res.shape[0], device=self.device)
            low_res, iou = low_res[rows, best][:, None], iou[rows, best][:, None]
        # Upscale only the kept masks (the predictors upscale all three).
        full = self.upscale(low_res, self._current)  # type: ignore[arg-type]
        return full, iou, low_res


def weighted_confidence(scores: np.ndarray, areas: np.ndarray) -> float:
    """The mean of (K,) ``scores`` weighted by the (K,) ``areas`` of their masks (the plain mean
    when every area is 0; 0 for K = 0): one confidence for masks that are unioned."""
    scores = np.asarray(scores, dtype=np.float64)
    weights = np.asarray(areas, dtype=np.float64)
    if len(scores) == 0:
        return 0.0
    if weights.sum() <= 0:
        weights = np.ones_like(scores)
    return float((scores * weights).sum() / weights.sum())


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


def mask_iou(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over union of two (H, W) bool masks (1.0 when both are empty)."""
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
    :func:`samic_vos.prompts.mask_points.interior_points`), then repeatedly adds the interior point
    of the largest part of ``mask`` that SAM's mask misses, until SAM's mask reaches IoU
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
    best_iou = mask_iou(best.mask, mask)
    while best_iou < target_iou and len(points) < max_points:
        missed = largest_error_point(mask, best.mask)
        if missed is None:
            break
        candidate = np.vstack([points, np.array([missed], dtype=np.float32)])
        segmentation = segmenter.segment(group_points_by_component(candidate, mask))
        iou = mask_iou(segmentation.mask, mask)
        if iou <= best_iou:
            break
        points, best, best_iou = candidate, segmentation, iou
    return points, best
