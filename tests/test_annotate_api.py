"""SAMBOX's server through FastAPI's TestClient, on a tiny random-weight SAM."""

from __future__ import annotations

import json
import logging
import os
import re

import numpy as np
import pytest
from mounts import remount_readonly, tmpfs
from PIL import Image
from sambox_helpers import (
    HEIGHT,
    NAMES,
    WIDTH,
    decode_png,
    make_images,
    saved_mask,
)

from samic_vos.annotate.browser import script_client
from samic_vos.annotate.server import create_app
from samic_vos.data.mask_io import write_mask
from samic_vos.data.sambox_format import read_annotation
from samic_vos.runtime.errors import UserError

A, B = (20.0, 20.0), (60.0, 40.0)  # inside the red and the blue square


def client_for(folders, segmenter, **kwargs):
    return script_client(create_app(*folders, segmenter, **kwargs))


def point(client, x, y, positive=True, image="a.png", refine=False):
    action = {"type": "point", "x": x, "y": y, "positive": positive, "refine": refine}
    response = client.post("/api/action", json={"image": image, "action": action})
    assert response.status_code == 200, response.text
    return response.json()


def act(client, action, image="a.png"):
    response = client.post("/api/action", json={"image": image, "action": action})
    assert response.status_code == 200, response.text
    return response.json()


def direct(segmenter, image_path, points, labels, box=None, mask_input=None):
    """SAM's answer computed without the server, on the same embedding."""
    from samic_vos.annotate.image_folder import load_rgb

    segmenter.set_frame(load_rgb(image_path))
    points = None if points is None else np.array(points, float)
    labels = None if labels is None else np.array(labels)
    box = None if box is None else np.array(box, float)
    return segmenter.prompt(points, labels, box, mask_input=mask_input)


def test_click_gives_sams_mask_and_confidence(folders, segmenter):
    with client_for(folders, segmenter) as client:
        listing = client.get("/api/images").json()
        assert [i["name"] for i in listing["images"]] == NAMES
        assert (listing["annotated"], listing["total"]) == (0, 4)
        view = point(client, *A)
        ids = decode_png(view["mask_png"])
        expected = direct(segmenter, folders[0] / "a.png", [A], [1])
        assert ids.shape == (HEIGHT, WIDTH)
        np.testing.assert_array_equal(ids == 1, expected.mask)
        assert 0 < expected.mask.sum() < HEIGHT * WIDTH  # a real, partial mask
        assert view["iou"] == pytest.approx(expected.iou, abs=1e-5)
        assert view["confidence"] == pytest.approx(np.clip(expected.iou, 0, 1), abs=1e-5)
        assert view["objects"][0]["instances"][0]["steps"] == [
            {"kind": "point", "coords": list(A), "positive": True}
        ]
        assert view["can_undo"] and not view["can_redo"] and view["dirty"]


def test_instances_are_prompted_separately_and_unioned(folders, segmenter):
    with client_for(folders, segmenter) as client:
        point(client, *A)
        act(client, {"type": "new_instance"})
        view = point(client, *B)
    first = direct(segmenter, folders[0] / "a.png", [A], [1])
    second = direct(segmenter, folders[0] / "a.png", [B], [1])
    together = direct(segmenter, folders[0] / "a.png", [A, B], [1, 1])
    ids = decode_png(view["mask_png"])
    np.testing.assert_array_equal(ids == 1, first.mask | second.mask)
    assert not np.array_equal(first.mask | second.mask, together.mask)  # not one prompt
    instances = view["objects"][0]["instances"]
    assert [len(i["steps"]) for i in instances] == [1, 1]
    assert view["active"] == {"object": 1, "instance": 1}


def test_negative_point_box_and_refine_change_the_mask(folders, segmenter):
    path = folders[0] / "a.png"
    with client_for(folders, segmenter) as client:
        before = decode_png(point(client, *A)["mask_png"])
        negative = decode_png(point(client, 30.0, 30.0, positive=False)["mask_png"])
        expected = direct(segmenter, path, [A, (30.0, 30.0)], [1, 0])
        np.testing.assert_array_equal(negative == 1, expected.mask)
        assert not np.array_equal(before, negative)
        boxed = act(client, {"type": "box", "box": [45, 45, 5, 5]})  # corners in any order
        expected_box = direct(segmenter, path, [A, (30.0, 30.0)], [1, 0], [5, 5, 45, 45])
        np.testing.assert_array_equal(decode_png(boxed["mask_png"]) == 1, expected_box.mask)
        refined = point(client, 25.0, 15.0, refine=True)
        expected_refined = direct(
            segmenter,
            path,
            [A, (30.0, 30.0), (25.0, 15.0)],
            [1, 0, 1],
            [5, 5, 45, 45],
            mask_input=expected_box.low_res_logits,
        )
        np.testing.assert_array_equal(decode_png(refined["mask_png"]) == 1, expected_refined.mask)
        assert refined["iou"] == pytest.approx(expected_refined.iou, abs=1e-5)


