"""What a person did on one image: objects, their instances, every click, and the undo history.

The state of an image is immutable (:class:`ImageState`); an action (a click, a box, a new
instance or object, ...) makes a new one. A session keeps the image's *initial* state (from a
saved annotation, imported masks, or empty) and the list of actions applied since, with a
position in it: undo moves the position back, redo forward, a new action drops the actions
after the position. The session file (:mod:`.session_file`) holds exactly that, so a
restarted server restores every object, instance, click and the undo history; it is rewritten
atomically after every action, so killing the server loses nothing.

Coordinates: (x, y) pixel coordinates of the upright image, x = column, y = row, pixel centres
at integers (as SAM's ``SamPredictor`` takes them).
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from typing import Any

from samic_vos.data.mask_edits import MAX_STROKES, MaskEdit, parse_edit
from samic_vos.data.sambox_format import MAX_OBJECT_ID


class ActionError(ValueError):
    """An action that does not apply (bad field, point outside the image, unknown id)."""


@dataclass(frozen=True)
class Step:
    """One prompt added to an instance: a point (``coords`` = (x, y), ``positive`` or not) or
    a box (``coords`` = (x0, y0, x1, y1), x0 <= x1, y0 <= y1). ``refine``: decode it with the
    instance's previous low-resolution logits as SAM's ``mask_input``. ``suggested``: a point
    SAMIC placed and the person accepted (:mod:`.suggest`); moving it makes it the person's."""

    kind: str  # "point" or "box"
    coords: tuple[float, ...]
    positive: bool = True
    refine: bool = False
    suggested: bool = False


@dataclass(frozen=True)
class ObjectState:
    """An object (a class in the palette mask): its id (1..254), label and instances, each a
    tuple of steps, prompted on its own; ``base``: the file name of a mask that is part of the
    object without prompts (imported as a mask, or a mask-only object reopened from its saved
    mask; its pixels are those holding ``id``), or ``None``; ``edits``: the brush and eraser
    passes applied, in order, to the union of SAM's masks of the instances and the base (the
    prompts stay what SAM was given)."""

    id: int
    label: str | None = None
    instances: tuple[tuple[Step, ...], ...] = ((),)
    edits: tuple[MaskEdit, ...] = ()
    base: str | None = None


@dataclass(frozen=True)
class ImageState:
    """Every object of one image and the instance being edited (``active`` =
    (object id, instance index), or ``None`` with no object)."""

    objects: tuple[ObjectState, ...] = ()
    active: tuple[int, int] | None = None

    def object(self, object_id: int) -> ObjectState:
        for obj in self.objects:
            if obj.id == object_id:
                return obj
        raise ActionError(f"no object with id {object_id} on this image")


def _number(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ActionError(f"'{name}' must be a finite number, got {json.dumps(value)}")
    return float(value)


def _label(value: Any) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str) or len(value) > 200:
        raise ActionError("'label' must be a string of at most 200 characters, or null")
    return value


def _object_id(action: dict[str, Any]) -> int:
    object_id = action.get("object")
    if isinstance(object_id, bool) or not isinstance(object_id, int):
        raise ActionError("'object' must be an object id")
    return object_id


def _index(action: dict[str, Any], name: str, count: int) -> int:
    """``action[name]``, an index into ``count`` items."""
    index = action.get(name)
    if isinstance(index, bool) or not isinstance(index, int):
        raise ActionError(f"'{name}' must be an integer")
    if not 0 <= index < count:
        raise ActionError(f"there is no {name} {index} (there are {count})")
    return index


def _inside(x: float, y: float, size: tuple[int, int], name: str) -> None:
    height, width = size
    if not (0 <= x <= width - 1 and 0 <= y <= height - 1):
        raise ActionError(
            f"{name} ({x:g}, {y:g}) lies outside the {width}x{height} image "
            f"(x in [0, {width - 1}], y in [0, {height - 1}])"
        )


def _replace_object(state: ImageState, new: ObjectState, active: tuple[int, int]) -> ImageState:
    objects = tuple(new if o.id == new.id else o for o in state.objects)
    return ImageState(objects, active)


def _add_step(state: ImageState, step: Step) -> ImageState:
    if state.active is None:
        state = _new_object(state, None)
    object_id, index = state.active  # type: ignore[misc]
    obj = state.object(object_id)
    instances = list(obj.instances)
    instances[index] = (*instances[index], step)
    return _replace_object(
        state, dataclasses.replace(obj, instances=tuple(instances)), (object_id, index)
    )


def _new_object(state: ImageState, label: str | None) -> ImageState:
    object_id = max((o.id for o in state.objects), default=0) + 1
    if object_id > MAX_OBJECT_ID:
        raise ActionError(f"an image holds at most {MAX_OBJECT_ID} objects (palette masks)")
    return ImageState((*state.objects, ObjectState(object_id, label)), (object_id, 0))


