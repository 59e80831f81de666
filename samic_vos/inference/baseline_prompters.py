"""Training-free prompters to set SAMIC beside: the previous mask's points, and PerSAM.

Both keep, per object, its mask on the last frame where it was found (the frame's written id
map, so a resumed run rebuilds it exactly from the PNG): an object that is lost keeps its last
good mask, for recovery.

- :class:`PreviousMaskPrompter` (``previous-mask``): the interior points of that mask, one per
  connected component (as the first frame's mask is prompted), one SAM prompt per component.
- :class:`PerSamPrompter` (``persam``): PerSAM's training-free video recipe, step for step as
  its ``persam_video.py`` runs it (its defaults: ``--topk 2 --exp 215 --threshold 10``, box
  prompt, centre point, "largest" first mask), on the stock decoder. The object's *target
  feature*: the SAM features under its mask on the frame where it was given, read as PerSAM
  reads it (:func:`persam_features`, the mask painted with :data:`VIDEO_MASK_VALUE`), pooled as
  ½·max + ½·mean, L2-normalised. On frame t: cosine similarity with every embedding position,
  upsampled to the frame (×4 bilinear, then SAM's own postprocessing); the 2 most similar
  pixels and the centre of the previous mask's box grown by 10 px are positive points (no
  negative point); then three SAM calls: (1) the points and that grown box, SAM's three masks,
  of which PerSAM keeps the "largest" as its script computes it (areas cast to uint8, i.e.
  compared modulo 256); (2) the points + (1)'s low-res logits as ``mask_input``, three masks,
  the best by predicted IoU; (3) the points + the box of (2)'s mask + (2)'s logits, three
  masks, the best by predicted IoU is the object's mask. Objects are combined by the highest
  logit with 0 as the background (the tracker's rule), i.e. argmax over a background channel,
  as PerSAM does. Where PerSAM's script would fail or mislabel, ours goes on: an object that
  is lost keeps its last mask (PerSAM drops its box and shifts the later objects' boxes), an
  empty mask (2) keeps the grown box, and a reference mask too small for the embedding grid
  uses the feature at its strongest position (PerSAM's mean of nothing is NaN).
- :class:`PerSamImagePrompter` (``persam``, images): PerSAM's image recipe (``persam.py``).

Steps shared by the recipes: :func:`persam_features`, :func:`persam_similarity`,
:func:`similarity_points` and :func:`persam_refine` (PerSAM's two cascaded refinements).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from samic_vos.data.mask_io import object_ids
from samic_vos.inference.prompter import (
    ClassFound,
    ClassResult,
    Reference,
    RestoredFrame,
    Tracked,
    reference_embedding,
)
from samic_vos.prompts.mask_points import DEFAULT_MIN_AREA, MAX_POINTS_PER_OBJECT, interior_points
from samic_vos.sam.guidance import DecoderGuidance
from samic_vos.sam.segmenter import (
    ImageEmbedding,
    PromptResult,
    SamSegmenter,
    Segmentation,
    group_points_by_component,
)

BOX_MARGIN = 10  # PerSAM's video recipe grows the previous box by 10 px (--threshold)
PERSAM_TOP_POSITIVES = 2  # positive points from the similarity map (video recipe, --topk)
PERSAM_IMAGE_POSITIVES = 1  # PerSAM's image recipe: the one most similar pixel (top-1)
# PerSAM reads a reference mask as an RGB image and keeps the embedding positions where its
# red channel, after SAM's pixel normalisation, is > 0: the value of the mask's pixels sets how
# far inside the mask a position must be. persam_video.py paints masks with 215 (--exp);
# persam.py reads PerSeg's palette PNGs with OpenCV, whose object is RGB (128, 0, 0).
VIDEO_MASK_VALUE = 215
IMAGE_MASK_VALUE = 128


class _MaskMemory:
    """Each object's mask on the last frame where it was found (the written id map)."""

    def __init__(self) -> None:
        self.masks: dict[int, np.ndarray] = {}

    def update(self, ids: np.ndarray, tracked: dict[int, Tracked]) -> None:
        """Keep each followed object's new mask where it is not empty; mark it found there."""
        for obj_id, result in tracked.items():
            mask = ids == obj_id
            if mask.any():
                self.masks[obj_id] = mask
                result.reference = list(range(len(result.points)))
            else:
                result.reference = []

    def restore(self, obj_id: int, given: RestoredFrame, last: RestoredFrame | None) -> None:
        frame = given if last is None else last
        self.masks[obj_id] = frame.ids == obj_id


