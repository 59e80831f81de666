"""Training-free prompters to set SAMIC beside: the previous mask's points, and PerSAM.

Both keep, per object, its mask on the last frame where it was found (the frame's written id
map, so a resumed run rebuilds it exactly from the PNG): an object that is lost keeps its last
good mask, for recovery.

- :class:`PreviousMaskPrompter` (``previous-mask``): the interior points of that mask, one per
  connected component (as the first frame's mask is prompted), one SAM prompt per component.
- :class:`PerSamPrompter` (``persam``): PerSAM's video recipe on stock ``segment_anything`` (no
  patched attention, no learned weights). The object's *target feature* comes from the SAM
  embedding of the frame where it was given: the features under the mask (resized and padded
  as SAM's input, then bilinearly resized to the embedding grid; positions > 0 kept), ½·max +
  ½·mean over those positions, L2-normalised. On frame t: cosine similarity with every
  embedding position, upsampled to the frame (×4 bilinear, then SAM's own postprocessing); the
  2 most similar pixels and the centre of the previous mask's box are positive points, the
  least similar pixel the negative one; then three SAM calls: (1) points + the previous box
  expanded by 10 px, one mask; (2) points + (1)'s low-res logits as ``mask_input``, SAM's three
  masks; (3) points + the box of (2)'s best mask + (2)'s logits, three masks; the best of (3)
  by SAM's predicted IoU is the object's mask. Objects are combined by the highest logit with 0
  as the background (the tracker's rule), i.e. argmax over a background channel.

Its steps are functions shared with PerSAM's *image* recipe of the few-shot path
(:mod:`samic_vos.inference.fewshot_engine`): :func:`persam_target` (the image recipe pools the
features under the mask by their mean, :data:`IMAGE_POOLING`), :func:`persam_similarity`,
:func:`similarity_points` and :func:`persam_cascade` (the image recipe's first call has no box).
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
from samic_vos.sam.segmenter import (
    ImageEmbedding,
    PromptResult,
    SamSegmenter,
    Segmentation,
    group_points_by_component,
)

BOX_MARGIN = 10  # PerSAM's video recipe expands the previous box by 10 px
PERSAM_TOP_POSITIVES = 2  # positive points from the similarity map (video recipe)
VIDEO_POOLING = "max_mean"  # PerSAM's video recipe: ½·max + ½·mean of the features under the mask
IMAGE_POOLING = "mean"  # PerSAM's image recipe (persam.py): their mean
PERSAM_IMAGE_POSITIVES = 1  # PerSAM's image recipe: the one most similar pixel (top-1)
POOLINGS = (VIDEO_POOLING, IMAGE_POOLING)


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


def _box(mask: np.ndarray, margin: int = 0) -> np.ndarray | None:
    """(4,) float32 (x0, y0, x1, y1) box of ``mask``'s pixels grown by ``margin``, clipped."""
    rows, cols = np.nonzero(mask)
    if len(rows) == 0:
        return None
    height, width = mask.shape
    return np.array(
        [
            max(cols.min() - margin, 0),
            max(rows.min() - margin, 0),
            min(cols.max() + margin, width - 1),
            min(rows.max() + margin, height - 1),
        ],
        dtype=np.float32,
    )


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
        return persam_target(self.segmenter, self.segmenter.embedding, mask, VIDEO_POOLING)

    def similarity(self, obj_id: int) -> np.ndarray:
        """(H, W) float32 cosine similarity of the current frame with the object's target."""
        return persam_similarity(self.segmenter, self.segmenter.embedding, self.targets[obj_id])

    def track(self, obj_ids: list[int]) -> dict[int, Tracked]:
        return {obj_id: self._track_one(obj_id) for obj_id in obj_ids}

    def _track_one(self, obj_id: int) -> Tracked:
        sim = self.similarity(obj_id)
        found, scores, negative = similarity_points(sim, PERSAM_TOP_POSITIVES)
        positives = found.tolist()
        previous = self.memory.masks[obj_id]
        box = _box(previous, BOX_MARGIN)
        if box is not None:
            x0, y0, x1, y1 = _box(previous)  # type: ignore[misc]
            positives.append([(x0 + x1) / 2.0, (y0 + y1) / 2.0])
            scores.append(float(sim[int(round((y0 + y1) / 2)), int(round((x0 + x1) / 2))]))
        points = np.array(positives, dtype=np.float32)
        coords = np.vstack([points, negative])
        labels = np.array([1] * len(points) + [0], dtype=np.int64)
        third, box = persam_cascade(self.segmenter, coords, labels, box)
        segmentation = persam_segmentation(third)
        return Tracked(points, scores, segmentation, reference=[], negative=negative, box=box)