def test_one_point_or_one_object_is_deleted(folders, segmenter):
    path = folders[0] / "a.png"
    with client_for(folders, segmenter) as client:
        point(client, *A)
        point(client, 30.0, 30.0, positive=False)
        point(client, 25.0, 15.0)
        act(client, {"type": "new_object"})
        point(client, *B)
        # The negative point of object 1 goes: its mask is SAM's on the two points left.
        view = act(client, {"type": "delete_step", "object": 1, "instance": 0, "step": 1})
        expected = direct(segmenter, path, [A, (25.0, 15.0)], [1, 1])
        ids = decode_png(view["mask_png"])
        np.testing.assert_array_equal(ids == 1, expected.mask & (ids != 2))  # less what 2 won
        steps = view["objects"][0]["instances"][0]["steps"]
        assert [s["coords"] for s in steps] == [list(A), [25.0, 15.0]]
        assert view["active"] == {"object": 1, "instance": 0}
        # Object 1 goes: object 2 alone, its own mask, its id kept.
        view = act(client, {"type": "delete_object", "object": 1})
        assert [o["id"] for o in view["objects"]] == [2]
        ids = decode_png(view["mask_png"])
        np.testing.assert_array_equal(ids == 2, direct(segmenter, path, [B], [1]).mask)
        assert not (ids == 1).any() and view["active"] == {"object": 2, "instance": 0}
        undone = act(client, {"type": "undo"})
        assert [o["id"] for o in undone["objects"]] == [1, 2]
        # One point moved: SAM's mask of the moved prompt, the other steps as they were.
        move = {"type": "move_step", "object": 1, "instance": 0, "step": 1, "x": 35.0, "y": 25.0}
        moved = act(client, move)
        steps = moved["objects"][0]["instances"][0]["steps"]
        assert [s["coords"] for s in steps] == [list(A), [35.0, 25.0]]
        expected = direct(segmenter, path, [A, (35.0, 25.0)], [1, 1])
        ids = decode_png(moved["mask_png"])
        np.testing.assert_array_equal(ids == 1, expected.mask & (ids != 2))
        act(client, {"type": "box", "box": [5, 5, 45, 45]})
        box = {**move, "step": 2}
        response = client.post("/api/action", json={"image": "a.png", "action": box})
        assert response.status_code == 400 and "only a point" in response.json()["detail"]
        outside = {**move, "x": 500.0}
        response = client.post("/api/action", json={"image": "a.png", "action": outside})
        assert response.status_code == 400 and "outside" in response.json()["detail"]
        for action, message in (
            ({"type": "delete_step", "object": 2, "instance": 0, "step": 1}, "no step 1"),
            ({"type": "delete_step", "object": 2, "instance": 1, "step": 0}, "no instance 1"),
            ({"type": "delete_object", "object": 7}, "no object with id 7"),
        ):
            response = client.post("/api/action", json={"image": "a.png", "action": action})
            assert response.status_code == 400 and message in response.json()["detail"]


def test_undo_and_redo_per_click(folders, segmenter):
    with client_for(folders, segmenter) as client:
        one = point(client, *A)
        two = point(client, *B)
        assert one["mask_png"] != two["mask_png"]
        undone = act(client, {"type": "undo"})
        assert undone["mask_png"] == one["mask_png"] and undone["iou"] == one["iou"]
        assert undone["can_redo"]
        redone = act(client, {"type": "redo"})
        assert redone["mask_png"] == two["mask_png"]
        act(client, {"type": "undo"})
        act(client, {"type": "undo"})
        empty = client.get("/api/state", params={"name": "a.png"}).json()
        assert empty["objects"] == [] and not empty["can_undo"]
        assert not decode_png(empty["mask_png"]).any()