class PreviousMaskPrompter:
    """Prompts each object with the interior points of its previous mask."""

    name = "previous-mask"

    def __init__(self, segmenter: SamSegmenter, max_points: int = MAX_POINTS_PER_OBJECT) -> None:
        self.segmenter = segmenter
        self.max_points = max_points
        self.memory = _MaskMemory()

    def new_frame(self, rgb: np.ndarray) -> None:
        pass

    def given(self, obj_id: int, mask: np.ndarray, points: np.ndarray) -> None:
        self.memory.masks[obj_id] = mask

    def track(self, obj_ids: list[int]) -> dict[int, Tracked]:
        out = {}
        for obj_id in obj_ids:
            previous = self.memory.masks[obj_id]
            points = interior_points(previous, self.max_points, DEFAULT_MIN_AREA)
            segmentation = self.segmenter.segment(group_points_by_component(points, previous))
            out[obj_id] = Tracked(points, [1.0] * len(points), segmentation, reference=[])
        return out

    def end_frame(self, ids: np.ndarray, tracked: dict[int, Tracked]) -> None:
        self.memory.update(ids, tracked)

    def restore(self, obj_id: int, given: RestoredFrame, last: RestoredFrame | None) -> None:
        self.memory.restore(obj_id, given, last)


def _box(mask: np.ndarray) -> np.ndarray | None:
    """(4,) float32 (x0, y0, x1, y1) box of ``mask``'s pixels (pixel indexes), or ``None``."""
    rows, cols = np.nonzero(mask)
    if len(rows) == 0:
        return None
    return np.array([cols.min(), rows.min(), cols.max(), rows.max()], dtype=np.float32)


