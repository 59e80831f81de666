"""An image's prompts → SAM masks: each instance decoded on its own, an object's instances
unioned with the object's base mask (imported as a mask; it beats every SAM mask), then the
object's brush and eraser edits applied (:mod:`~samic_vos.data.mask_edits`;
a painted pixel beats every SAM mask), objects composed into one id map (a pixel claimed twice
goes to the higher logit; painted twice, to the object listed first).

Decoding results are memoised per (image, instance steps), so a click re-decodes only the
instance it changed, and undo/redo are instant. With ``refine`` on a step, the instance's
previous low-resolution logits are fed back as SAM's ``mask_input``.

Composing is incremental too (at 1080p each object's full-size pass costs milliseconds, 40
objects most of a click): the objects' results of the last image composed are kept per
object state, and when a composition differs from the one before in a single object, the
composition of all the other objects is kept (:class:`_Rest`), so that the next changes of
that object compose it alone on top.
"""

from __future__ import annotations

import functools
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from samic_vos.annotate.session_store import ImageState, ObjectState, Step
from samic_vos.data.mask_edits import apply_edits
from samic_vos.inference.tracker import compose_best
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


@dataclass
class _Rest:
    """The composition of every object of an image but ``apart``: its id map (H, W) uint8
    and winning logits (H, W) float32, for ``others`` (the other objects' states, in order)
    with ``apart`` at ``position`` of the image's objects."""

    image_key: str
    apart: int
    position: int
    others: tuple[ObjectState, ...]
    ids: np.ndarray
    best: np.ndarray


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
        # The last image composed: its objects' states and results, by id; its objects' states
        # and id map.
        self._image_key: str | None = None
        self._objects: dict[int, tuple[ObjectState, ObjectResult]] = {}
        self._last: tuple[ObjectState, ...] = ()
        self._last_ids = np.zeros((0, 0), dtype=np.uint8)
        self._rest: _Rest | None = None

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
        if image_key != self._image_key:
            self._image_key, self._objects, self._last, self._rest = image_key, {}, (), None
        objects = {}
        for obj in state.objects:  # an object whose state is unchanged keeps its result
            known = self._objects.get(obj.id)
            if known is None or known[0] != obj:
                known = (obj, self._object(image_key, obj, size))
            objects[obj.id] = known
        self._objects = objects
        results = {k: r for k, (_, r) in self._objects.items()}
        ids = self._compose(image_key, state.objects, results, size)
        self._last, self._last_ids = state.objects, ids
        return Composite(ids=ids, objects=results)

    def _object(self, image_key: str, obj: ObjectState, size: tuple[int, int]) -> ObjectResult:
        """Object ``obj``'s instances decoded and unioned with its base, its edits applied."""
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
        return ObjectResult(
            mask=mask,
            logits=logits,
            confidence=confidence,
            instance_ious=[None if r is None else r.iou for r in decoded],
        )

    def _compose(
        self,
        image_key: str,
        objects: tuple[ObjectState, ...],
        results: dict[int, ObjectResult],
        size: tuple[int, int],
    ) -> np.ndarray:
        """The id map (H, W) uint8 of ``objects`` (their ``results``): the kept composition of
        the others and the one object that changed since the last composition, when only one
        did; the last id map when none did; every object composed otherwise."""
        changed = [
            k
            for k, (now, before) in enumerate(zip(objects, self._last, strict=False))
            if now != before
        ]
        if len(objects) == len(self._last) and not changed and self._last_ids.shape == size:
            return self._last_ids
        if len(objects) != len(self._last) or len(changed) != 1:
            return compose_best(
                {k: r.mask for k, r in results.items()},
                {k: r.logits for k, r in results.items()},
                size,
            )[0]
        position = changed[0]
        apart = objects[position].id
        others = objects[:position] + objects[position + 1 :]
        rest = self._rest
        if rest is None or (rest.image_key, rest.apart, rest.position, rest.others) != (
            image_key,
            apart,
            position,
            others,
        ):
            ids, best = compose_best(
                {o.id: results[o.id].mask for o in others},
                {o.id: results[o.id].logits for o in others},
                size,
            )
            rest = self._rest = _Rest(image_key, apart, position, others, ids, best)
        # Ties go to the object listed first: to ``apart`` over the others listed after it.
        after = np.zeros(256, dtype=bool)
        after[[o.id for o in others[position:]]] = True
        result = results[apart]
        wins = result.mask & (
            (result.logits > rest.best) | ((result.logits == rest.best) & after[rest.ids])
        )
        return np.where(wins, np.uint8(apart), rest.ids)
