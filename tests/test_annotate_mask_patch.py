"""A page that holds the last answer's mask (its ``mask_token``) gets only the box that
changed (``mask_patch``); drawn over the mask held, the patches give the server's whole mask."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sambox_helpers import decode_png, make_images, tiny_segmenter

from samic_vos.annotate.browser import script_client
from samic_vos.annotate.server import create_app

ACTIONS = [
    {"type": "point", "x": 20.0, "y": 20.0},
    {"type": "point", "x": 30.0, "y": 12.0},
    {"type": "new_object", "label": "blue"},  # no mask yet: an empty patch
    {"type": "point", "x": 60.0, "y": 40.0},
    {"type": "paint", "object": 2, "strokes": [[[5.0, 50.0], [30.0, 50.0]]], "radius": 4.0},
    {"type": "select", "object": 2, "instance": 0},  # nothing changes: an empty patch
    {"type": "undo"},  # the select: nothing changes
    {"type": "undo"},  # the paint
    {"type": "delete_object", "object": 1},
    {"type": "reset"},
]


def patched(mask: np.ndarray, patch: dict) -> np.ndarray:
    """``mask`` with the answer's patch drawn over it, as the page does."""
    if patch["box"] is None:
        assert patch["png"] is None
        return mask
    x0, y0, x1, y1 = patch["box"]
    out = mask.copy()
    out[y0:y1, x0:x1] = decode_png(patch["png"])
    return out


@pytest.fixture()
def client(tmp_path: Path):
    images = make_images(tmp_path / "images")
    return script_client(create_app(images, tmp_path / "annotations", tiny_segmenter()))


def test_patches_compose_to_the_servers_whole_mask(client) -> None:
    first = client.get("/api/state", params={"name": "a.png"}).json()
    held, token = decode_png(first["mask_png"]), first["mask_token"]
    boxes = []
    for action in ACTIONS:
        body = {"image": "a.png", "action": action, "mask_token": token}
        answer = client.post("/api/action", json=body).json()
        assert "mask_png" not in answer, action
        held, token = patched(held, answer["mask_patch"]), answer["mask_token"]
        boxes.append(answer["mask_patch"]["box"])
        # The whole mask, composed afresh for a page that holds none (a new tab).
        whole = client.get("/api/state", params={"name": "a.png"}).json()
        np.testing.assert_array_equal(held, decode_png(whole["mask_png"]))
        token = whole["mask_token"]  # the state's answer is now the one shown
    # Not vacuous: masks came and went, a stroke's box is its own, what did not
    # change the mask sent nothing.
    assert [k for k, box in enumerate(boxes) if box is None] == [2, 5, 6]
    x0, y0, x1, y1 = boxes[4]  # the brush stroke's box, at most: 2 x 4 pixels around it
    assert 0 <= x0 and x1 <= 35 and 45 <= y0 and y1 <= 55
    assert not held.any()


def test_a_page_holding_another_mask_gets_the_whole_mask(client) -> None:
    first = client.get("/api/state", params={"name": "a.png"}).json()
    click = {"type": "point", "x": 20.0, "y": 20.0}
    body = {"image": "a.png", "action": click, "mask_token": first["mask_token"]}
    answer = client.post("/api/action", json=body).json()
    assert "mask_patch" in answer
    # Held by another tab (its token is not the last answer's), or by a restarted server's
    # page: the whole mask.
    clicked = patched(decode_png(first["mask_png"]), answer["mask_patch"])
    assert clicked.any()
    for stale, action, expected in (
        (first["mask_token"], "undo", np.zeros_like(clicked)),
        ("0123456789abcdef", "redo", clicked),
    ):
        again = {"image": "a.png", "action": {"type": action}, "mask_token": stale}
        whole = client.post("/api/action", json=again).json()
        assert "mask_patch" not in whole
        np.testing.assert_array_equal(decode_png(whole["mask_png"]), expected)
    saved = client.post("/api/save", json={"image": "a.png", "mask_token": whole["mask_token"]})
    assert saved.json()["mask_patch"] == {"box": None, "png": None}
    refused = client.post("/api/action", json={"image": "a.png", "action": click, "mask_token": 5})
    assert refused.status_code == 400 and "mask_token" in refused.json()["detail"]


def test_only_the_image_answered_last_keeps_its_mask_for_patches(client) -> None:
    """A page switching back to an image it held gets the whole mask: the server keeps the id
    map of the last image answered only (one 1080p map is 2 MiB; a session opens thousands)."""
    a = client.get("/api/state", params={"name": "a.png"}).json()
    client.get("/api/state", params={"name": "b.jpg"})
    annotator = client.app.state.annotator
    assert [o.name for o in annotator._open.values() if o.shown is not None] == ["b.jpg"]
    body = {"image": "a.png", "action": {"type": "point", "x": 20.0, "y": 20.0}}
    answer = client.post("/api/action", json={**body, "mask_token": a["mask_token"]}).json()
    assert "mask_patch" not in answer and "mask_png" in answer
