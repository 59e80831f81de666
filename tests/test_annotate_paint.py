"""SAMBOX's brush and eraser: exact pixels painted and erased, undo, restart and saved files."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sambox_helpers import decode_png, near, saved_mask

from samic_vos.annotate.browser import script_client
from samic_vos.annotate.server import create_app
from samic_vos.data.mask_io import read_mask, write_mask
from samic_vos.data.sambox_format import read_annotation
from samic_vos.training.training_pairs import pairs_from_sambox

A = (20.0, 20.0)  # inside the red square


def client_for(folders, segmenter):
    return script_client(create_app(*folders, segmenter))


def post(client, action, status=200, image="a.png"):
    response = client.post("/api/action", json={"image": image, "action": action})
    assert response.status_code == status, response.text
    return response.json()


def paint(object_id, points, radius, erase=False):
    return {
        "type": "paint",
        "object": object_id,
        "strokes": [[list(p) for p in points]],
        "radius": radius,
        "erase": erase,
    }


BRUSH = [(70.0, 5.0)]  # a disc in the background, far from the red square
ERASER = [(12.0, 20.0), (30.0, 24.0)]


def test_brush_and_eraser_change_exactly_their_pixels_and_undo(folders, segmenter):
    with client_for(folders, segmenter) as client:
        sam = post(client, {"type": "point", "x": A[0], "y": A[1]})
        sam_ids = decode_png(sam["mask_png"])
        assert (sam_ids == 1).sum() > 0
        painted = post(client, paint(1, BRUSH, 3))
        disc = near(BRUSH, 3)
        assert disc.sum() == 29  # the 29 pixel centres within 3 px of (70, 5)
        np.testing.assert_array_equal(decode_png(painted["mask_png"]), np.where(disc, 1, sam_ids))
        erased = post(client, paint(1, ERASER, 2.5, erase=True))
        capsule = near(ERASER, 2.5)
        assert (capsule & (sam_ids == 1)).any()  # the eraser takes SAM's pixels away
        expected = np.where(capsule, 0, np.where(disc, 1, sam_ids))
        np.testing.assert_array_equal(decode_png(erased["mask_png"]), expected)
        # The prompts are untouched: one click, two edits.
        (obj,) = erased["objects"]
        assert [len(i["steps"]) for i in obj["instances"]] == [1] and obj["edits"] == 2
        assert erased["iou"] == sam["iou"]
        assert post(client, {"type": "undo"})["mask_png"] == painted["mask_png"]
        assert post(client, {"type": "undo"})["mask_png"] == sam["mask_png"]
        assert post(client, {"type": "redo"})["mask_png"] == painted["mask_png"]
        assert post(client, {"type": "redo"})["mask_png"] == erased["mask_png"]
        # A new click re-runs SAM from the prompts, then the edits again, in order.
        clicked = post(client, {"type": "point", "x": 25.0, "y": 15.0})
        post(client, {"type": "undo"})
        post(client, {"type": "undo"})
        post(client, {"type": "undo"})
        unpainted = post(client, {"type": "point", "x": 25.0, "y": 15.0})
        sam_two = decode_png(unpainted["mask_png"])
        np.testing.assert_array_equal(
            decode_png(clicked["mask_png"]), np.where(capsule, 0, np.where(disc, 1, sam_two))
        )


def test_painted_pixels_win_over_another_objects_mask(folders, segmenter):
    with client_for(folders, segmenter) as client:
        first = decode_png(post(client, {"type": "point", "x": A[0], "y": A[1]})["mask_png"])
        post(client, {"type": "new_object"})
        stroke = [(20.0, 20.0), (30.0, 20.0)]
        view = post(client, paint(2, stroke, 2))
    ids = decode_png(view["mask_png"])
    band = near(stroke, 2)
    np.testing.assert_array_equal(ids, np.where(band, 2, first))
    assert (band & (first == 1)).any()


def test_save_writes_the_corrected_mask_and_edits_survive_restarts(folders, segmenter):
    images, annotations = folders
    with client_for(folders, segmenter) as client:
        post(client, {"type": "point", "x": A[0], "y": A[1]})
        post(client, paint(1, BRUSH, 3))
        post(client, paint(1, ERASER, 2.5, erase=True))
        post(client, {"type": "new_object", "label": "painted"})
        only = post(client, paint(2, [(5.0, 50.0), (15.0, 55.0)], 1.5))
        shown = client.post("/api/save", json={"image": "a.png"}).json()
    assert shown["mask_png"] == only["mask_png"]
    ids = saved_mask(annotations, "a")
    np.testing.assert_array_equal(ids, decode_png(shown["mask_png"]))
    write_mask(annotations.parent / "expected.png", decode_png(shown["mask_png"]))
    (saved_file,) = (annotations / "masks").glob("a.*.png")
    assert saved_file.read_bytes() == (annotations.parent / "expected.png").read_bytes()
    assert (ids == 2).sum() == near([(5.0, 50.0), (15.0, 55.0)], 1.5).sum()
    data = json.loads((annotations / "a.sambox.json").read_text())
    assert data["version"] == 3
    clicked, painted = data["objects"]
    assert clicked["instances"][0]["points"] == [[20, 20]]  # the prompts, as clicked
    assert clicked["edits"] == [
        {"strokes": [[[70, 5]]], "radius": 3, "erase": False},
        {"strokes": [[[12, 20], [30, 24]]], "radius": 2.5, "erase": True},
    ]
    assert painted["instances"] == [] and "sam_confidence" not in painted
    annotation = read_annotation(annotations / "a.sambox.json")
    assert [len(o.edits) for o in annotation.objects] == [2, 1]
    # Training learns from the prompts only: the painted-only object gives no points.
    assert [len(o.points) for o in annotation.objects] == [1, 0]

    # Restart with the session: the same view, the same undo history.
    with client_for(folders, segmenter) as client:
        again = client.get("/api/state", params={"name": "a.png"}).json()
        assert again["mask_png"] == shown["mask_png"] and not again["dirty"]
        assert post(client, {"type": "undo"})["objects"][1]["edits"] == 0
    # Without the session: rebuilt from the JSON, edits included.
    for session in (annotations / ".sambox/sessions").iterdir():
        session.unlink()
    with client_for(folders, segmenter) as client:
        again = client.get("/api/state", params={"name": "a.png"}).json()
        assert again["mask_png"] == shown["mask_png"] and not again["dirty"]
        assert [o["edits"] for o in again["objects"]] == [2, 1]


def test_a_drag_sent_in_parts_is_one_step_that_undo_takes_back_whole(folders, segmenter):
    """The page sends a drag over 2,000 points in parts, each after the first marked
    ``continues``: the server joins them into one edit, one undo step."""
    first, second = [(60.0, 5.0), (66.0, 8.0)], [(66.0, 8.0), (74.0, 12.0)]
    images, annotations = folders
    with client_for(folders, segmenter) as client:
        sam = post(client, {"type": "point", "x": A[0], "y": A[1]})
        post(client, {**paint(1, first, 2), "continues": False})
        both = post(client, {**paint(1, second, 2), "continues": True})
        (obj,) = both["objects"]
        assert obj["edits"] == 1
        sam_ids = decode_png(sam["mask_png"])
        painted = near(first, 2) | near(second, 2)
        np.testing.assert_array_equal(decode_png(both["mask_png"]), np.where(painted, 1, sam_ids))
        assert post(client, {"type": "undo"})["mask_png"] == sam["mask_png"]
        assert post(client, {"type": "redo"})["mask_png"] == both["mask_png"]
        # Another radius, the eraser, or no mark: steps of their own.
        post(client, {**paint(1, second, 3), "continues": True})
        post(client, {**paint(1, second, 3, erase=True), "continues": True})
        last = post(client, paint(1, first, 3))
        assert last["objects"][0]["edits"] == 4
        client.post("/api/save", json={"image": "a.png"})
    edits = json.loads((annotations / "a.sambox.json").read_text())["objects"][0]["edits"]
    assert edits[0]["strokes"] == [[list(p) for p in first], [list(p) for p in second]]
    assert len(edits) == 4 and all(len(e["strokes"]) == 1 for e in edits[1:])


def test_only_parts_of_one_drag_join(folders, segmenter):
    """An undo (or any other step) between two parts ends the drag: the part after it does not
    join the paint before, which may be another drag; each part is checked on its own."""
    drag, part = [(60.0, 5.0), (66.0, 8.0)], [(66.0, 8.0), (74.0, 12.0)]
    with client_for(folders, segmenter) as client:
        post(client, {"type": "point", "x": A[0], "y": A[1]})
        first = post(client, paint(1, drag, 2))
        post(client, {**paint(1, part, 2), "continues": False})
        post(client, {"type": "undo"})  # Ctrl+Z in the middle of the second drag
        view = post(client, {**paint(1, part, 2), "continues": True})
        assert view["objects"][0]["edits"] == 2
        assert post(client, {"type": "undo"})["mask_png"] == first["mask_png"]
        post(client, {"type": "redo"})
        client.post("/api/save", json={"image": "a.png"})
        view = post(client, {**paint(1, part, 2), "continues": True})  # after a save: its own
        assert view["objects"][0]["edits"] == 3
        refused = post(client, {**paint(1, part, 2), "strokes": [], "continues": True}, 400)
        assert "'strokes' must be a list of 1 to 16 strokes" in refused["detail"]
        bad = {**paint(1, part, 2), "strokes": [[[1, 1]], [[1, "a"]]], "continues": True}
        assert "'strokes[1]' holds" in post(client, bad, 400)["detail"]


def test_parts_join_up_to_the_strokes_one_edit_holds(folders, segmenter):
    with client_for(folders, segmenter) as client:
        post(client, {"type": "point", "x": A[0], "y": A[1]})
        post(client, paint(1, BRUSH, 1))
        for _ in range(15):
            view = post(client, {**paint(1, BRUSH, 1), "continues": True})
        assert view["objects"][0]["edits"] == 1  # 16 strokes: full
        view = post(client, {**paint(1, BRUSH, 1), "continues": True})
        assert view["objects"][0]["edits"] == 2


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"radius": 0}, "'radius' must be a number in (0, 200]"),
        ({"radius": True}, "'radius' must be a number"),
        ({"strokes": []}, "'strokes' must be a list of 1 to 16 strokes"),
        ({"strokes": [[[1, 1]]] * 17}, "1 to 16 strokes"),
        ({"strokes": [[[1, 1]] * 2001]}, "'strokes[0]' must be a list of 1 to 2000"),
        ({"strokes": [[[80, 3]]]}, "stroke point (80, 3) lies outside the 80x60 image"),
        ({"strokes": [[[1, "a"]]]}, "not an [x, y] pair"),
        ({"erase": "yes"}, "'erase' must be true or false"),
        ({"continues": 1}, "'continues' must be true or false"),
        ({"object": 9}, "no object with id 9"),
        ({"color": 3}, "unknown key 'color' in a 'paint' action"),
    ],
)
def test_bad_paint_actions_are_refused_with_a_message(folders, segmenter, change, message):
    with client_for(folders, segmenter) as client:
        before = post(client, {"type": "point", "x": A[0], "y": A[1]})
        refused = post(client, {**paint(1, BRUSH, 3), **change}, status=400)
        assert message in refused["detail"]
        after = client.get("/api/state", params={"name": "a.png"}).json()
        assert after["revision"] == before["revision"] and after["mask_png"] == before["mask_png"]


def test_saved_mask_png_is_what_readers_get(folders, segmenter):
    """The exports and few-shot readers read the saved (corrected) PNG, not the prompts."""
    images, annotations = folders
    with client_for(folders, segmenter) as client:
        post(client, {"type": "point", "x": A[0], "y": A[1]})
        view = post(client, paint(1, BRUSH, 3))
        client.post("/api/save", json={"image": "a.png"})
    annotation = read_annotation(annotations / "a.sambox.json")
    mask = read_mask(annotation.mask_path(annotation.objects[0]))
    np.testing.assert_array_equal(mask, decode_png(view["mask_png"]))
    assert (mask[near(BRUSH, 3)] == 1).all()


def test_training_pairs_come_from_the_prompts_of_painted_objects(folders, segmenter):
    with client_for(folders, segmenter) as client:
        for image, click in (("a.png", A), ("b.jpg", (25.0, 30.0))):
            post(client, {"type": "point", "x": click[0], "y": click[1]}, image=image)
            post(client, paint(1, BRUSH, 3), image=image)
            post(client, {"type": "new_object"}, image=image)
            post(client, paint(2, [(5.0, 50.0)], 2), image=image)  # painted only
            assert client.post("/api/save", json={"image": image}).status_code == 200
    (pair,) = pairs_from_sambox(folders[1])  # object 1 only: object 2 has no prompt
    assert pair.object_id == 1
    np.testing.assert_array_equal(pair.ref_points, [A])
    np.testing.assert_array_equal(pair.tgt_points, [(25, 30)])


def test_masks_imported_as_masks_are_the_objects_and_the_brush_fixes_them(
    folders, segmenter, tmp_path
):
    images, annotations = folders
    (tmp_path / "import").mkdir()
    ids = np.zeros((60, 80), np.uint8)
    ids[10:40, 10:40] = 1
    ids[30:55, 45:75] = 3
    ids[0:2] = 255  # void: no object
    write_mask(tmp_path / "import/a.png", ids)
    imported = np.where(ids == 255, 0, ids)
    app = create_app(images, annotations, segmenter, tmp_path / "import", import_as="masks")
    with script_client(app) as client:
        view = client.get("/api/state", params={"name": "a.png"}).json()
        np.testing.assert_array_equal(decode_png(view["mask_png"]), imported)
        assert [o["id"] for o in view["objects"]] == [1, 3] and view["dirty"]
        assert all(i["steps"] == [] for o in view["objects"] for i in o["instances"])
        band, disc = near([(20.0, 20.0), (30.0, 20.0)], 2), near([(20.0, 50.0)], 3)
        post(client, paint(1, [(20.0, 20.0), (30.0, 20.0)], 2, erase=True))
        fixed = post(client, paint(3, [(20.0, 50.0)], 3))
        expected = np.where(disc, 3, np.where(band & (imported == 1), 0, imported))
        np.testing.assert_array_equal(decode_png(fixed["mask_png"]), expected)
        client.post("/api/save", json={"image": "a.png"})
    np.testing.assert_array_equal(saved_mask(annotations, "a"), expected)
    data = json.loads((annotations / "a.sambox.json").read_text())
    assert data["version"] == 3 and [o["instances"] for o in data["objects"]] == [[], []]
    assert [len(o["edits"]) for o in data["objects"]] == [1, 1]
    with client_for(folders, segmenter) as client:  # the session: the history too
        assert (
            client.get("/api/state", params={"name": "a.png"}).json()["mask_png"]
            == (fixed["mask_png"])
        )
        undone = post(client, {"type": "undo"})
        np.testing.assert_array_equal(
            decode_png(undone["mask_png"]), np.where(band & (imported == 1), 0, imported)
        )
    for path in (annotations / ".sambox/sessions").iterdir():
        path.unlink()
    with client_for(folders, segmenter) as client:  # the JSON alone: its masks are the bases
        again = client.get("/api/state", params={"name": "a.png"}).json()
        assert again["mask_png"] == fixed["mask_png"] and not again["dirty"]
        clicked = post(client, {"type": "point", "x": 60.0, "y": 10.0})  # on object 1
    grown = decode_png(clicked["mask_png"])
    assert (grown[expected == 1] == 1).all() and (grown[expected == 3] == 3).all()
    assert [len(i["steps"]) for i in clicked["objects"][0]["instances"]] == [1]


def test_an_imported_mask_clicked_on_keeps_its_pixels_when_reopened_from_the_json(
    folders, segmenter, tmp_path
):
    """An imported object refined with a click has prompts and pixels of its own: the JSON
    marks it ``base``, and reopened without its session it starts from its saved mask, so a
    later save does not shrink it to SAM's mask of the click."""
    images, annotations = folders
    (tmp_path / "import").mkdir()
    ids = np.zeros((60, 80), np.uint8)
    ids[5:25, 50:75] = 1
    write_mask(tmp_path / "import/a.png", ids)
    app = create_app(images, annotations, segmenter, tmp_path / "import", import_as="masks")
    with script_client(app) as client:
        client.get("/api/state", params={"name": "a.png"})
        post(client, {"type": "point", "x": A[0], "y": A[1]})
        assert client.post("/api/save", json={"image": "a.png"}).status_code == 200
    first = saved_mask(annotations, "a")
    assert (first[5:25, 50:75] == 1).all()
    (obj,) = json.loads((annotations / "a.sambox.json").read_text())["objects"]
    assert obj["base"] is True and len(obj["instances"]) == 1
    for path in (annotations / ".sambox/sessions").iterdir():
        path.unlink()
    with client_for(folders, segmenter) as client:
        post(client, {"type": "label", "object": 1, "label": "kept"})
        assert client.post("/api/save", json={"image": "a.png"}).status_code == 200
    np.testing.assert_array_equal(saved_mask(annotations, "a"), first)
