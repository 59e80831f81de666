"""The session file of an image (``.sambox/sessions/<image>.json``): its initial state, every
action since, the undo position, the saved state and the revision, as JSON (rewritten
atomically after every action, so a killed server loses nothing)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from samic_vos.annotate.saved_annotation import CONTENT_NAME
from samic_vos.annotate.session_store import ImageState, ObjectState, Session, Step
from samic_vos.data.mask_edits import parse_edit
from samic_vos.runtime.atomic import atomic_write_text

SESSION_FORMAT = "sambox-session"
SESSION_VERSION = 1


def _state_to_dict(state: ImageState) -> dict[str, Any]:
    return {
        "objects": [
            {
                "id": o.id,
                "label": o.label,
                "instances": [[dataclasses.asdict(s) for s in inst] for inst in o.instances],
                "edits": [e.to_dict() for e in o.edits],
                "base": o.base,
            }
            for o in state.objects
        ],
        "active": list(state.active) if state.active is not None else None,
    }


def _base_name(value: Any) -> str | None:
    """A base mask's file name as a session file holds it: a plain name (no folder)."""
    if value is not None and not (isinstance(value, str) and CONTENT_NAME.fullmatch(value)):
        raise ValueError(f"base mask {str(value)[:60]!r} is not a mask file name")
    return value


def _state_from_dict(data: dict[str, Any], size: tuple[int, int]) -> ImageState:
    objects = tuple(
        ObjectState(
            id=int(o["id"]),
            label=o["label"],
            instances=tuple(
                tuple(
                    Step(
                        s["kind"],
                        tuple(float(c) for c in s["coords"]),
                        s["positive"],
                        s["refine"],
                        bool(s.get("suggested", False)),  # files written before suggestions
                    )
                    for s in inst
                )
                for inst in o["instances"]
            ),
            edits=tuple(parse_edit(e, size) for e in o.get("edits", [])),
            base=_base_name(o.get("base")),
        )
        for o in data["objects"]
    )
    active = tuple(data["active"]) if data["active"] is not None else None
    return ImageState(objects, active)  # type: ignore[arg-type]


def write_session(path: Path, image: str, session: Session) -> None:
    """Write ``session`` (of image file ``image``) to ``path`` as JSON, atomically."""
    data = {
        "format": SESSION_FORMAT,
        "version": SESSION_VERSION,
        "image": image,
        "image_size": list(session.size),
        "initial": _state_to_dict(session.initial),
        "actions": session.actions,
        "position": session.position,
        "saved": None if session.saved is None else _state_to_dict(session.saved),
        "revision": session.revision,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(data) + "\n")


def read_session(path: Path, size: tuple[int, int]) -> Session:
    """The session saved at ``path`` for an image of ``size`` (H, W).

    Raises ``ValueError`` when the file is damaged, of another format, or of another size.
    """
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if data.get("format") != SESSION_FORMAT or data.get("version") != SESSION_VERSION:
            raise ValueError("not a SAMBOX session file of a known version")
        if tuple(data["image_size"]) != tuple(size):
            raise ValueError(f"made for an image of size {data['image_size']}, not {list(size)}")
        session = Session(
            size=size,
            initial=_state_from_dict(data["initial"], size),
            actions=list(data["actions"]),
            position=int(data["position"]),
            revision=int(data.get("revision", 0)),
        )
        if data.get("saved") is not None:
            session.saved = _state_from_dict(data["saved"], size)
        elif data.get("saved_position") is not None:  # files written before `saved`
            session.saved = session.state_at(int(data["saved_position"]))
        return session
    except (
        OSError,
        KeyError,
        TypeError,
        AttributeError,
        IndexError,
        json.JSONDecodeError,
    ) as err:
        raise ValueError(f"damaged session file ({err!r})") from err