def test_save_writes_what_was_shown_and_a_restart_restores_everything(folders, segmenter):
    images, annotations = folders
    with client_for(folders, segmenter) as client:
        point(client, *A)
        point(client, 35.0, 12.0, positive=False)
        act(client, {"type": "new_instance"})
        act(client, {"type": "box", "box": [45, 30, 75, 55]})
        act(client, {"type": "new_object", "label": "blue"})
        point(client, *B)
        point(client, 70.0, 50.0)
        act(client, {"type": "label", "object": 1, "label": "red"})
        shown = client.post("/api/save", json={"image": "a.png"}).json()
        assert not shown["dirty"] and (shown["annotated"], shown["total"]) == (1, 4)
        point(client, 50.0, 50.0)  # after the save: in the session, not in the files
        last = client.get("/api/state", params={"name": "a.png"}).json()

    saved_ids = saved_mask(annotations, "a")
    np.testing.assert_array_equal(saved_ids, decode_png(shown["mask_png"]))
    assert set(np.unique(saved_ids).tolist()) <= {0, 1, 2} and (saved_ids == 2).any()
    annotation = read_annotation(annotations / "a.sambox.json")
    assert json.loads((annotations / "a.sambox.json").read_text())["version"] == 2
    assert annotation.image_path() == annotations / "../images/a.png"
    red, blue = annotation.objects
    assert (red.id, red.label, blue.id, blue.label) == (1, "red", 2, "blue")
    np.testing.assert_array_equal(red.instances[0].points, [A])
    np.testing.assert_array_equal(red.instances[0].negative_points, [[35, 12]])
    assert red.instances[1].points.shape == (0, 2)
    assert red.instances[1].box.tolist() == [45, 30, 75, 55]
    np.testing.assert_array_equal(blue.points, [B, (70, 50)])
    assert red.mask == blue.mask and re.fullmatch(r"masks/a\.[0-9a-f]{12}\.png", red.mask)
    assert red.instances[0].sam_confidence == pytest.approx(
        shown["objects"][0]["instances"][0]["iou"]
    )
    assert red.sam_confidence == pytest.approx(shown["objects"][0]["confidence"])

    # A new server on the same folders: the same state, the same undo history.
    with client_for(folders, segmenter) as client:
        again = client.get("/api/state", params={"name": "a.png"}).json()
        for key in ("objects", "active", "mask_png", "can_undo", "can_redo", "dirty", "iou"):
            assert again[key] == last[key], key
        assert client.get("/api/images").json()["annotated"] == 1
        undone = act(client, {"type": "undo"})
        assert undone["mask_png"] == shown["mask_png"] and not undone["dirty"]


def test_a_saved_annotation_without_a_session_reopens(folders, segmenter, caplog):
    images, annotations = folders
    with client_for(folders, segmenter) as client:
        point(client, *A)
        act(client, {"type": "box", "box": [5, 5, 45, 45]})
        shown = client.post("/api/save", json={"image": "a.png"}).json()
    (session,) = (annotations / ".sambox/sessions").iterdir()
    session.write_text('{"format": "sambox-session", "version": 1, "image_si')  # damaged
    with client_for(folders, segmenter) as client, caplog.at_level(logging.WARNING):
        again = client.get("/api/state", params={"name": "a.png"}).json()
    assert "ignoring the session of a.png: damaged session file" in caplog.text
    assert again["mask_png"] == shown["mask_png"] and not again["dirty"]
    assert not again["can_undo"]  # the history went with the session file


def test_embeddings_are_cached_on_disk_and_the_next_two_encoded_ahead(folders, segmenter):
    calls = []
    # The patch embedding is the first module of every encoder implementation.
    patch_embed = segmenter.sam.image_encoder.patch_embed
    hook = patch_embed.register_forward_hook(lambda *args: calls.append(1))
    try:
        app = create_app(*folders, segmenter)
        with script_client(app) as client:
            point(client, *A)
            app.state.annotator.embeddings.wait()  # the background encodings
            assert len(calls) == 3  # a.png now, b.jpg and c.bmp ahead
            cached = sorted((folders[1] / ".sambox/embeddings").glob("*/*.pt"))
            assert len(cached) == 3
            client.get("/api/state", params={"name": "b.jpg"})  # cached; d.tif encoded ahead
            client.get("/api/state", params={"name": "a.png"})
            app.state.annotator.embeddings.wait()
            assert len(calls) == 4 and app.state.annotator.embeddings.encoded == 4
        restarted = create_app(*folders, segmenter)
        with script_client(restarted) as client:
            point(client, *B)
            restarted.state.annotator.embeddings.wait()
            assert len(calls) == 4 and restarted.state.annotator.embeddings.encoded == 0
    finally:
        hook.remove()


