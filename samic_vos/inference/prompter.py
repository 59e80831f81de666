"""The prompter interface: what turns an object's reference state and a new frame into SAM prompts.

The causal tracker (:class:`samic_vos.inference.tracker.CausalTracker`) owns a video's state (which
objects exist, the frame index) and drives one :class:`Prompter`, which keeps, per object, its
reference state and makes each frame's prompts (positive and negative points, a box, a mask
input, as the method uses them) and their SAM segmentation. The DAVIS benchmark and the image
path call the same interface. Prompters (:data:`~samic_vos.inference.names.PROMPTERS`):

- ``samic``: SAMIC's heat map from the object's reference frame(s) → peaks → SAM
  (:mod:`samic_vos.inference.samic_prompter`);
- ``previous-mask``: interior points of the object's mask on the last frame where it was found;
- ``persam``: PerSAM's training-free recipe (:mod:`samic_vos.inference.baseline_prompters`).

Per frame the tracker calls :meth:`Prompter.new_frame` (after SAM's embedding of the frame is
set), :meth:`Prompter.track` for the objects it follows, :meth:`Prompter.given` for each object
given by a mask on this frame, and :meth:`Prompter.end_frame` with the frame's id map.

Images use the same prompters, by the same names
(:data:`~samic_vos.inference.names.IMAGE_PROMPTERS`: every prompter but ``previous-mask``,
which needs a previous frame), through :class:`ImagePrompter`: per class of K labelled
references, the prompts on a new image and SAM's masks of them.

The settings every prompter and the tracker read (:class:`TrackerConfig`) live beside the
interface; :mod:`samic_vos.inference.prompters` builds a prompter by name, above the
implementations, so no implementation imports the tracker or the factory.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from samic_vos.prompts.heatmaps import DEFAULT_SIGMA
from samic_vos.prompts.mask_points import MAX_POINTS_PER_OBJECT
from samic_vos.prompts.peaks import PeakConfig
from samic_vos.runtime.config import require
from samic_vos.sam.segmenter import ImageEmbedding, SamSegmenter, Segmentation


@dataclass
class Tracked:
    """One object's prompts on one frame and SAM's segmentation of them.

    Attributes:
        points: (N, 2) float32 positive (x, y) points in frame pixels.
        scores: per positive point, the prompter's score for it (heat value, similarity).
        segmentation: SAM's mask, logits and confidence for the object.
        reference: indexes of the points that became the object's reference (empty: the
            earlier reference was kept: the object was not found).
        negative: (M, 2) float32 negative points.
        box: (4,) float32 (x0, y0, x1, y1) box prompt of the last SAM call, or ``None``.
    """

    points: np.ndarray
    scores: list[float]
    segmentation: Segmentation
    reference: list[int]
    negative: np.ndarray = field(default_factory=lambda: np.zeros((0, 2), np.float32))
    box: np.ndarray | None = None


@dataclass
class RestoredFrame:
    """A finished frame, as a resumed run gives it back to a prompter.

    ``rgb``: the (H, W, 3) uint8 frame; ``ids``: its written (H, W) uint8 id map; ``points``:
    the object's recorded (N, 2) reference points on it.
    """

    rgb: np.ndarray
    ids: np.ndarray
    points: np.ndarray


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


class Prompter(Protocol):
    """Makes each frame's prompts for the objects of one video (see the module docstring)."""

    name: str

    def new_frame(self, rgb: np.ndarray) -> None:
        """The next frame, (H, W, 3) uint8 RGB; SAM's embedding of it is already set."""

    def track(self, obj_ids: list[int]) -> dict[int, Tracked]:
        """Prompts and SAM's segmentation of each followed object on the current frame."""

    def given(self, obj_id: int, mask: np.ndarray, points: np.ndarray) -> None:
        """Object ``obj_id`` (re)starts from its (H, W) bool ``mask`` on the current frame;
        ``points`` are the (N, 2) prompts that reproduce it with SAM."""

    def end_frame(self, ids: np.ndarray, tracked: dict[int, Tracked]) -> None:
        """The current frame's final (H, W) uint8 id map (overlaps resolved), and what
        :meth:`track` returned; a prompter whose state follows the written masks sets each
        ``tracked[k].reference`` here."""

    def restore(self, obj_id: int, given: RestoredFrame, last: RestoredFrame | None) -> None:
        """Rebuild an object's state in a resumed run: the frame where it was last given, and
        the one where it was last found (``None``: the same frame)."""


