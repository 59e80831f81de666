"""Image few-shot segmentation: K labelled reference images → masks of each class on new images.

One :class:`FewShotSegmenter` holds the references (:meth:`FewShotSegmenter.set_references`)
and segments any number of targets with them (:meth:`FewShotSegmenter.segment`), with one
image prompter (:class:`~samic_vos.inference.prompter.ImagePrompter`, built by name by
:func:`samic_vos.inference.prompters.build_image_prompter`; the names are the video
prompters', :data:`~samic_vos.inference.prompter.IMAGE_PROMPTERS`):

- ``samic`` (the paper, :class:`~samic_vos.inference.samic_prompter.SamicImagePrompter`): per
  class, SAMIC's heat maps from the K references are averaged, the peak detector gives one
  point per region, and each point is its own SAM prompt: one instance each (the paper's
  several airplanes). The class mask is the union of its instances.
- ``persam`` (:class:`~samic_vos.inference.baseline_prompters.PerSamImagePrompter`): PerSAM's
  training-free image recipe; one instance per class.

Reference features are computed once, in :meth:`~FewShotSegmenter.set_references`
(:attr:`~FewShotSegmenter.reference_feature_calls` counts them); per call of
:meth:`~FewShotSegmenter.segment` the prompter prepares the whole batch of targets at once
(SAMIC: its backbone over the targets, its head over all (target, class, reference) pairs, in
batches of ``config.batch_size``); SAM encodes each target once (unless its embedding is
given), shared by all classes. Pixels claimed by two classes go to the higher SAM logit
(:func:`samic_vos.inference.tracker.compose_ids`), and within a class, to the instance with the
higher logit.

Coordinates: points are float (x, y) pixels, x right, y down, pixel centres at integers.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from samic_vos.data.mask_io import binary_mask_hint, object_ids
from samic_vos.inference.prompter import ClassFound, ClassResult, Reference, TrackerConfig
from samic_vos.inference.prompters import build_image_prompter
from samic_vos.inference.tracker import compose_ids
from samic_vos.model.samic_net import SamicNet
from samic_vos.runtime.errors import size_text
from samic_vos.sam.segmenter import ImageEmbedding, SamSegmenter

MAX_INSTANCES = 254  # instance ids of a uint8 PNG (255 is void); later instances are dropped


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


class FewShotSegmenter:
    """Segments targets from K references with one prompter (module docstring).

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
        self.prompter = build_image_prompter(prompter, segmenter, config, net, device)
        self.segmenter = segmenter
        self.config = config
        self.classes: list[int] = []

    @property
    def reference_feature_calls(self) -> int:
        """Reference images whose features were computed (once per reference set)."""
        return self.prompter.reference_feature_calls

    @property
    def reference_points(self) -> list[dict[int, np.ndarray]]:
        """Per reference, per class, the prompts used on it ((N, 2) float32 (x, y)); samic."""
        return self.prompter.reference_points

    def set_references(self, references: Sequence[Reference]) -> None:
        """K references; the prompter's reference features are computed once here (reused for
        every target). A class id may appear in any subset of the references (its K heat maps
        are the references where it appears). Raises ValueError on an empty reference set, a
        malformed reference, or a class with an empty mask everywhere (persam: a class needs
        its mask; samic: its mask or clicked points)."""
        if not references:
            raise ValueError("no reference image given")
        present = [self._check(i, ref) for i, ref in enumerate(references)]
        classes = sorted(set().union(*present))
        if not classes:
            hint = binary_mask_hint([np.asarray(ref.ids) for ref in references])
            raise ValueError(
                f"the references hold no class (every mask is background or void){hint}"
            )
        self.classes = []  # set once these references are in (a failed call leaves none)
        self.prompter.set_references(references, present)
        self.classes = classes

    @staticmethod
    def _check(index: int, ref: Reference) -> set[int]:
        """The classes of reference ``index`` (mask pixels, or clicked points)."""
        rgb, ids = np.asarray(ref.rgb), np.asarray(ref.ids)
        if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
            raise ValueError(f"reference {index}: expected (H, W, 3) uint8 RGB, got {rgb.shape}")
        if ids.shape != rgb.shape[:2]:
            raise ValueError(
                f"reference {index}: mask is {size_text(ids.shape)} but the image is "
                f"{size_text(rgb.shape)}"
            )
        clicked = {int(k) for k, v in (ref.points or {}).items() if len(v)}
        return set(object_ids(ids)) | clicked

    def segment(
        self,
        images: Sequence[np.ndarray],
        embeddings: Sequence[ImageEmbedding] | None = None,
    ) -> list[ImageResult]:
        """Targets (H_i, W_i, 3) uint8 (sizes may differ); the prompter prepares the batch
        once (SAMIC: its backbone over all targets, its head over all pairs); SAM encodes each
        target once (unless its embedding is given), shared by all classes."""
        if not self.classes:
            raise RuntimeError("call set_references() before segment()")
        if embeddings is not None and len(embeddings) != len(images):
            raise ValueError(f"{len(images)} images but {len(embeddings)} embeddings")
        self.prompter.prepare(images)
        results = []
        for index, rgb in enumerate(images):
            embedding = embeddings[index] if embeddings is not None else None
            self.segmenter.set_embedding(embedding or self.segmenter.embed(rgb))
            size = (rgb.shape[0], rgb.shape[1])
            found = {c: self.prompter.prompt_class(index, c, size) for c in self.classes}
            results.append(_compose(found, size))
        return results


def _compose(found: dict[int, ClassFound], size: tuple[int, int]) -> ImageResult:
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
