"""Image few-shot segmentation: K labelled reference images → masks of each class on new images.

One :class:`FewShotSegmenter` holds the references (:meth:`FewShotSegmenter.set_references`)
and segments any number of targets with them (:meth:`FewShotSegmenter.segment`), with one of
two prompters (:data:`FEWSHOT_PROMPTERS`):

- ``samic`` (the paper): per class, SAMIC predicts the target's heat map from each reference
  where the class appears (the reference's backbone features with the heat map of the class's
  prompts there: the points a person clicked, or the points that reproduce its mask with SAM,
  :func:`samic_vos.sam.segmenter.prompts_from_mask`, as ``track`` prompts frame 0); the K heat maps
  are averaged (:func:`samic_vos.prompts.heatmaps.average_heatmaps`), the peak detector
  (:func:`samic_vos.prompts.peaks.find_peaks`) gives one point per region, and each point is its own
  SAM prompt: one instance each (the paper's several airplanes). The class mask is the union of
  its instances.
- ``persam``: PerSAM's training-free *image* recipe on stock ``segment_anything``
  (:mod:`samic_vos.inference.baseline_prompters`): the class's target feature is the mean SAM
  feature under its mask in a reference (PerSAM's ``persam.py``); with K references, the mean of the
  K unit target features, renormalised (our choice: PerSAM is one-shot). On a target: cosine
  similarity, the most similar pixel the positive point and the least similar the negative
  one, then SAM with the points (one mask) and PerSAM's two cascaded refinements. One instance
  per class.

Reference features are computed once, in :meth:`~FewShotSegmenter.set_references`
(:attr:`~FewShotSegmenter.reference_feature_calls` counts them). Per call of
:meth:`~FewShotSegmenter.segment`, SAMIC's backbone runs over the targets in batches of
``config.batch_size`` and its head over all (target, class, reference) pairs in batches of the
same size; SAM encodes each target once (unless its embedding is given), shared by all classes.
Pixels claimed by two classes go to the higher SAM logit
(:func:`samic_vos.inference.tracker.compose_ids`), and within a class, to the instance with the
higher logit.

Coordinates: points are float (x, y) pixels, x right, y down, pixel centres at integers.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from samic_vos.data.mask_io import object_ids
from samic_vos.inference.baseline_prompters import (
    IMAGE_POOLING,
    persam_cascade,
    persam_segmentation,
    persam_similarity,
    persam_target,
    similarity_points,
)
from samic_vos.inference.prompter import TrackerConfig
from samic_vos.inference.samic_prompter import predict_heatmaps, prompt_heat, samic_features
from samic_vos.inference.tracker import compose_ids
from samic_vos.model.samic_net import SamicNet
from samic_vos.prompts.heatmaps import average_heatmaps
from samic_vos.prompts.peaks import find_peaks
from samic_vos.sam.segmenter import ImageEmbedding, SamSegmenter, Segmentation, prompts_from_mask

FEWSHOT_PROMPTERS = ("samic", "persam")
PERSAM_IMAGE_POSITIVES = 1  # PerSAM's image recipe: the one most similar pixel (top-1)
MAX_INSTANCES = 254  # instance ids of a uint8 PNG (255 is void); later instances are dropped


@dataclass
class Reference:
    """One labelled reference image.

    Attributes:
        rgb: (H, W, 3) uint8 RGB.
        ids: (H, W) uint8 class ids: 0 background, 255 void, 1..254 classes.
        points: per class id, (N, 2) float32 (x, y) prompts as a person clicked them (SAMBOX);
            ``None``: derived from the mask with :func:`~samic_vos.sam.segmenter.prompts_from_mask`
            (as ``track``'s frame 0). A class without an entry is derived likewise.
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
        instance_ids: per instance, its number in :attr:`ImageResult.instances` (0: it kept
            no pixel there).
    """

    points: np.ndarray
    scores: list[float]
    confidence: float
    instances: list[np.ndarray]
    instance_ids: list[int] = field(default_factory=list)


@dataclass
class ImageResult:
    """One target.

    Attributes:
        ids: (H, W) uint8 semantic map: class ids (the union of each class's instances).
        instances: (H, W) uint8 instance map, 1..M for the instances that keep pixels, in
            class order then point order (0 background).
        classes: per class id of the references, its result (sorted by id).
    """

    ids: np.ndarray
    instances: np.ndarray
    classes: dict[int, ClassResult]


@dataclass
class _ClassReference:
    """One class in one reference: the reference's index and the class's prompt heat map."""

    index: int
    heat: torch.Tensor  # (1, 1, h, w) on the device (samic)


class FewShotSegmenter:
    """Segments targets from K references (module docstring).

    ``segmenter`` and ``net`` must already sit on ``device``; ``net`` is needed for ``samic``.
    """

    def __init__(
        self,
        prompter: str,
        segmenter: SamSegmenter,
        net: SamicNet | None,
        config: TrackerConfig,
        device: torch.device | str = "cpu",
    ) -> None:
        if prompter not in FEWSHOT_PROMPTERS:
            raise ValueError(f"unknown prompter {prompter!r}: use one of {FEWSHOT_PROMPTERS}")
        if prompter == "samic" and net is None:
            raise ValueError("the samic prompter needs a SAMIC network")
        self.prompter = prompter
        self.segmenter = segmenter
        self.net = net.eval() if net is not None else None
        self.config = config
        self.device = torch.device(device)
        self.reference_feature_calls = 0
        # Per reference, per class, the prompts used on it ((N, 2) float32 (x, y)); samic only.
        self.reference_points: list[dict[int, np.ndarray]] = []
        self.classes: list[int] = []
        self._ref_feats: list[list[torch.Tensor]] = []
        self._class_refs: dict[int, list[_ClassReference]] = {}
        self._targets: dict[int, torch.Tensor] = {}  # persam: class → (C,) unit target feature

    def set_references(self, references: Sequence[Reference]) -> None:
        """K references; SAMIC backbone features of each computed once here (reused for every
        target). A class id may appear in any subset of the references (its K heat maps are
        the references where it appears). Raises ValueError on an empty reference set, a
        malformed reference, or a class with an empty mask everywhere (persam: a class needs
        its mask; samic: its mask or clicked points)."""
        if not references:
            raise ValueError("no reference image given")
        present = [self._check(i, ref) for i, ref in enumerate(references)]
        classes = sorted(set().union(*present))
        if not classes:
            raise ValueError("the references hold no class (every mask is background)")
        self.classes = []  # set once these references are in (a failed call leaves none)
        self.reference_points = [{} for _ in references]
        self._ref_feats = []  # the features of these references only (indexes 0..K-1)
        self._class_refs = {c: [] for c in classes}
        self._targets = {}
        if self.prompter == "samic":
            self._samic_references(references, present)
        else:
            self._persam_references(references, classes)
        self.classes = classes

    @staticmethod
    def _check(index: int, ref: Reference) -> set[int]:
        """The classes of reference ``index`` (mask pixels, or clicked points)."""
        rgb, ids = np.asarray(ref.rgb), np.asarray(ref.ids)
        if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
            raise ValueError(f"reference {index}: expected (H, W, 3) uint8 RGB, got {rgb.shape}")
        if ids.shape != rgb.shape[:2]:
            raise ValueError(
                f"reference {index}: mask is {ids.shape[1]}x{ids.shape[0]} but the image is "
                f"{rgb.shape[1]}x{rgb.shape[0]}"
            )
        clicked = {int(k) for k, v in (ref.points or {}).items() if len(v)}
        return set(object_ids(ids)) | clicked

    def _samic_references(self, references: Sequence[Reference], present: list[set[int]]) -> None:
        assert self.net is not None
        input_size = tuple(self.net.config.input_size)
        batch = self.config.batch_size
        for start in range(0, len(references), batch):
            chunk = [ref.rgb for ref in references[start : start + batch]]
            with self.segmenter.threads.stage("samic"):
                feats = samic_features(self.net, chunk, self.device)
            self._ref_feats += [[f[i : i + 1] for f in feats] for i in range(len(chunk))]
            self.reference_feature_calls += len(chunk)
        for index, ref in enumerate(references):
            size = (ref.rgb.shape[0], ref.rgb.shape[1])
            clicked = ref.points or {}
            derive = [c for c in sorted(present[index]) if not len(clicked.get(c, ()))]
            if derive:
                self._use_reference_embedding(ref)
            for class_id in sorted(present[index]):
                if class_id in derive:
                    points, _ = prompts_from_mask(
                        self.segmenter,
                        ref.ids == class_id,
                        max_points=self.config.first_frame_max_points,
                        target_iou=self.config.first_frame_target_iou,
                    )
                else:
                    points = np.asarray(clicked[class_id], dtype=np.float32).reshape(-1, 2)
                self.reference_points[index][class_id] = points.astype(np.float32)
                heat = prompt_heat(points, size, input_size, self.config.heat_sigma)  # type: ignore[arg-type]
                self._class_refs[class_id].append(_ClassReference(index, heat.to(self.device)))

    def _persam_references(self, references: Sequence[Reference], classes: list[int]) -> None:
        per_class: dict[int, list[torch.Tensor]] = {c: [] for c in classes}
        for ref in references:
            found = object_ids(ref.ids)
            if not found:
                continue
            embedding = self._use_reference_embedding(ref)
            self.reference_feature_calls += 1
            for class_id in found:
                mask = ref.ids == class_id
                per_class[class_id].append(
                    persam_target(self.segmenter, embedding, mask, IMAGE_POOLING)
                )
        for class_id, targets in per_class.items():
            if not targets:
                raise ValueError(
                    f"class {class_id} has an empty mask in every reference (persam needs its "
                    "mask, not only points)"
                )
            mean = torch.stack(targets).mean(dim=0)
            self._targets[class_id] = mean / mean.norm()

    def _use_reference_embedding(self, ref: Reference) -> ImageEmbedding:
        embedding = ref.embedding if ref.embedding is not None else self.segmenter.embed(ref.rgb)
        self.segmenter.set_embedding(embedding)
        return embedding

    def segment(
        self,
        images: Sequence[np.ndarray],
        embeddings: Sequence[ImageEmbedding] | None = None,
    ) -> list[ImageResult]:
        """Targets (H_i, W_i, 3) uint8 (sizes may differ); the SAMIC backbone runs once per
        batch over all targets; SAM encodes each target once (unless its embedding is
        given), shared by all classes."""
        if not self.classes:
            raise RuntimeError("call set_references() before segment()")
        if embeddings is not None and len(embeddings) != len(images):
            raise ValueError(f"{len(images)} images but {len(embeddings)} embeddings")
        heats = self._heatmaps(images) if self.prompter == "samic" else None
        results = []
        for index, rgb in enumerate(images):
            embedding = embeddings[index] if embeddings is not None else None
            self.segmenter.set_embedding(embedding or self.segmenter.embed(rgb))
            size = (rgb.shape[0], rgb.shape[1])
            found: dict[int, tuple[ClassResult, Segmentation, np.ndarray]] = {}
            for class_id in self.classes:
                if heats is not None:
                    found[class_id] = self._samic_class(heats[index][class_id], size)
                else:
                    found[class_id] = self._persam_class(class_id)
            results.append(_compose(found, size))
        return results

    def _heatmaps(self, images: Sequence[np.ndarray]) -> list[dict[int, np.ndarray]]:
        """Per target, per class, SAMIC's heat map (h, w) float32 averaged over the class's
        references."""
        assert self.net is not None
        batch = self.config.batch_size
        targets: list[list[torch.Tensor]] = []
        for start in range(0, len(images), batch):
            chunk = images[start : start + batch]
            with self.segmenter.threads.stage("samic"):
                feats = samic_features(self.net, chunk, self.device)
            targets += [[f[i : i + 1] for f in feats] for i in range(len(chunk))]
        keys = [
            (t, c, r) for t in range(len(images)) for c in self.classes for r in self._class_refs[c]
        ]
        pairs = [(self._ref_feats[r.index], r.heat, targets[t]) for t, _, r in keys]
        with self.segmenter.threads.stage("samic"):
            maps = predict_heatmaps(self.net, pairs, batch)
        grouped: list[dict[int, list[np.ndarray]]] = [{c: [] for c in self.classes} for _ in images]
        for (t, c, _), heat in zip(keys, maps, strict=True):
            grouped[t][c].append(heat)
        return [{c: average_heatmaps(m) for c, m in per.items()} for per in grouped]

    def _samic_class(
        self, heat: np.ndarray, size: tuple[int, int]
    ) -> tuple[ClassResult, Segmentation, np.ndarray]:
        """One class on the current target from its heat map: peaks → one SAM prompt each."""
        peaks = find_peaks(heat, size, self.config.peaks)
        points = np.array([[p.x, p.y] for p in peaks], dtype=np.float32).reshape(-1, 2)
        segmentation, logits = self.segmenter.segment_instances([p[None] for p in points])
        threshold = self.segmenter.sam.mask_threshold
        result = ClassResult(
            points=points,
            scores=[p.score for p in peaks],
            confidence=segmentation.confidence,
            instances=[g > threshold for g in logits],
        )
        return result, segmentation, logits

    def _persam_class(self, class_id: int) -> tuple[ClassResult, Segmentation, np.ndarray]:
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


def _compose(
    found: dict[int, tuple[ClassResult, Segmentation, np.ndarray]], size: tuple[int, int]
) -> ImageResult:
    """The semantic and instance maps of one target from each class's result, its union
    segmentation and its (G, H, W) per-instance logits."""
    ids = compose_ids(
        {c: seg.mask for c, (_, seg, _) in found.items()},
        {c: seg.logits for c, (_, seg, _) in found.items()},
        size,
    )
    instances = np.zeros(size, dtype=np.uint8)
    number = 0
    for class_id, (result, _, logits) in found.items():
        result.instance_ids = [0] * len(logits)
        region = ids == class_id
        if not len(logits) or not region.any():
            continue
        owner = np.argmax(logits[:, region], axis=0)  # the instance with the highest logit
        for group in range(len(logits)):
            pixels = owner == group
            if pixels.any() and number < MAX_INSTANCES:
                number += 1
                where = np.flatnonzero(region.ravel())[pixels]
                instances.ravel()[where] = number
                result.instance_ids[group] = number
    return ImageResult(
        ids=ids, instances=instances, classes={c: r for c, (r, _, _) in found.items()}
    )