# --- images: K labelled references → prompts and SAM's masks of each class on a target ---


@dataclass
class Reference:
    """One labelled reference image.

    Attributes:
        rgb: (H, W, 3) uint8 RGB.
        ids: (H, W) uint8 class ids: 0 background, 255 void, 1..254 classes.
        points: per class id, (N, 2) float32 (x, y) prompts as a person clicked them (SAMBOX);
            ``None``: derived from the mask with
            :func:`~samic_vos.sam.segmenter.prompts_from_mask` (as ``track``'s frame 0). A
            class without an entry is derived likewise.
        embedding: SAM's embedding of ``rgb`` if already computed.
    """

    rgb: np.ndarray
    ids: np.ndarray
    points: dict[int, np.ndarray] | None = None
    embedding: ImageEmbedding | None = None


@dataclass
class ClassResult:
    """One class on one target.

    Attributes:
        points: (N, 2) float32 positive points on the target (one per SAM prompt).
        scores: per point, its heat value (samic) or cosine similarity (persam).
        confidence: SAM's confidence in the class mask, [0, 1] (area-weighted over instances).
        instances: per point (instance), SAM's own (H, W) bool mask for it, before overlaps
            with other instances and classes are resolved.
        instance_ids: per instance, its number in the target's instance map
            (:attr:`~samic_vos.inference.fewshot_engine.ImageResult.instances`; 0: it kept no
            pixel there).
    """

    points: np.ndarray
    scores: list[float]
    confidence: float
    instances: list[np.ndarray]
    instance_ids: list[int] = field(default_factory=list)


# One class on the current target: its result, the union segmentation of its instances, and
# its (G, H, W) per-instance logits (G = len(result.points)).
ClassFound = tuple[ClassResult, Segmentation, np.ndarray]


class ImagePrompter(Protocol):
    """Makes the prompts of each class of K references on new images (the image path's
    counterpart of :class:`Prompter`; :class:`~samic_vos.inference.fewshot_engine.FewShotSegmenter`
    drives one). Per reference set the engine calls :meth:`set_references`; per batch of
    targets, :meth:`prepare`, then for each target (SAM's embedding of it set) and class,
    :meth:`prompt_class`."""

    name: str
    reference_feature_calls: int  # reference images whose features were computed
    # Per reference, per class, the prompts used on it ((N, 2) float32 (x, y)), where the
    # method uses reference prompts (samic).
    reference_points: list[dict[int, np.ndarray]]

    def set_references(self, references: Sequence[Reference], present: list[set[int]]) -> None:
        """The K references, already checked, with the classes present in each."""

    def prepare(self, images: Sequence[np.ndarray]) -> None:
        """Work shared by the targets (H_i, W_i, 3) uint8 of one batch, before any is
        prompted."""

    def prompt_class(self, index: int, class_id: int, size: tuple[int, int]) -> ClassFound:
        """Class ``class_id`` on target ``index`` of the prepared batch, of ``size`` (H, W)."""


def reference_embedding(segmenter: SamSegmenter, ref: Reference) -> ImageEmbedding:
    """SAM's embedding of a reference (given, or computed now), set as the current image."""
    embedding = ref.embedding if ref.embedding is not None else segmenter.embed(ref.rgb)
    segmenter.set_embedding(embedding)
    return embedding
