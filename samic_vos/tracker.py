"""The causal tracker: frame t−1, with its accepted prompts, is the reference for frame t.

One :class:`CausalTracker` owns the state of one video (as Cutie's inference core does):
:meth:`CausalTracker.step` takes one frame, and a mask on the first frame (or whenever objects
are added), and returns that frame's id map with the prompts that made it.

Per frame: the SAM image embedding and the SAMIC backbone features are computed once and shared
by all objects; the features are kept, since frame t is the reference at t+1. Per object:
SAMIC predicts a heat map from the object's reference → peaks → one SAM prompt per peak region
→ union → mask; the peaks that fall inside the new mask become the next reference. An object
with no peak (or no accepted peak) gets an empty mask and keeps its last good reference, so it
can come back. Overlaps between objects go to the object with the highest SAM logit.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from samic_vos.config import require
from samic_vos.heatmaps import DEFAULT_SIGMA, average_heatmaps, points_to_heatmap
from samic_vos.mask_io import object_ids
from samic_vos.mask_points import MAX_POINTS_PER_OBJECT
from samic_vos.peaks import PeakConfig, find_peaks
from samic_vos.samic_net import SamicNet, preprocess
from samic_vos.segmenter import SamSegmenter, prompts_from_mask


@dataclass
class TrackerConfig:
    """Settings of the causal tracker (defaults; YAML only overrides)."""

    heat_sigma: float = DEFAULT_SIGMA  # σ of the prompt Gaussians, share of the heat-map side
    peaks: PeakConfig = field(default_factory=PeakConfig)
    # Frame 0 (where the object was given) as a second reference against drift; the two
    # heat maps are averaged, as K-shot references are.
    first_frame_reference: bool = True
    # Points SAMBOX-style prompting may add on a given mask.
    first_frame_max_points: int = MAX_POINTS_PER_OBJECT
    first_frame_target_iou: float = 0.9  # stop adding points once SAM reproduces the mask so well
    batch_size: int = 8  # references decoded by SAMIC at once (memory grows with it)

    def __post_init__(self) -> None:
        require(0 < self.heat_sigma <= 1, "heat_sigma", "in (0, 1]", self.heat_sigma)
        points = self.first_frame_max_points
        require(points >= 1, "first_frame_max_points", "an integer >= 1", points)
        iou = self.first_frame_target_iou
        require(0 < iou <= 1, "first_frame_target_iou", "in (0, 1]", iou)
        require(self.batch_size >= 1, "batch_size", "an integer >= 1", self.batch_size)


# A frame's SAMIC features (batch 1, from CausalTracker.features) and (N, 2) (x, y) points.
Prompted = tuple[list[torch.Tensor], np.ndarray]


@dataclass
class ObjectResult:
    """One object in one frame.

    Attributes:
        points: (N, 2) float32 (x, y) prompts in frame pixels.
        peak_scores: per point, its heat value (1 for the points of a given mask).
        confidence: SAM's confidence in the object's mask, in [0, 1].
        reference: indexes of the points that became the object's reference for the next
            frame (inside its new mask); empty when the reference was kept from before.
        given: the object's mask was given on this frame (its points derived from it).
    """

    points: np.ndarray
    peak_scores: list[float]
    confidence: float
    reference: list[int] = field(default_factory=list)
    given: bool = False


@dataclass
class FrameResult:
    """One frame: ``ids`` (H, W) uint8 id map (0 background) and each tracked object's result."""

    ids: np.ndarray
    objects: dict[int, ObjectResult]


@dataclass
class _Reference:
    """A reference of one object: a frame's SAMIC features and its prompts' heat map."""

    feats: list[torch.Tensor]  # SAMIC backbone features of the reference frame, batch 1
    heat: torch.Tensor  # (1, 1, h, w) heat map of the reference prompts, in [0, 1]


@dataclass
class _ObjectState:
    last: _Reference  # the last frame where the object was found
    first: _Reference  # the frame where the object was given