# The keys each action may hold: anything else is refused, so that a session file only ever
# holds what the state needs (a request cannot smuggle large fields into it).
ACTION_KEYS: dict[str, frozenset[str]] = {
    "point": frozenset({"type", "x", "y", "positive", "refine"}),
    "box": frozenset({"type", "box", "refine"}),
    "new_instance": frozenset({"type"}),
    "new_object": frozenset({"type", "label"}),
    "select": frozenset({"type", "object", "instance"}),
    "label": frozenset({"type", "object", "label"}),
    "reset": frozenset({"type"}),
    "delete_object": frozenset({"type", "object"}),
    "delete_step": frozenset({"type", "object", "instance", "step"}),
    "move_step": frozenset({"type", "object", "instance", "step", "x", "y"}),
    "paint": frozenset({"type", "object", "strokes", "radius", "erase", "continues"}),
    "accept_suggestion": frozenset({"type", "objects"}),
    "undo": frozenset({"type"}),
    "redo": frozenset({"type"}),
}
# The action types that are a person's own click (or drag) on the image: what the
# clicks-per-image statistic counts (:mod:`.suggest`).
CLICK_ACTIONS = frozenset({"point", "box", "move_step", "delete_step"})
MAX_SUGGESTED_POINTS = 64  # points one accepted suggestion may add, all objects together


def check_action(action: Any) -> str:
    """The type of ``action`` (a decoded JSON object), checked to hold only its type's keys.

    Raises :class:`ActionError` for a non-object, an unknown type or an unknown key."""
    if not isinstance(action, dict) or not isinstance(action.get("type"), str):
        raise ActionError("an action is a JSON object with a string 'type'")
    kind = action["type"]
    allowed = ACTION_KEYS.get(kind)
    if allowed is None:
        raise ActionError(f"unknown action type '{kind[:40]}' ({', '.join(ACTION_KEYS)})")
    unknown = sorted(set(action) - allowed)
    if unknown:
        raise ActionError(
            f"unknown key '{unknown[0][:40]}' in a '{kind}' action (it takes "
            f"{', '.join(sorted(allowed))})"
        )
    return kind


