"""Rebuild a tracker's state from a run's ``prompts.jsonl``, to continue an interrupted video.

The state before frame ``k`` is, per object, two references (:class:`CausalTracker`): the frame
where the object was last given (its mask), with the points derived there, and the frame where
it was last found, with the points that became its reference there. Both are in the records of
frames ``0 .. k-1`` (:mod:`samic_vos.inference.prompts_log`: ``given`` and ``reference``); the
frames themselves are decoded again and handed to the prompter with their written masks, from which
it rebuilds exactly the state the interrupted run held (SAMIC recomputes the frames'
features). The benchmark runner resumes sequences the same way.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from samic_vos.inference.prompter import RestoredFrame
from samic_vos.inference.prompts_log import points_of
from samic_vos.inference.tracker import CausalTracker


@dataclass
class RestorePlan:
    """Where each object's references are: ``objects[id] = (given frame, last found frame)``.

    ``objects`` is ordered as the tracker first met the objects (the order decides ties when
    masks overlap); ``frames`` is the set of frame indexes whose features are needed.
    """

    objects: dict[int, tuple[int, int]]

    @property
    def frames(self) -> set[int]:
        return {index for pair in self.objects.values() for index in pair}


def plan_restore(records: list[dict[str, Any]]) -> RestorePlan:
    """The :class:`RestorePlan` of a run whose first ``len(records)`` frames are finished."""
    first_seen: dict[int, int] = {}
    given: dict[int, int] = {}
    found: dict[int, int] = {}
    for index, record in enumerate(records):
        for key, entry in record["objects"].items():
            obj_id = int(key)
            first_seen.setdefault(obj_id, index)
            if entry.get("given"):
                given[obj_id] = index
                found[obj_id] = index
            elif entry.get("reference"):
                found[obj_id] = index
    order = sorted(first_seen, key=lambda k: (first_seen[k], k))
    return RestorePlan({k: (given[k], found[k]) for k in order if k in given})


def restore_tracker(
    tracker: CausalTracker,
    plan: RestorePlan,
    frames: dict[int, tuple[np.ndarray, np.ndarray]],
    records: list[dict[str, Any]],
    image_size: tuple[int, int],
) -> None:
    """Put ``tracker`` in the state it had after the frames of ``records``.

    ``frames`` maps every index of ``plan.frames`` to that frame's ``(rgb, ids)``: the
    decoded (H, W, 3) uint8 frame and its written (H, W) uint8 id map.
    """

    def restored(index: int, obj_id: int) -> RestoredFrame:
        rgb, ids = frames[index]
        return RestoredFrame(rgb, ids, points_of(records[index], obj_id))

    objects = {
        obj_id: (restored(given, obj_id), None if last == given else restored(last, obj_id))
        for obj_id, (given, last) in plan.objects.items()
    }
    tracker.restore(len(records), image_size, objects)
