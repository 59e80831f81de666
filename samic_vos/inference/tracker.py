"""The causal tracker: frame t−1, with its accepted prompts, is the reference for frame t.

One :class:`CausalTracker` owns the state of one video (as Cutie's inference core does):
:meth:`CausalTracker.step` takes one frame, and a mask on the first frame (or whenever objects
are added), and returns that frame's id map with the prompts that made it.

Per frame: SAM's image embedding is computed once and shared by all objects; a
:class:`~samic_vos.inference.prompter.Prompter` (SAMIC by default, or a training-free baseline)
makes each followed object's prompts and SAM mask from its reference state. A given object's mask is
taken as is, and the points that reproduce it with SAM (:func:`prompts_from_mask`) become its
reference. Overlaps between objects go to the object with the highest SAM logit.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from samic_vos.data.mask_io import object_ids
from samic_vos.inference.prompter import Prompter, RestoredFrame, TrackerConfig
from samic_vos.sam.segmenter import ImageEmbedding, SamSegmenter, prompts_from_mask


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


class CausalTracker:
    """Tracks the objects of one video, one frame at a time, with one prompter.

    ``prompter`` and ``segmenter`` must already sit on their device; the tracker never moves
    them. :func:`samic_vos.inference.prompters.samic_tracker` builds the SAMIC tracker.
    """

    def __init__(
        self, prompter: Prompter, segmenter: SamSegmenter, config: TrackerConfig | None = None
    ) -> None:
        self.prompter = prompter
        self.segmenter = segmenter
        self.config = config or TrackerConfig()
        self.objects: list[int] = []  # object ids, in the order they were first given
        self.frame_index = -1
        self.image_size: tuple[int, int] | None = None

    @torch.inference_mode()
    def step(
        self,
        rgb: np.ndarray,
        mask: np.ndarray | None = None,
        embedding: ImageEmbedding | None = None,
    ) -> FrameResult:
        """Process the next frame.

        Args:
            rgb: the frame, uint8 (H, W, 3) RGB; every frame of a video has the same size.
            mask: optional uint8 (H, W) id map giving objects on this frame (0 background,
                255 void, ignored); a given object's mask is taken as is and (re)starts it.
            embedding: SAM's embedding of ``rgb`` if already computed
                (``segmenter.embed(rgb)``, e.g. ahead of time); None: computed here.

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

        if embedding is None:
            self.segmenter.set_frame(rgb)
        else:
            self.segmenter.set_embedding(embedding)
        self.prompter.new_frame(rgb)
        tracked = self.prompter.track([k for k in self.objects if k not in given_ids])
        results: dict[int, ObjectResult] = {}
        for obj_id in given_ids:
            object_mask = mask == obj_id
            points, segmentation = prompts_from_mask(
                self.segmenter,
                object_mask,
                max_points=self.config.first_frame_max_points,
                target_iou=self.config.first_frame_target_iou,
            )
            self.prompter.given(obj_id, object_mask, points)
            if obj_id not in self.objects:
                self.objects.append(obj_id)
            # A given prompt's heat value is 1 by construction; SAM's confidence is its own.
            everything = list(range(len(points)))
            results[obj_id] = ObjectResult(
                points, [1.0] * len(points), segmentation.confidence, everything, given=True
            )
        ids = compose_ids(
            {k: t.segmentation.mask for k, t in tracked.items()},
            {k: t.segmentation.logits for k, t in tracked.items()},
            (height, width),
        )
        for obj_id in given_ids:
            ids[mask == obj_id] = obj_id
        self.prompter.end_frame(ids, tracked)
        for obj_id, t in tracked.items():
            results[obj_id] = ObjectResult(
                t.points, t.scores, t.segmentation.confidence, list(t.reference)
            )
        return FrameResult(ids=ids, objects=dict(sorted(results.items())))

    def restore(
        self,
        next_frame: int,
        image_size: tuple[int, int],
        objects: dict[int, tuple[RestoredFrame, RestoredFrame | None]],
    ) -> None:
        """Continue an interrupted video: the state as it was before frame ``next_frame``.

        Args:
            next_frame: index of the next frame :meth:`step` will get (>= 1).
            image_size: (H, W) of the video's frames.
            objects: per object id, in the order the objects were first given: the frame where
                it was last given and the one where it was last found (``None``: the same),
                with the points the run recorded there as the object's reference
                (``ObjectResult.points[reference]``), so the state equals the run's.
        """
        if next_frame < 1 or not objects:
            raise ValueError("restore needs next_frame >= 1 and at least one object")
        self.frame_index = next_frame - 1
        self.image_size = (int(image_size[0]), int(image_size[1]))
        self.objects = list(objects)
        for obj_id, (given, last) in objects.items():
            self.prompter.restore(obj_id, given, last)


def compose_ids(
    masks: dict[int, np.ndarray], logits: dict[int, np.ndarray], size: tuple[int, int]
) -> np.ndarray:
    """One id map from per-object masks; a pixel claimed twice goes to the highest logit."""
    return compose_best(masks, logits, size)[0]


def compose_best(
    masks: dict[int, np.ndarray], logits: dict[int, np.ndarray], size: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`compose_ids`'s id map (H, W) uint8 and the winning logit of each pixel (H, W)
    float32 (``-inf`` where no object claims it): masks (H, W) bool and logits (H, W) float32
    per object id, in the order that breaks ties (the first object wins)."""
    ids = np.zeros(size, dtype=np.uint8)
    best = np.full(size, -np.inf, dtype=np.float32)
    # One pass per object (an argmax over a stacked (K, H, W) array is several times slower);
    # a strict ">" gives a tie to the first object, as argmax does.
    for object_id, mask in masks.items():
        wins = mask & (logits[object_id] > best)
        np.copyto(best, logits[object_id], where=wins)
        np.copyto(ids, np.uint8(object_id), where=wins)
    return ids, best