@torch.inference_mode()
def persam_target(
    segmenter: SamSegmenter, embedding: ImageEmbedding, mask: np.ndarray, pooling: str
) -> torch.Tensor:
    """PerSAM's (C,) unit target feature of ``mask`` (H, W) bool in the image of ``embedding``.

    The mask is resized and padded as SAM's input, bilinearly resized to the embedding grid,
    and the features at positions > 0 are pooled (``pooling``: :data:`VIDEO_POOLING` or
    :data:`IMAGE_POOLING`), then L2-normalised. A mask too small for the grid uses the feature
    at its largest value's position.
    """
    if pooling not in POOLINGS:
        raise ValueError(f"unknown PerSAM pooling {pooling!r}: use one of {POOLINGS}")
    grid = embedding.features.shape[-2:]
    padded = segmenter.grid_mask(mask, embedding)
    small = F.interpolate(torch.from_numpy(padded)[None, None], size=grid, mode="bilinear")
    feats = embedding.features[0].permute(1, 2, 0)[small[0, 0].to(embedding.features.device) > 0]
    if len(feats) == 0:
        index = int(small.flatten().argmax())
        feats = embedding.features[0].flatten(1)[:, index][None]
    target = feats.mean(dim=0)
    if pooling == VIDEO_POOLING:
        target = 0.5 * feats.max(dim=0).values + 0.5 * target
    return target / target.norm()


@torch.inference_mode()
def persam_similarity(
    segmenter: SamSegmenter, embedding: ImageEmbedding, target: torch.Tensor
) -> np.ndarray:
    """(H, W) float32 cosine similarity of every pixel of ``embedding``'s image with the (C,)
    unit ``target``: per embedding position, upsampled ×4 bilinearly, then SAM's own
    postprocessing (unpadding, resizing to the image)."""
    feats = embedding.features[0]
    feats = feats / feats.norm(dim=0, keepdim=True)
    sim = torch.einsum("c,chw->hw", target.to(feats.device), feats)[None, None]
    sim = F.interpolate(sim, scale_factor=4, mode="bilinear")
    full = segmenter.upscale(sim, embedding)
    return full[0, 0].float().cpu().numpy()


def similarity_points(
    sim: np.ndarray, positives: int
) -> tuple[np.ndarray, list[float], np.ndarray]:
    """PerSAM's location prior on an (H, W) similarity map: the ``positives`` most similar
    pixels, (P, 2) float32 (x, y), with their similarities, and the least similar pixel, (1, 2)
    float32 (x, y), the negative point (ties: the first in row-major order)."""
    width = sim.shape[1]
    order = np.argsort(sim, axis=None, kind="stable")
    best = order[::-1][:positives]
    points = np.array([[i % width, i // width] for i in best], dtype=np.float32).reshape(-1, 2)
    negative = np.array([[order[0] % width, order[0] // width]], dtype=np.float32)
    return points, [float(sim.flat[i]) for i in best], negative


def persam_cascade(
    segmenter: SamSegmenter,
    coords: np.ndarray,
    labels: np.ndarray,
    box: np.ndarray | None = None,
) -> tuple[PromptResult, np.ndarray | None]:
    """PerSAM's three SAM calls on the current frame: (1) ``coords`` (N, 2) (x, y) with
    ``labels`` (N,) (1 positive, 0 negative), and ``box`` (x0, y0, x1, y1) if given, one mask;
    (2) the points + (1)'s low-res logits as ``mask_input``, three masks; (3) the points + the
    box of (2)'s best mask (``box`` when that mask is empty) + (2)'s logits, three masks.
    Returns (3)'s best mask by predicted IoU and the box of call (3)."""
    first = segmenter.prompt(coords, labels, box=box, multimask=False)
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
    """PerSAM's training-free *image* recipe on stock ``segment_anything`` (PerSAM's
    ``persam.py``): the class's target feature is the mean SAM feature under its mask in a
    reference; with K references, the mean of the K unit target features, renormalised (our
    choice: PerSAM is one-shot). On a target: cosine similarity, the most similar pixel the
    positive point and the least similar the negative one, then SAM with the points (one mask)
    and PerSAM's two cascaded refinements. One instance per class."""

    name = "persam"

    def __init__(self, segmenter: SamSegmenter) -> None:
        self.segmenter = segmenter
        self.reference_feature_calls = 0
        self.reference_points: list[dict[int, np.ndarray]] = []  # PerSAM uses masks, no points
        self._targets: dict[int, torch.Tensor] = {}  # class → (C,) unit target feature

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
                per_class[class_id].append(
                    persam_target(self.segmenter, embedding, ref.ids == class_id, IMAGE_POOLING)
                )
        for class_id, targets in per_class.items():
            if not targets:
                raise ValueError(
                    f"class {class_id} has an empty mask in every reference (persam needs its "
                    "mask, not only points)"
                )
            mean = torch.stack(targets).mean(dim=0)
            self._targets[class_id] = mean / mean.norm()

    def prepare(self, images: Sequence[np.ndarray]) -> None:
        """Nothing is shared between targets: each is prompted from its own SAM embedding."""

    def prompt_class(self, index: int, class_id: int, size: tuple[int, int]) -> ClassFound:
        """One class on the current target with PerSAM's image recipe."""
        embedding = self.segmenter.embedding
        sim = persam_similarity(self.segmenter, embedding, self._targets[class_id])
        points, scores, negative = similarity_points(sim, PERSAM_IMAGE_POSITIVES)
        coords = np.vstack([points, negative])
        labels = np.array([1] * len(points) + [0], dtype=np.int64)
        third, _ = persam_cascade(self.segmenter, coords, labels)
        segmentation = persam_segmentation(third)
        result = ClassResult(points, scores, segmentation.confidence, [third.mask])
        return result, segmentation, third.logits[None]