def test_image_kinds_are_read_upright_as_rgb(tmp_path, segmenter):
    images = tmp_path / "images"
    images.mkdir()
    Image.new("L", (30, 20), 128).save(images / "gray.png")
    Image.new("RGBA", (30, 20), (10, 200, 30, 100)).save(images / "rgba.png")
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90 degrees clockwise to show
    Image.new("RGB", (30, 20), (200, 10, 10)).save(images / "rotated.jpg", exif=exif)
    with client_for((images, tmp_path / "out"), segmenter) as client:
        sizes = {}
        for name in ("gray.png", "rgba.png", "rotated.jpg"):
            sizes[name] = client.get("/api/state", params={"name": name}).json()["size"]
            png = client.get("/api/image", params={"name": name})
            assert png.headers["content-type"] == "image/png"
            with Image.open(__import__("io").BytesIO(png.content)) as shown:
                assert shown.mode == "RGB" and list(shown.size[::-1]) == sizes[name]
    assert sizes == {"gray.png": [20, 30], "rgba.png": [20, 30], "rotated.jpg": [30, 20]}


def test_imported_masks_become_prompts(folders, segmenter, tmp_path):
    masks = tmp_path / "masks"
    masks.mkdir()
    ids = np.zeros((HEIGHT, WIDTH), np.uint8)
    ids[10:40, 10:40] = 1
    ids[30:55, 45:75] = 3
    write_mask(masks / "a.png", ids)
    with client_for(folders, segmenter, import_masks=masks) as client:
        view = client.get("/api/state", params={"name": "a.png"}).json()
        untouched = client.get("/api/state", params={"name": "b.jpg"}).json()
    assert [o["id"] for o in view["objects"]] == [1, 3] and view["dirty"]
    for obj in view["objects"]:
        for instance in obj["instances"]:
            for step in instance["steps"]:
                x, y = step["coords"]
                assert ids[int(round(y)), int(round(x))] == obj["id"] and step["positive"]
    assert untouched["objects"] == []


@pytest.mark.parametrize(
    "name", ["../images/a.png", "/etc/passwd", "..", "sub/../../x.png", "a.png/..", "C:x"]
)
def test_paths_outside_the_folders_are_refused(folders, segmenter, name, caplog):
    with client_for(folders, segmenter) as client, caplog.at_level(logging.WARNING):
        for response in (
            client.get("/api/state", params={"name": name}),
            client.get("/api/image", params={"name": name}),
            client.post("/api/action", json={"image": name, "action": {"type": "reset"}}),
            client.post("/api/save", json={"image": name}),
        ):
            assert response.status_code == 403, (name, response.text)
            assert "refused" in response.json()["detail"]
    assert "refused" in caplog.text
    assert not any(p.is_file() for p in folders[1].rglob("*.json"))


def test_symlinks_out_of_the_folder_are_neither_listed_nor_served(folders, segmenter, tmp_path):
    outside = tmp_path / "secret.png"
    Image.new("RGB", (4, 4)).save(outside)
    os.symlink(outside, folders[0] / "link.png")
    with client_for(folders, segmenter) as client:
        names = [i["name"] for i in client.get("/api/images").json()["images"]]
        assert "link.png" not in names
        assert client.get("/api/image", params={"name": "link.png"}).status_code == 403