class CausalTracker:
    """Tracks the objects of one video, one frame at a time.

    ``net`` and ``segmenter`` must already sit on ``device``; the tracker never moves them.
    """

    def __init__(
        self,
        net: SamicNet,
        segmenter: SamSegmenter,
        config: TrackerConfig | None = None,
        device: torch.device | str = "cpu",
    ) -> None:
        self.net = net.eval()
        self.segmenter = segmenter
        self.config = config or TrackerConfig()
        self.device = torch.device(device)
        self.input_size: tuple[int, int] = tuple(net.config.input_size)  # (h, w)
        self.objects: dict[int, _ObjectState] = {}
        self.frame_index = -1
        self.image_size: tuple[int, int] | None = None

    @torch.inference_mode()
    def step(self, rgb: np.ndarray, mask: np.ndarray | None = None) -> FrameResult:
        """Process the next frame.

        Args:
            rgb: the frame, uint8 (H, W, 3) RGB; every frame of a video has the same size.
            mask: optional uint8 (H, W) id map giving objects on this frame (0 background,
                255 void, ignored); a given object's mask is taken as is and (re)starts it.

        Returns:
            The frame's id map and per-object prompts. The first call needs a mask.
        """
        height, width = rgb.shape[:2]
        if self.image_size is None:
            self.image_size = (height, width)
        elif self.image_size != (height, width):
            raise ValueError(f"frame size {(height, width)} differs from {self.image_size}")
        given_ids = object_ids(mask) if mask is not None else []
        if not self.objects and not given_ids:
            raise ValueError("the first frame needs a mask with at least one object")
        self.frame_index += 1

        feats = self.features(rgb)
        self.segmenter.set_frame(rgb)

        results: dict[int, ObjectResult] = {}
        masks: dict[int, np.ndarray] = {}
        logits: dict[int, np.ndarray] = {}
        tracked = {k: state for k, state in self.objects.items() if k not in given_ids}
        for obj_id, heat in self._predict(tracked, feats).items():
            results[obj_id], masks[obj_id], logits[obj_id] = self._track(
                tracked[obj_id], heat, feats
            )
        for obj_id in given_ids:
            object_mask = mask == obj_id
            points, segmentation = prompts_from_mask(
                self.segmenter,
                object_mask,
                max_points=self.config.first_frame_max_points,
                target_iou=self.config.first_frame_target_iou,
            )
            reference = self._reference(feats, points)
            self.objects[obj_id] = _ObjectState(last=reference, first=reference)
            # A given prompt's heat value is 1 by construction; SAM's confidence is its own.
            scores = [1.0] * len(points)
            everything = list(range(len(points)))
            results[obj_id] = ObjectResult(
                points, scores, segmentation.confidence, reference=everything, given=True
            )
        ids = _compose(masks, logits, (height, width))
        for obj_id in given_ids:
            ids[mask == obj_id] = obj_id
        return FrameResult(ids=ids, objects=dict(sorted(results.items())))

    def _track(
        self, state: _ObjectState, heat: np.ndarray, feats: list[torch.Tensor]
    ) -> tuple[ObjectResult, np.ndarray, np.ndarray]:
        """Peaks → SAM for one object; updates its reference when it is found.

        Returns the object's result, its mask (H, W) bool and SAM logits (H, W) float32.
        """
        assert self.image_size is not None
        peaks = find_peaks(heat, self.image_size, self.config.peaks)
        points = np.array([[p.x, p.y] for p in peaks], dtype=np.float32).reshape(-1, 2)
        segmentation = self.segmenter.segment([point[None] for point in points])
        inside = _inside(segmentation.mask, points)
        if inside.any():
            state.last = self._reference(feats, points[inside])
        result = ObjectResult(
            points=points,
            peak_scores=[p.score for p in peaks],
            confidence=segmentation.confidence,
            reference=[int(i) for i in np.flatnonzero(inside)],
        )
        return result, segmentation.mask, segmentation.logits

    @torch.inference_mode()
    def features(self, rgb: np.ndarray) -> list[torch.Tensor]:
        """SAMIC backbone features of a (H, W, 3) uint8 RGB frame, batch 1, on the device."""
        return self.net.extract_features(preprocess(rgb, self.input_size).to(self.device))

    def restore(
        self,
        next_frame: int,
        image_size: tuple[int, int],
        objects: dict[int, tuple[Prompted, Prompted | None]],
    ) -> None:
        """Continue an interrupted video: the state as it was before frame ``next_frame``.

        Args:
            next_frame: index of the next frame :meth:`step` will get (>= 1).
            image_size: (H, W) of the video's frames.
            objects: per object id, ``(first, last)``: the frame features (:meth:`features`)
                and (N, 2) (x, y) points where the object was given, and where it was last
                found (``None``: where it was given). The points are those a run recorded
                (``ObjectResult.points[reference]``), so the state equals the run's.
        """
        if next_frame < 1 or not objects:
            raise ValueError("restore needs next_frame >= 1 and at least one object")
        self.frame_index = next_frame - 1
        self.image_size = (int(image_size[0]), int(image_size[1]))
        self.objects = {}
        for obj_id, (first, last) in objects.items():
            first_ref = self._reference(*first)
            last_ref = first_ref if last is None else self._reference(*last)
            self.objects[obj_id] = _ObjectState(last=last_ref, first=first_ref)

    def _predict(
        self, states: dict[int, _ObjectState], feats: list[torch.Tensor]
    ) -> dict[int, np.ndarray]:
        """SAMIC's heat map (h, w) float32 in [0, 1] of every object on the current frame.

        All references (each object's last, and its first when it differs) are decoded in
        batches of ``config.batch_size``; an object's heat maps are averaged, as K shots are.
        """
        refs: list[tuple[int, _Reference]] = []
        for obj_id, state in states.items():
            refs.append((obj_id, state.last))
            if self.config.first_frame_reference and state.first is not state.last:
                refs.append((obj_id, state.first))
        heats: dict[int, list[np.ndarray]] = {obj_id: [] for obj_id in states}
        for start in range(0, len(refs), self.config.batch_size):
            chunk = refs[start : start + self.config.batch_size]
            ref_feats = [torch.cat(lv) for lv in zip(*(r.feats for _, r in chunk), strict=True)]
            ref_heat = torch.cat([r.heat for _, r in chunk])
            tgt_feats = [f.expand(len(chunk), -1, -1, -1) for f in feats]
            out = torch.sigmoid(self.net.predict(ref_feats, ref_heat, tgt_feats))
            for (obj_id, _), heat in zip(chunk, out[:, 0].float().cpu().numpy(), strict=True):
                heats[obj_id].append(heat)
        return {obj_id: average_heatmaps(maps) for obj_id, maps in heats.items()}

    def _reference(self, feats: list[torch.Tensor], points: np.ndarray) -> _Reference:
        return _Reference(feats, self._heat(points))

    def _heat(self, points: np.ndarray) -> torch.Tensor:
        assert self.image_size is not None
        heat = points_to_heatmap(points, self.image_size, self.input_size, self.config.heat_sigma)
        return torch.from_numpy(heat)[None, None].to(self.device)


def _inside(mask: np.ndarray, points: np.ndarray) -> np.ndarray:
    """(N,) bool: whether each (x, y) point's pixel lies inside ``mask`` (H, W)."""
    height, width = mask.shape
    cols = np.clip(np.rint(points[:, 0]).astype(int), 0, width - 1)
    rows = np.clip(np.rint(points[:, 1]).astype(int), 0, height - 1)
    return mask[rows, cols]


def _compose(
    masks: dict[int, np.ndarray], logits: dict[int, np.ndarray], size: tuple[int, int]
) -> np.ndarray:
    """One id map from per-object masks; a pixel claimed twice goes to the highest logit."""
    ids = np.zeros(size, dtype=np.uint8)
    if not masks:
        return ids
    order = list(masks)
    stacked = np.stack([np.where(masks[k], logits[k], -np.inf) for k in order])
    best = stacked.argmax(axis=0)
    claimed = np.isfinite(stacked.max(axis=0))
    ids[claimed] = np.asarray(order, dtype=np.uint8)[best[claimed]]
    return ids