def _grown_box(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """PerSAM's video box (``get_box_prompt``): ``mask``'s box grown by :data:`BOX_MARGIN`,
    clipped to [0, W] × [0, H], as (4,) float32 (x0, y0, x1, y1), and its centre rounded down,
    (1, 2) float32 (x, y); ``None`` for an empty mask."""
    box = _box(mask)
    if box is None:
        return None
    height, width = mask.shape
    x0, y0, x1, y1 = (int(v) for v in box)
    x0, y0 = max(x0 - BOX_MARGIN, 0), max(y0 - BOX_MARGIN, 0)
    x1, y1 = min(x1 + BOX_MARGIN, width), min(y1 + BOX_MARGIN, height)
    centre = np.array([[(x0 + x1) // 2, (y0 + y1) // 2]], dtype=np.float32)
    return np.array([x0, y0, x1, y1], dtype=np.float32), centre


class PerSamPrompter:
    """PerSAM's training-free video recipe (module docstring)."""

    name = "persam"

    def __init__(self, segmenter: SamSegmenter) -> None:
        self.segmenter = segmenter
        self.targets: dict[int, torch.Tensor] = {}  # object → (C,) unit target feature
        self.memory = _MaskMemory()

    def new_frame(self, rgb: np.ndarray) -> None:
        pass

    def given(self, obj_id: int, mask: np.ndarray, points: np.ndarray) -> None:
        self.targets[obj_id] = self._target_feature(mask)
        self.memory.masks[obj_id] = mask

    def restore(self, obj_id: int, given: RestoredFrame, last: RestoredFrame | None) -> None:
        self.segmenter.set_frame(given.rgb)  # the target feature needs that frame's embedding
        self.targets[obj_id] = self._target_feature(given.ids == obj_id)
        self.memory.restore(obj_id, given, last)

    def end_frame(self, ids: np.ndarray, tracked: dict[int, Tracked]) -> None:
        self.memory.update(ids, tracked)

    def _target_feature(self, mask: np.ndarray) -> torch.Tensor:
        feats = persam_features(self.segmenter, self.segmenter.embedding, mask, VIDEO_MASK_VALUE)
        target = feats.max(dim=0).values / 2 + feats.mean(dim=0) / 2
        return target / target.norm()

    def similarity(self, obj_id: int) -> torch.Tensor:
        """(H, W) float32 cosine similarity of the current frame with the object's target."""
        return persam_similarity(self.segmenter, self.segmenter.embedding, self.targets[obj_id])

    def track(self, obj_ids: list[int]) -> dict[int, Tracked]:
        return {obj_id: self._track_one(obj_id) for obj_id in obj_ids}

    def _track_one(self, obj_id: int) -> Tracked:
        sim = self.similarity(obj_id)
        points, scores, _ = similarity_points(sim, PERSAM_TOP_POSITIVES)
        grown = _grown_box(self.memory.masks[obj_id])
        box = None
        if grown is not None:
            box, centre = grown
            points = np.vstack([points, centre])
            x, y = (int(v) for v in centre[0])
            scores.append(float(sim[min(y, sim.shape[0] - 1), min(x, sim.shape[1] - 1)]))
        labels = np.ones(len(points), dtype=np.int64)
        candidates = self.segmenter.prompt_all_masks(points, labels, box=box)
        # persam_video.py's --large: np.array([areas], dtype=np.uint8), so areas modulo 256.
        areas = np.array([int(c.mask.sum()) % 256 for c in candidates])
        first = candidates[int(np.argmax(areas))]
        third, box = persam_refine(self.segmenter, points, labels, first, box)
        segmentation = persam_segmentation(third)
        return Tracked(points, scores, segmentation, reference=[], box=box)


@torch.inference_mode()
def persam_features(
    segmenter: SamSegmenter, embedding: ImageEmbedding, mask: np.ndarray, value: int
) -> torch.Tensor:
    """(N, C) image features of ``embedding`` under the (H, W) bool ``mask``, chosen as PerSAM
    chooses them: the mask, painted with ``value`` and pre-processed as the image
    (:meth:`~samic_vos.sam.segmenter.SamSegmenter.mask_as_image`), bilinearly resized to the
    embedding grid; the positions > 0. A mask with no such position gives the feature at the
    position of its largest value (N = 1)."""
    grid = embedding.features.shape[-2:]
    image = segmenter.mask_as_image(mask, value)
    small = F.interpolate(image[None, None], size=grid, mode="bilinear")[0, 0]
    small = small.to(embedding.features.device)
    feats = embedding.features[0].permute(1, 2, 0)[small > 0]
    if len(feats) == 0:
        feats = embedding.features[0].flatten(1)[:, int(small.flatten().argmax())][None]
    return feats


@torch.inference_mode()
def persam_similarity(
    segmenter: SamSegmenter, embedding: ImageEmbedding, target: torch.Tensor
) -> torch.Tensor:
    """(H, W) float32 cosine similarity of every pixel of ``embedding``'s image with the (C,)
    unit ``target``: per embedding position, upsampled ×4 bilinearly, then SAM's own
    postprocessing (unpadding, resizing to the image)."""
    feats = embedding.features[0]
    channels, rows, cols = feats.shape
    feats = feats / feats.norm(dim=0, keepdim=True)
    sim = target.to(feats.device)[None] @ feats.reshape(channels, rows * cols)
    sim = F.interpolate(sim.reshape(1, 1, rows, cols), scale_factor=4, mode="bilinear")
    return segmenter.upscale(sim, embedding)[0, 0].float()


def similarity_points(
    sim: torch.Tensor, positives: int
) -> tuple[np.ndarray, list[float], np.ndarray]:
    """PerSAM's location prior on an (H, W) similarity map: the ``positives`` most similar
    pixels, (P, 2) float32 (x, y), with their similarities, and the least similar pixel, (1, 2)
    float32 (x, y), the negative point (``torch.topk``, as PerSAM picks them)."""
    flat = sim.flatten()
    width = sim.shape[1]
    best = flat.topk(positives).indices.cpu().numpy()
    worst = int(flat.topk(1, largest=False).indices[0])
    points = np.stack([best % width, best // width], axis=1).astype(np.float32)
    negative = np.array([[worst % width, worst // width]], dtype=np.float32)
    return points, [float(flat[i]) for i in best], negative


def persam_guidance(
    sim: torch.Tensor, target: torch.Tensor, grid: tuple[int, int]
) -> DecoderGuidance:
    """PerSAM's decoder guidance from the (H, W) similarity map and the (C,) target feature:
    the map standardised (unbiased std), bilinearly resized to the embedding ``grid``, through
    a sigmoid (target-guided attention); the target itself (target-semantic prompting)."""
    standard = (sim - sim.mean()) / torch.std(sim)
    small = F.interpolate(standard[None, None], size=tuple(grid), mode="bilinear")
    return DecoderGuidance(attention=small.sigmoid().flatten(), target=target)


def persam_refine(
    segmenter: SamSegmenter,
    coords: np.ndarray,
    labels: np.ndarray,
    first: PromptResult,
    box: np.ndarray | None = None,
) -> tuple[PromptResult, np.ndarray | None]:
    """PerSAM's two cascaded refinements of its ``first`` mask on the current frame, with
    ``coords`` (N, 2) (x, y) and ``labels`` (N,) (1 positive, 0 negative): (2) the points +
    ``first``'s low-res logits as ``mask_input``, SAM's three masks; (3) the points + the box of
    (2)'s best mask (``box`` when that mask is empty) + (2)'s logits, three masks. Returns (3)'s
    best mask by predicted IoU and the box of call (3)."""
    second = segmenter.prompt(coords, labels, mask_input=first.low_res_logits, multimask=True)
    box = _box(second.mask) if second.mask.any() else box
    third = segmenter.prompt(
        coords, labels, box=box, mask_input=second.low_res_logits, multimask=True
    )
    return third, box


def persam_segmentation(result: PromptResult) -> Segmentation:
    """A :class:`Segmentation` of one PerSAM mask (SAM's predicted IoU clipped to [0, 1])."""
    confidence = float(np.clip(result.iou, 0.0, 1.0))
    return Segmentation(result.mask, result.logits, confidence, [confidence])


class PerSamImagePrompter:
    """PerSAM's training-free *image* recipe, step for step as its ``persam.py`` runs it, on the
    stock decoder: the class's features under its reference mask (:func:`persam_features`, the
    mask painted with :data:`IMAGE_MASK_VALUE`); their mean, L2-normalised, is the target for
    the similarity, and the mean itself the target-semantic prompt. With K references (our
    choice: PerSAM is one-shot) the K means are averaged first. On a target: cosine
    similarity; the most similar pixel the positive point and the least similar the negative
    one; SAM with the points and PerSAM's decoder guidance (:func:`persam_guidance`), one mask;
    then PerSAM's two cascaded refinements. One instance per class."""

    name = "persam"

    def __init__(self, segmenter: SamSegmenter) -> None:
        self.segmenter = segmenter
        self.reference_feature_calls = 0
        self.reference_points: list[dict[int, np.ndarray]] = []  # PerSAM uses masks, no points
        self._targets: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}  # class → (unit, mean)

    def set_references(self, references: Sequence[Reference], present: list[set[int]]) -> None:
        classes = sorted(set().union(*present))
        per_class: dict[int, list[torch.Tensor]] = {c: [] for c in classes}
        self.reference_points = [{} for _ in references]
        self._targets = {}
        for ref in references:
            found = object_ids(ref.ids)
            if not found:
                continue
            embedding = reference_embedding(self.segmenter, ref)
            self.reference_feature_calls += 1
            for class_id in found:
                mask = ref.ids == class_id
                feats = persam_features(self.segmenter, embedding, mask, IMAGE_MASK_VALUE)
                per_class[class_id].append(feats.mean(dim=0))
        for class_id, means in per_class.items():
            if not means:
                raise ValueError(
                    f"class {class_id} has an empty mask in every reference (persam needs its "
                    "mask, not only points)"
                )
            mean = torch.stack(means).mean(dim=0)
            self._targets[class_id] = (mean / mean.norm(), mean)

    def prepare(self, images: Sequence[np.ndarray]) -> None:
        """Nothing is shared between targets: each is prompted from its own SAM embedding."""

    def prompt_class(self, index: int, class_id: int, size: tuple[int, int]) -> ClassFound:
        """One class on the current target with PerSAM's image recipe."""
        embedding = self.segmenter.embedding
        unit, mean = self._targets[class_id]
        sim = persam_similarity(self.segmenter, embedding, unit)
        points, scores, negative = similarity_points(sim, PERSAM_IMAGE_POSITIVES)
        coords = np.vstack([points, negative])
        labels = np.array([1] * len(points) + [0], dtype=np.int64)
        guidance = persam_guidance(sim, mean, embedding.features.shape[-2:])
        first = self.segmenter.prompt(coords, labels, multimask=False, guidance=guidance)
        third, _ = persam_refine(self.segmenter, coords, labels, first)
        segmentation = persam_segmentation(third)
        result = ClassResult(points, scores, segmentation.confidence, [third.mask])
        return result, segmentation, third.logits[None]