@pytest.mark.parametrize(
    ("link", "target"),
    [("exports", ".."), (".sambox/lock", "../../.bashrc"), ("masks", "../coco"),
     (".sambox", "../coco"), (".sambox/sessions", "../../coco")],
)  # fmt: skip
def test_links_out_of_the_annotations_folder_are_refused_at_start(
    tmp_path, segmenter, link, target
):
    """A downloaded images folder (the annotations folder by default) holding a link where
    SAMBOX writes: `exports -> ..` made an export replace ../coco whole, `.sambox/lock ->
    ../../.bashrc` made the lock overwrite and then empty it. Refused in one line, before
    anything is written; the files outside are untouched."""
    home = tmp_path / "home"
    (home / "data/coco").mkdir(parents=True)
    (home / "data/coco/instances.json").write_text("the user's dataset")
    (home / ".bashrc").write_text("the user's shell")
    images = make_images(home / "data/cats")
    if link.startswith(".sambox/"):
        (images / ".sambox").mkdir()
    os.symlink(target, images / link)
    before = {p: p.read_bytes() for p in home.rglob("*") if p.is_file()}
    with pytest.raises(UserError, match="a link, and SAMBOX keeps its files in") as refused:
        create_app(images, images, segmenter)
    assert str(images / link) in str(refused.value) and "-o" in str(refused.value)
    assert {p: p.read_bytes() for p in home.rglob("*") if p.is_file()} == before


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        ({"image": "nope.png", "action": {"type": "reset"}}, 404, "no image 'nope.png'"),
        ({"action": {"type": "reset"}}, 400, "needs 'image'"),
        ({"image": "a.png", "action": "click"}, 400, "JSON object with a string 'type'"),
        ({"image": "a.png", "action": {"type": "jump"}}, 400, "unknown action type 'jump'"),
        ({"image": "a.png", "action": {"type": "point", "x": 80, "y": 3}}, 400, "outside"),
        ({"image": "a.png", "action": {"type": "point", "x": "1", "y": 3}}, 400, "'x' must"),
        ({"image": "a.png", "action": {"type": "box", "box": [1, 2]}}, 400, "x0, y0, x1, y1"),
        ({"image": "a.png", "action": {"type": "select", "object": 9}}, 400, "no object"),
        ({"image": "a.png", "action": {"type": "undo"}}, 400, "nothing to undo"),
        ({"image": "a.png", "action": {"type": "label", "object": 1}}, 400, "no object"),
        ({"image": 5, "action": {"type": "reset"}}, 400, "needs 'image'"),
    ],
)
def test_malformed_requests_get_a_4xx_with_a_message(folders, segmenter, body, status, message):
    with client_for(folders, segmenter) as client:
        response = client.post("/api/action", json=body)
        assert response.status_code == status and message in response.json()["detail"]
        assert point(client, *A)["objects"]  # the server keeps serving


def test_unparsable_requests_are_4xx(folders, segmenter):
    with client_for(folders, segmenter) as client:
        point(client, *A)
        bad_json = client.post(
            "/api/action", content=b"{not json", headers={"content-type": "application/json"}
        )
        assert bad_json.status_code == 422 and bad_json.json()["detail"]
        infinite = client.post(
            "/api/action",
            content=b'{"image": "a.png", "action": {"type": "point", "x": Infinity, "y": 3}}',
            headers={"content-type": "application/json"},
        )
        assert infinite.status_code == 400 and "finite" in infinite.json()["detail"]
        assert client.post("/api/save", json=[1, 2]).status_code == 422
        assert client.get("/api/state").status_code == 422  # no name
        action = {"type": "select", "object": 1, "instance": 3}
        response = client.post("/api/action", json={"image": "a.png", "action": action})
        assert response.status_code == 400 and "no instance 3" in response.json()["detail"]


def test_broken_and_vanished_images_are_4xx(folders, segmenter):
    images, _ = folders
    with client_for(folders, segmenter) as client:
        (images / "c.bmp").write_bytes(b"not an image")
        (images / "d.tif").unlink()
        for name in ("c.bmp", "d.tif"):
            for response in (
                client.get("/api/state", params={"name": name}),
                client.get("/api/image", params={"name": name}),
            ):
                assert response.status_code == 400 and name in response.json()["detail"]
        assert point(client, *A)["objects"]


def test_a_decompression_bomb_is_a_4xx_even_named_by_a_saved_annotation(
    folders, segmenter, monkeypatch, caplog
):
    """An image with more pixels than Pillow decodes safely (a small file that would take GBs),
    and a SAMBOX JSON that comes with it: the server starts, answers 400 naming the file for
    that image, and serves the others (Pillow's limit lowered here: a real bomb is 180 MP)."""
    images, annotations = folders
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 10_000)  # refused from 20,000 pixels on
    Image.new("L", (200, 200)).save(images / "bomb.png")
    annotations.mkdir()
    crafted = {"format": "sambox", "version": 2, "image": "../images/bomb.png",
               "image_size": [200, 200], "objects": []}  # fmt: skip
    (annotations / "bomb.sambox.json").write_text(json.dumps(crafted))
    with client_for(folders, segmenter) as client, caplog.at_level(logging.WARNING):
        listing = client.get("/api/images").json()
        assert {"name": "bomb.png", "saved": None} in listing["images"]
        for response in (
            client.get("/api/state", params={"name": "bomb.png"}),
            client.get("/api/image", params={"name": "bomb.png"}),
        ):
            detail = response.json()["detail"]
            assert response.status_code == 400 and "bomb.png" in detail and "pixels" in detail
        assert point(client, *A)["objects"]
    assert "ignoring an unreadable annotation" in caplog.text