def apply_action(state: ImageState, action: Any, size: tuple[int, int]) -> ImageState:
    """The state after ``action`` (a decoded JSON object) on an image of ``size`` (H, W).

    Actions: ``{"type": "point", "x", "y", "positive": bool, "refine": bool}``,
    ``{"type": "box", "box": [x0, y0, x1, y1], "refine": bool}`` (corners in any order),
    ``{"type": "new_instance"}``, ``{"type": "new_object", "label": str | null}``,
    ``{"type": "select", "object": id, "instance": index}``,
    ``{"type": "label", "object": id, "label": str | null}``, ``{"type": "reset"}`` (removes
    every object), ``{"type": "delete_object", "object": id}``,
    ``{"type": "delete_step", "object": id, "instance": k, "step": j}`` (one point or box),
    ``{"type": "move_step", "object": id, "instance": k, "step": j, "x", "y"}`` (one point),
    ``{"type": "paint", "object": id, "strokes": [[[x, y], ...], ...], "radius": r,
    "erase": bool}`` (a brush or eraser pass on the object's mask,
    :func:`~samic_vos.data.mask_edits.parse_edit`; ``"continues": true`` marks the next part
    of a drag too long for one request, which :meth:`Session.act` joins to the part before).
    ``{"type": "accept_suggestion", "objects": [{"object": id, "label", "points": [[x, y],
    ...]}]}``: SAMIC's suggested points, one instance each, in one step (undo removes them all).
    Points and boxes go to the active instance (a first one makes object 1). Keys other than
    these are refused (:func:`check_action`). Raises :class:`ActionError` saying what is
    wrong.
    """
    kind = check_action(action)
    refine = action.get("refine", False)
    if not isinstance(refine, bool):
        raise ActionError("'refine' must be true or false")
    if kind == "point":
        x, y = _number(action.get("x"), "x"), _number(action.get("y"), "y")
        _inside(x, y, size, "point")
        positive = action.get("positive", True)
        if not isinstance(positive, bool):
            raise ActionError("'positive' must be true or false")
        return _add_step(state, Step("point", (x, y), positive, refine))
    if kind == "box":
        box = action.get("box")
        if not isinstance(box, list) or len(box) != 4:
            raise ActionError("'box' must be [x0, y0, x1, y1]")
        x0, y0, x1, y1 = (_number(v, "box") for v in box)
        _inside(x0, y0, size, "box corner")
        _inside(x1, y1, size, "box corner")
        corners = (min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1))
        return _add_step(state, Step("box", corners, True, refine))
    if kind == "new_object":
        return _new_object(state, _label(action.get("label")))
    if kind == "new_instance":
        if state.active is None:
            return _new_object(state, None)
        obj = state.object(state.active[0])
        grown = dataclasses.replace(obj, instances=(*obj.instances, ()))
        return _replace_object(state, grown, (obj.id, len(obj.instances)))
    if kind == "select":
        obj = state.object(_object_id(action))
        index = _index({"instance": 0, **action}, "instance", len(obj.instances))
        return ImageState(state.objects, (obj.id, index))
    if kind == "label":
        obj = state.object(_object_id(action))
        obj = dataclasses.replace(obj, label=_label(action.get("label")))
        return _replace_object(state, obj, state.active or (obj.id, 0))
    if kind == "reset":
        return ImageState()
    if kind == "accept_suggestion":
        return _accept_suggestion(state, action.get("objects"), size)
    if kind == "delete_object":
        obj = state.object(_object_id(action))
        objects = tuple(o for o in state.objects if o.id != obj.id)
        keep = state.active is not None and state.active[0] != obj.id
        active = state.active if keep else ((objects[-1].id, 0) if objects else None)
        return ImageState(objects, active)
    if kind == "paint":
        obj = state.object(_object_id(action))
        try:
            edit = parse_edit(action, size)
        except ValueError as err:
            raise ActionError(str(err)) from None
        painted = dataclasses.replace(obj, edits=(*obj.edits, edit))
        keep = state.active is not None and state.active[0] == obj.id
        return _replace_object(state, painted, state.active if keep else (obj.id, 0))  # type: ignore[arg-type]
    if kind in ("delete_step", "move_step"):
        obj = state.object(_object_id(action))
        index = _index(action, "instance", len(obj.instances))
        steps = obj.instances[index]
        step = _index(action, "step", len(steps))
        if kind == "delete_step":
            changed: tuple[Step, ...] = ()
        else:
            if steps[step].kind != "point":
                raise ActionError("only a point can be moved (delete the box and drag a new one)")
            x, y = _number(action.get("x"), "x"), _number(action.get("y"), "y")
            _inside(x, y, size, "point")
            changed = (dataclasses.replace(steps[step], coords=(x, y), suggested=False),)
        instances = list(obj.instances)
        instances[index] = steps[:step] + changed + steps[step + 1 :]
        grown = dataclasses.replace(obj, instances=tuple(instances))
        return _replace_object(state, grown, (obj.id, index))
    raise ActionError(f"'{kind}' is not an action on a state (undo and redo are the session's)")


def _accept_suggestion(state: ImageState, objects: Any, size: tuple[int, int]) -> ImageState:
    """``state`` with SAMIC's suggested points added, each point a new instance (an instance
    per peak, as `segment` prompts them) of its object: the object of that id, made (with its
    label) if the image has none. ``objects``: ``[{"object": id, "label": str | null,
    "points": [[x, y], ...]}]``, (x, y) image pixels."""
    if not isinstance(objects, list) or not objects:
        raise ActionError("'objects' must be a non-empty list of {object, label, points}")
    total = 0
    active: tuple[int, int] | None = None
    for entry in objects:
        if not isinstance(entry, dict) or set(entry) - {"object", "label", "points"}:
            raise ActionError("each suggested object is {object, label, points}")
        object_id = _object_id(entry)
        if not 1 <= object_id <= MAX_OBJECT_ID:
            raise ActionError(f"'object' must be an id in 1..{MAX_OBJECT_ID}")
        points = entry.get("points")
        if not isinstance(points, list) or not points:
            raise ActionError("'points' must be a non-empty list of [x, y]")
        total += len(points)
        if total > MAX_SUGGESTED_POINTS:
            raise ActionError(f"a suggestion holds at most {MAX_SUGGESTED_POINTS} points")
        steps = []
        for point in points:
            if not isinstance(point, list) or len(point) != 2:
                raise ActionError("'points' must be a non-empty list of [x, y]")
            x, y = _number(point[0], "x"), _number(point[1], "y")
            _inside(x, y, size, "suggested point")
            steps.append((Step("point", (x, y), True, False, True),))
        known = [o for o in state.objects if o.id == object_id]
        if known:
            kept = tuple(i for i in known[0].instances if i)  # an empty instance goes
            obj = dataclasses.replace(known[0], instances=(*kept, *steps))
            state = _replace_object(state, obj, (object_id, len(kept)))
        else:
            obj = ObjectState(object_id, _label(entry.get("label")), tuple(steps))
            state = ImageState((*state.objects, obj), (object_id, 0))
        active = active or state.active
    return ImageState(state.objects, active)


