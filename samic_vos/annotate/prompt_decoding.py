"""An image's prompts → SAM masks: each instance decoded on its own, an object's instances
unioned with the object's base mask (imported as a mask; it beats every SAM mask), then the
object's brush and eraser edits applied (:mod:`~samic_vos.data.mask_edits`;
a painted pixel beats every SAM mask), objects composed into one id map (a pixel claimed twice
goes to the higher logit; painted twice, to the object listed first).

Decoding results are memoised per (image, instance steps), so a click re-decodes only the
instance it changed, and undo/redo are instant. With ``refine`` on a step, the instance's
previous low-resolution logits are fed back as SAM's ``mask_input``.
"""

from __future__ import annotations

import functools
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from samic_vos.annotate.session_store import ImageState, Step
from samic_vos.data.mask_edits import apply_edits
from samic_vos.inference.tracker import compose_ids
from samic_vos.sam.segmenter import PromptResult, SamSegmenter, weighted_confidence

# Memory for remembered instance results (full-size float32 logits and a bool mask each:
# 2 MiB for 854x480, 60 MiB for a 12-megapixel photo); the least recently used go first.
MEMO_BYTES = 512 * 2**20


@dataclass(frozen=True)
class InstancePrompts:
    """An instance's SAM prompt: (N, 2) float32 (x, y) ``points``, (N,) int ``labels`` (1
    positive, 0 negative), ``box`` (4,) float32 (x0, y0, x1, y1) or ``None``."""

    points: np.ndarray
    labels: np.ndarray
    box: np.ndarray | None

    @property
    def decodable(self) -> bool:
        """A mask needs a positive point or a box (negatives alone say nothing to keep)."""
        return bool(self.labels.any()) or self.box is not None


def instance_prompts(steps: tuple[Step, ...]) -> InstancePrompts:
    """The prompt of ``steps``: all their points, and the last box (a new box replaces one)."""
    points = [s.coords for s in steps if s.kind == "point"]
    labels = [int(s.positive) for s in steps if s.kind == "point"]
    boxes = [s.coords for s in steps if s.kind == "box"]
    return InstancePrompts(
        points=np.array(points, dtype=np.float32).reshape(-1, 2),
        labels=np.array(labels, dtype=np.int64),
        box=np.array(boxes[-1], dtype=np.float32) if boxes else None,
    )


@dataclass
class ObjectResult:
    """One object's mask (H, W) bool (its instances' union with its base, then its edits) and
    logits (H, W) float32 (+inf on the base and where painted, -inf where erased), its
    confidence (the instances' clipped IoUs weighted by their areas) and per instance SAM's raw
    predicted IoU (``None`` for an instance without a positive point or box)."""

    mask: np.ndarray
    logits: np.ndarray
    confidence: float
    instance_ious: list[float | None]


@dataclass
class Composite:
    """Every object's result and the id map (H, W) uint8 composed from them."""

    ids: np.ndarray
    objects: dict[int, ObjectResult]


def _size(result: PromptResult | None) -> int:
    if result is None:
        return 0
    return result.logits.nbytes + result.mask.nbytes + result.low_res_logits.nbytes


class PromptDecoder:
    """Decodes instances against the segmenter's current embedding, memoised.

    The caller sets the image's embedding on ``segmenter`` before decoding, and names the image
    with ``image_key`` (results of different images never mix). ``read_base(file name, (H, W))``
    gives the id map (H, W) uint8 of an object's base mask (objects with a ``base``).
    """

    def __init__(
        self,
        segmenter: SamSegmenter,
        read_base: Callable[[str, tuple[int, int]], np.ndarray] | None = None,
    ) -> None:
        self.segmenter = segmenter
        self.read_base = read_base
        self.decoded = 0  # SAM decoder calls made
        self._bytes = 0
        self._memo: OrderedDict[tuple[str, tuple[Step, ...]], PromptResult | None] = OrderedDict()

    def instance(self, image_key: str, steps: tuple[Step, ...]) -> PromptResult | None:
        """SAM's mask of an instance, ``None`` when it has no positive point nor box."""
        # A run of refining steps needs each earlier result: start from the first missing one.
        start = len(steps)
        while (
            start > 1
            and steps[start - 1].refine
            and (image_key, steps[: start - 1]) not in self._memo
        ):
            start -= 1
        result = None
        for end in range(start, len(steps) + 1):
            result = self._decode(image_key, steps[:end])
        return result

    def _decode(self, image_key: str, steps: tuple[Step, ...]) -> PromptResult | None:
        key = (image_key, steps)
        if key in self._memo:
            self._memo.move_to_end(key)
            return self._memo[key]
        prompts = instance_prompts(steps)
        result = None
        if prompts.decodable:
            mask_input = None
            if steps[-1].refine and len(steps) > 1:
                previous = self._memo.get((image_key, steps[:-1]))
                mask_input = previous.low_res_logits if previous is not None else None
            result = self.segmenter.prompt(
                prompts.points, prompts.labels, prompts.box, mask_input=mask_input
            )
            self.decoded += 1
        self._memo[key] = result
        self._bytes += _size(result)
        while self._bytes > MEMO_BYTES and len(self._memo) > 1:
            self._bytes -= _size(self._memo.popitem(last=False)[1])
        return result

    def compose(self, image_key: str, state: ImageState, size: tuple[int, int]) -> Composite:
        """Every object of ``state`` decoded and composed on an image of ``size`` (H, W)."""
        results: dict[int, ObjectResult] = {}
        for obj in state.objects:
            decoded = [self.instance(image_key, steps) for steps in obj.instances]
            kept = [r for r in decoded if r is not None]
            if kept:
                logits = functools.reduce(np.maximum, [r.logits for r in kept])
                scores = np.clip([r.iou for r in kept], 0.0, 1.0)
                confidence = weighted_confidence(scores, [r.mask.sum() for r in kept])
            else:
                logits = np.full(size, -np.inf, dtype=np.float32)
                confidence = 0.0
            mask = logits > self.segmenter.mask_threshold
            if obj.base is not None and self.read_base is not None:
                base = self.read_base(obj.base, size) == obj.id
                mask, logits = mask | base, np.where(base, np.float32(np.inf), logits)
            mask, logits = apply_edits(mask, logits, obj.edits)
            results[obj.id] = ObjectResult(
                mask=mask,
                logits=logits,
                confidence=confidence,
                instance_ious=[None if r is None else r.iou for r in decoded],
            )
        ids = compose_ids(
            {k: r.mask for k, r in results.items()},
            {k: r.logits for k, r in results.items()},
            size,
        )
        return Composite(ids=ids, objects=results)
