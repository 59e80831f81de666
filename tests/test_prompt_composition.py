"""SAMBOX's incremental composition (a click recomposes only the object it changed) gives the
same id map as composing every object afresh, ties (painted pixels) included."""

from __future__ import annotations

import dataclasses

import numpy as np
from sambox_helpers import HEIGHT, WIDTH, synthetic_image, tiny_segmenter

from samic_vos.annotate.prompt_decoding import PromptDecoder
from samic_vos.annotate.session_store import ImageState, ObjectState, Step
from samic_vos.data.mask_edits import MaskEdit

SIZE = (HEIGHT, WIDTH)


def point(x: float, y: float, positive: bool = True) -> Step:
    return Step("point", (x, y), positive)


def paint(x0: float, y0: float, x1: float, y1: float, erase: bool = False) -> MaskEdit:
    return MaskEdit((((x0, y0), (x1, y1)),), 6.0, erase)


def grow(state: ImageState, object_id: int, **change) -> ImageState:
    objects = tuple(
        dataclasses.replace(o, **change) if o.id == object_id else o for o in state.objects
    )
    return ImageState(objects, state.active)


def test_incremental_composition_equals_a_fresh_one() -> None:
    segmenter = tiny_segmenter()
    segmenter.set_frame(synthetic_image(0))
    # Objects 3 and 5 both painted over the same band: a tie (+inf) the first listed wins.
    band = paint(5, 30, 75, 30)
    states = [
        ImageState(
            (
                ObjectState(3, None, ((point(20, 20),),), edits=(band,)),
                ObjectState(7, None, ((point(60, 40),),)),
                ObjectState(5, None, ((point(50, 15),),), edits=(band,)),
            ),
            (7, 0),
        )
    ]
    extra = (point(25, 45), point(65, 50, False), point(10, 55))
    for k in range(len(extra)):  # clicks on object 7, then on 5 (listed after 3: loses ties)
        last = states[-1]
        states.append(grow(last, 7, instances=((point(60, 40), *extra[: k + 1]),)))
    states.append(grow(states[-1], 5, edits=(band, paint(40, 5, 40, 55))))
    states.append(grow(states[-1], 5, edits=(band, paint(40, 5, 40, 55), paint(0, 0, 79, 59))))
    states.append(grow(states[-1], 3, edits=(band, paint(30, 0, 30, 59, erase=True))))
    states.append(states[2])  # undo of several changes at once
    states.append(ImageState(states[-1].objects[1:], (7, 0)))  # an object deleted
    states.append(states[3])

    incremental = PromptDecoder(segmenter)
    for state in states:
        composed = incremental.compose("a.png", state, SIZE)
        fresh = PromptDecoder(segmenter).compose("a.png", state, SIZE)
        np.testing.assert_array_equal(composed.ids, fresh.ids)
        for object_id, result in fresh.objects.items():
            np.testing.assert_array_equal(composed.objects[object_id].mask, result.mask)
    # The cases above are not vacuous: objects overlap, and ties went both ways.
    ids = PromptDecoder(segmenter).compose("a.png", states[4], SIZE).ids
    assert {3, 5, 7} <= set(np.unique(ids).tolist())
    assert (ids[30, 5:75] == 3).all()  # object 3's band beats 5's (listed first)