@dataclass
class Session:
    """An image's initial state, the actions applied since, the undo position, what is on disk
    and a revision number.

    ``saved``: the state the files on disk hold (``None``: no annotation file; an empty state
    is also what an explicit "nothing here" file holds). ``revision`` grows with every change
    (action, undo, redo, save): a page that sends the revision it last saw learns when another
    tab changed the image since (:class:`StaleRevision`).
    """

    size: tuple[int, int]
    initial: ImageState = field(default_factory=ImageState)
    actions: list[dict[str, Any]] = field(default_factory=list)
    position: int = 0
    saved: ImageState | None = None
    revision: int = 0
    _states: list[ImageState] = field(default_factory=list, repr=False)
    # The revision right after the last paint step, while nothing else came: a part marked
    # "continues" joins that step only then (an undo, a save, any action between ends a drag).
    _open_paint: int | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        self._states = [self.initial]
        for action in self.actions:
            self._states.append(apply_action(self._states[-1], action, self.size))
        if not 0 <= self.position <= len(self.actions):
            raise ActionError(f"undo position {self.position} out of range")

    @property
    def state(self) -> ImageState:
        return self._states[self.position]

    def state_at(self, position: int) -> ImageState:
        """The state after the first ``position`` actions."""
        return self._states[position]

    @property
    def can_undo(self) -> bool:
        return self.position > 0

    @property
    def can_redo(self) -> bool:
        return self.position < len(self.actions)

    @property
    def dirty(self) -> bool:
        """Whether the current state differs from what is on disk (no file: the empty state,
        so an image merely looked at is never dirty)."""
        return self.state != (self.saved if self.saved is not None else ImageState())

    def check_revision(self, revision: int | None) -> None:
        """Raise :class:`StaleRevision` unless ``revision`` (``None``: not checked) is the
        current one."""
        if revision is not None and revision != self.revision:
            raise StaleRevision(self.revision, revision)

    def act(self, action: Any) -> None:
        """Apply ``action``: undo, redo, or one of :func:`apply_action`'s (the actions after the
        position go)."""
        kind = check_action(action)
        if kind == "undo":
            if not self.can_undo:
                raise ActionError("nothing to undo")
            self.position -= 1
        elif kind == "redo":
            if not self.can_redo:
                raise ActionError("nothing to redo")
            self.position += 1
        else:
            action, base = self._step(action)
            new = apply_action(self._states[base], action, self.size)
            del self.actions[base:], self._states[base + 1 :]
            self.actions.append(action)
            self._states.append(new)
            self.position = base + 1
        self.revision += 1
        self._open_paint = self.revision if kind == "paint" else None

    def _step(self, action: dict[str, Any]) -> tuple[dict[str, Any], int]:
        """``action`` as the session stores it, and the position it applies at.

        A ``paint`` marked ``"continues": true`` (the next part of a drag too long for one
        request) is joined to the step before it, which it replaces, when that step is the
        paint this session took last with nothing since (no undo, redo, save or other action:
        the same drag), of the same object, radius and mode, with room for its strokes (at
        most :data:`~samic_vos.data.mask_edits.MAX_STROKES`): one drag, one undo. Otherwise,
        and without the mark, it is a step of its own. The part is checked on its own first;
        the mark is not stored.
        """
        if action["type"] != "paint" or "continues" not in action:
            return action, self.position
        continues = action["continues"]
        if not isinstance(continues, bool):
            raise ActionError("'continues' must be true or false")
        action = {key: value for key, value in action.items() if key != "continues"}
        try:
            part = parse_edit(action, self.size)
        except ValueError as err:
            raise ActionError(str(err)) from None
        if not continues or self.position == 0 or self._open_paint != self.revision:
            return action, self.position
        before = self.actions[self.position - 1]
        if (
            before.get("type") != "paint"
            or any(before.get(key) != action.get(key) for key in ("object", "radius"))
            or before.get("erase", False) != part.erase
            or len(before["strokes"]) + len(part.strokes) > MAX_STROKES
        ):
            return action, self.position
        return {**before, "strokes": [*before["strokes"], *action["strokes"]]}, self.position - 1

    def mark_saved(self) -> None:
        """The current state is now what the files hold."""
        self.saved = self.state
        self.revision += 1


class StaleRevision(Exception):
    """A request made from an outdated view of an image (another tab changed it; HTTP 409)."""

    def __init__(self, current: int, sent: int) -> None:
        super().__init__(
            f"this image changed in another tab or window (revision {current}, this page "
            f"showed {sent}); reloaded it, nothing was changed: repeat the last step"
        )
        self.current = current