def test_a_file_name_that_is_not_utf8_is_skipped_not_a_broken_listing(folders, segmenter, caplog):
    """A name of other bytes than UTF-8 (an archive made elsewhere): the page could not name
    it, so it is left out of the list (logged), and the list and the other images work."""
    images, _ = folders
    os.rename(images / "b.jpg", os.fsencode(images) + b"/caf\xe9.jpg")
    with caplog.at_level(logging.WARNING), client_for(folders, segmenter) as client:
        response = client.get("/api/images")
        assert response.status_code == 200
        assert [i["name"] for i in response.json()["images"]] == ["a.png", "c.bmp", "d.tif"]
        assert point(client, *A)["objects"]
    assert "'caf\\udce9.jpg': its name is not UTF-8" in caplog.text


@pytest.mark.parametrize(
    ("body", "status"),
    [
        (b'{"image": "\\udcff", "action": {"type": "reset"}}', 404),
        (b'{"image": "\\udcff/../x", "action": {"type": "reset"}}', 403),
        (b'{"image": "a.png", "action": {"type": "\\udcff"}}', 400),
        (b'{"image": "a.png", "\\udcff": 1}', 400),
        (b'["\\udcff"]', 422),
    ],
)
def test_request_text_that_is_not_unicode_gets_a_4xx(folders, segmenter, body, status):
    """A JSON string may hold a lone surrogate ("\\udcff"), which no UTF-8 answer can quote:
    the refusal quoting it comes escaped, not as a crash (500)."""
    with client_for(folders, segmenter) as client:
        headers = {"content-type": "application/json"}
        response = client.post("/api/action", content=body, headers=headers)
        assert response.status_code == status, response.text
        assert response.json()["detail"] and response.content.isascii()
        assert point(client, *A)["objects"]


def test_saved_folder_gives_training_pairs(folders, segmenter):
    from samic_vos.training.training_pairs import pairs_from_sambox

    with client_for(folders, segmenter) as client:
        for image, (x, y) in (("a.png", A), ("b.jpg", B)):
            point(client, x, y, image=image)
            act(client, {"type": "new_instance"}, image)
            point(client, 25.0, 30.0, image=image)
            assert client.post("/api/save", json={"image": image}).status_code == 200
    (pair,) = pairs_from_sambox(folders[1])
    frames = (pair.ref_frame.resolve(), pair.tgt_frame.resolve())
    assert frames == (folders[0] / "a.png", folders[0] / "b.jpg")
    np.testing.assert_array_equal(pair.ref_points, [A, (25, 30)])
    np.testing.assert_array_equal(pair.tgt_points, [B, (25, 30)])


def test_a_disk_failure_reaches_the_page_as_its_message(tmp_path, segmenter, caplog):
    """The annotation folder turns read-only under a running server: the save answers a 500
    whose detail the page shows (the file and the reason), the terminal gets one line."""
    images = make_images(tmp_path / "images")
    (tmp_path / "annotations").mkdir()
    with tmpfs(tmp_path / "annotations", "size=16m") as annotations:
        with client_for((images, annotations), segmenter) as client:
            point(client, *A)
            remount_readonly(annotations)
            with caplog.at_level(logging.ERROR, logger="samic_vos.annotate.server"):
                response = client.post("/api/save", json={"image": "a.png"})
            assert response.status_code == 500
            detail = response.json()["detail"]
            assert detail.startswith("/api/save failed: ") and "Read-only file system" in detail
            # (info lines of the encoder show when an earlier test's CLI run set INFO)
            problems = [r for r in caplog.records if r.levelno >= logging.WARNING]
            assert [r.getMessage() for r in problems] == [detail]
            assert all(r.exc_info is None for r in caplog.records)
