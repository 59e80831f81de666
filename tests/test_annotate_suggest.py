"""SAMIC suggests SAMBOX's prompts (annotate/suggest.py), through the HTTP API, on a tiny
random-weight SAM and SAMIC: the mechanics (learning in the background, its progress, the
suggested points, accepting them in one undoable step, the saved record, the clicks per image,
a restart), not the quality of random models' suggestions."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from sambox_helpers import HEIGHT, WIDTH, make_images, tiny_segmenter, tiny_suggest_setup

from samic_vos.annotate.browser import (
    SamboxPage,
    chromium_page,
    chromium_path,
    free_port,
    live_server,
    script_client,
)
from samic_vos.annotate.server import create_app
from samic_vos.commands.cli import main
from samic_vos.data.sambox_format import read_annotation

RED, BLUE = (20.0, 20.0), (60.0, 40.0)  # inside the red and the blue square


def act(client, action, image="a.png"):
    response = client.post("/api/action", json={"image": image, "action": action})
    assert response.status_code == 200, response.text
    return response.json()


def click(client, x, y, image="a.png"):
    return act(client, {"type": "point", "x": x, "y": y, "positive": True}, image)


def save(client, image="a.png"):
    response = client.post("/api/save", json={"image": image})
    assert response.status_code == 200, response.text
    return response.json()


def wait_status(client, done, timeout=120.0) -> dict:
    """Poll ``GET /api/suggest`` until ``done(status)``; the status."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = client.get("/api/suggest").json()
        if done(status):
            return status
        time.sleep(0.02)
    raise AssertionError(f"timed out; last status {status}")


def gate_adaptation(app, at_step: int) -> threading.Event:
    """Hold the suggester's adaptation after step ``at_step`` until the returned event is set
    or the server shuts down."""
    suggester = app.state.suggester
    release, report = threading.Event(), suggester._on_step

    def held(done: int, steps: int) -> None:
        report(done, steps)
        deadline = time.monotonic() + 60
        while done == at_step and not release.wait(0.02) and time.monotonic() < deadline:
            if suggester._closing:
                return

    suggester._on_step = held
    return release


def annotate_red(client, image="a.png"):
    """One object labelled "red" with one click on the red square, saved."""
    act(client, {"type": "new_object", "label": "red"}, image)
    click(client, *RED, image)
    return save(client, image)


def test_learns_in_the_background_and_suggests_points_accepted_in_one_step(folders, segmenter):
    images, annotations = folders
    app = create_app(images, annotations, segmenter, suggest=tiny_suggest_setup(segmenter))
    release = gate_adaptation(app, at_step=1)
    with script_client(app) as client:
        status = wait_status(client, lambda s: s["phase"] == "idle")
        assert status["learned_from"] == 0 and not status["trained"]
        refused = client.post("/api/suggest", json={"image": "b.jpg"})
        assert refused.status_code == 409 and "save an annotated image" in refused.text

        annotate_red(client)
        held = wait_status(client, lambda s: s["phase"] == "adapting" and s["step"] == 1)
        assert held["message"] == "adapting 1/3 on 1 image" and held["steps"] == 3
        # The adaptation never blocks a click.
        assert click(client, *BLUE, image="c.bmp")["objects"]
        act(client, {"type": "undo"}, image="c.bmp")
        release.set()
        ready = wait_status(client, lambda s: s["phase"] == "ready")
        assert ready["learned_from"] == 1 and ready["adaptations"] == 1
        assert ready["message"] == "ready (learned from 1 image)"
        assert (annotations / ".sambox/suggest/samic_adapted.pt").is_file()
        learned = json.loads((annotations / ".sambox/suggest/learned.json").read_text())
        assert list(learned["annotations"]) == ["a.png"]

        response = client.post("/api/suggest", json={"image": "b.jpg"})
        assert response.status_code == 200, response.text
        suggestion = response.json()
        assert suggestion["learned_from"] == 1 and suggestion["ms"] > 0
        (red,) = suggestion["objects"]  # the references' one object, with its label
        assert (red["object"], red["label"]) == (1, "red")
        assert 1 <= len(red["points"]) == len(red["scores"])
        for x, y in red["points"]:
            assert 0 <= x <= WIDTH - 1 and 0 <= y <= HEIGHT - 1
        # Suggested, not yet in the image's state.
        assert client.get("/api/state?name=b.jpg").json()["objects"] == []

        objects = [{k: red[k] for k in ("object", "label", "points")}]
        view = act(client, {"type": "accept_suggestion", "objects": objects}, image="b.jpg")
        (obj,) = view["objects"]
        assert (obj["id"], obj["label"]) == (1, "red")
        steps = [s for i in obj["instances"] for s in i["steps"]]
        assert [s["coords"] for s in steps] == red["points"]  # one instance per point
        assert all(s.get("suggested") and s["positive"] for s in steps)
        assert view["can_undo"] and view["dirty"]
        assert act(client, {"type": "undo"}, image="b.jpg")["objects"] == []  # one step
        assert act(client, {"type": "redo"}, image="b.jpg")["objects"] == view["objects"]

        # A correction: the person's own click beside the accepted points, then the save.
        click(client, *RED, image="b.jpg")
        save(client, "b.jpg")
        done = wait_status(client, lambda s: s["phase"] == "ready" and s["learned_from"] == 2)
        assert done["adaptations"] == 2  # the correction is training data of the next one
        assert done["clicks"] == {
            "with": {"images": 1, "clicks_per_image": 1.0, "accepted_per_image": len(steps)},
            "without": {"images": 1, "clicks_per_image": 1.0, "accepted_per_image": 0.0},
        }

    data = json.loads((annotations / "b.sambox.json").read_text())
    assert data["meta"]["suggested_points"] == {"1": red["points"]}
    saved = read_annotation(annotations / "b.sambox.json")  # readers ignore the record
    positives = [p for i in saved.objects[0].instances for p in i.points]
    np.testing.assert_allclose(positives, [*red["points"], list(RED)], atol=1e-4)
    clicks = json.loads((annotations / ".sambox/suggest/clicks.json").read_text())
    assert clicks["b.jpg"] == {"clicks": 1, "accepted": len(steps), "suggested": True}

    # Without its session file, the image reopens from the JSON with SAMIC's points marked.
    (annotations / ".sambox/sessions/b.jpg.json").unlink()
    with script_client(create_app(images, annotations, segmenter)) as client:
        (obj,) = client.get("/api/state?name=b.jpg").json()["objects"]
        marks = [s.get("suggested", False) for i in obj["instances"] for s in i["steps"]]
        assert marks == [True] * len(steps) + [False]


def test_a_restart_resumes_what_was_learned_and_what_was_stopped(folders, segmenter, caplog):
    images, annotations = folders
    adapted = annotations / ".sambox/suggest/samic_adapted.pt"
    app = create_app(images, annotations, segmenter, suggest=tiny_suggest_setup(segmenter))
    with script_client(app) as client:
        annotate_red(client)
        wait_status(client, lambda s: s["phase"] == "ready")
    stamp = adapted.stat().st_mtime_ns

    # The same saved annotations: the network is loaded, not adapted again.
    app = create_app(images, annotations, segmenter, suggest=tiny_suggest_setup(segmenter))
    with script_client(app) as client:
        ready = wait_status(client, lambda s: s["phase"] == "ready")
        assert (ready["learned_from"], ready["adaptations"]) == (1, 0)
        assert client.post("/api/suggest", json={"image": "c.bmp"}).status_code == 200
        # A new save: adapting again, stopped by the shutdown after its second step.
        gate_adaptation(app, at_step=2)
        annotate_red(client, "b.jpg")
        wait_status(client, lambda s: s["phase"] == "adapting" and s["step"] == 2)
    assert adapted.stat().st_mtime_ns == stamp  # the stopped adaptation replaced nothing
    assert (annotations / ".sambox/suggest/adaptation_state.pt").is_file()

    caplog.set_level("INFO")
    app = create_app(images, annotations, segmenter, suggest=tiny_suggest_setup(segmenter))
    with script_client(app) as client:
        ready = wait_status(client, lambda s: s["phase"] == "ready" and s["learned_from"] == 2)
        assert ready["adaptations"] == 1
    assert "continuing the adaptation saved in" in caplog.text
    assert adapted.stat().st_mtime_ns != stamp


def test_a_trained_checkpoint_suggests_without_adapting(folders, segmenter, tiny_models):
    images, annotations = folders
    setup = tiny_suggest_setup(segmenter, samic=tiny_models["samic"], references=1)
    learned = annotations / ".sambox/suggest/learned.json"
    with script_client(create_app(images, annotations, segmenter, suggest=setup)) as client:
        annotate_red(client, "b.jpg")
        wait_status(client, lambda s: s["phase"] == "ready")
        annotate_red(client)  # saved last: the one reference (references=1)
        wait_status(
            client, lambda s: list(json.loads(learned.read_text())["annotations"]) == ["a.png"]
        )
        ready = wait_status(client, lambda s: s["phase"] == "ready")
        assert ready["trained"] and ready["adaptations"] == 0 and ready["learned_from"] == 1
        suggestion = client.post("/api/suggest", json={"image": "d.tif"}).json()
        assert [o["object"] for o in suggestion["objects"]] == [1]
        # Its annotations removed, SAMIC has nothing left to suggest from.
        for image in ("a.png", "b.jpg"):
            act(client, {"type": "reset"}, image)
            assert save(client, image)["wrote"] == "removed"
        idle = wait_status(client, lambda s: s["phase"] == "idle")
        assert idle["learned_from"] == 0 and idle["clicks"]["without"]["images"] == 0
        assert client.post("/api/suggest", json={"image": "d.tif"}).status_code == 409
    assert not (annotations / ".sambox/suggest/samic_adapted.pt").exists()


def test_malformed_suggestions_are_refused(folders, segmenter):
    with script_client(create_app(*folders, segmenter)) as client:
        assert client.get("/api/suggest").json() == {"phase": "off"}
        off = client.post("/api/suggest", json={"image": "a.png"})
        assert off.status_code == 400 and "--suggest" in off.text
        extra = client.post("/api/suggest", json={"image": "a.png", "more": 1})
        assert extra.status_code == 400 and "unknown key 'more'" in extra.text
        bad = [
            ({"objects": []}, "non-empty list"),
            ({"objects": [{"object": 1, "points": [[WIDTH, 5]]}]}, "outside the 80x60 image"),
            ({"objects": [{"object": 1, "points": [[5, 5]], "x": 1}]}, "{object, label, points}"),
            ({"objects": [{"object": 0, "points": [[5, 5]]}]}, "an id in 1..254"),
            ({"objects": [{"object": 1, "points": [[1, 1]] * 65}]}, "at most 64 points"),
        ]
        for fields, message in bad:
            action = {"type": "accept_suggestion", **fields}
            response = client.post("/api/action", json={"image": "a.png", "action": action})
            assert response.status_code == 400 and message in response.text, response.text
        assert client.get("/api/state?name=a.png").json()["can_undo"] is False


@pytest.mark.slow
@pytest.mark.skipif(chromium_path() is None, reason="Debian's chromium is not installed")
def test_suggest_accept_save_and_auto_in_chromium(tmp_path: Path) -> None:
    images, annotations = make_images(tmp_path / "images"), tmp_path / "annotations"
    segmenter = tiny_segmenter()
    app = create_app(images, annotations, segmenter, suggest=tiny_suggest_setup(segmenter))
    with live_server(app) as url, chromium_page() as page:
        sambox = SamboxPage(page)
        sambox.open(url)
        assert page.is_visible("#suggest-panel") and page.is_disabled("#suggest")
        sambox.click(*RED)
        sambox.press("s")
        page.wait_for_function(
            "() => document.querySelector('#suggest-status').textContent"
            " === 'ready (learned from 1 image)'"
        )
        sambox.press("d")  # b.jpg, not annotated
        assert sambox.text("#image-name").startswith("b.jpg")
        assert sambox.view()["objects"] == []

        sambox.press("g")
        suggested = page.evaluate("window.sambox.suggestion()")
        points = [p for o in suggested["objects"] for p in o["points"]]
        assert points and "SAMIC suggests" in sambox.text("#status")
        assert sambox.view()["objects"] == []  # drawn, not clicked
        assert not page.is_disabled("#accept")
        sambox.press("Enter")
        steps = [s for o in sambox.view()["objects"] for i in o["instances"] for s in i["steps"]]
        assert [s["coords"] for s in steps] == points and all(s["suggested"] for s in steps)
        assert page.evaluate("window.sambox.suggestion()") is None
        sambox.press("s")
        page.wait_for_function(
            "() => document.querySelector('#clicks').textContent.startsWith("
            "'clicks per image: 0.0 with suggestions (1 image) vs 1.0 without (1 image)')"
        )

        # Automatic mode: opening an image not annotated yet suggests at once; Esc drops it.
        page.click("#auto-suggest")
        sambox.press("d")
        page.wait_for_function("() => window.sambox.suggestion() !== null")
        sambox.settle()
        assert page.evaluate("window.sambox.suggestion().image") == "c.bmp"
        sambox.press("Escape")
        assert page.evaluate("window.sambox.suggestion()") is None
        assert sambox.view()["objects"] == []

    data = json.loads((annotations / "b.sambox.json").read_text())
    assert data["meta"]["suggested_points"] == {"1": points}


def test_command_line_errors_are_one_line_and_write_nothing(tmp_path, capsys, tiny_models):
    images, out = make_images(tmp_path / "images"), tmp_path / "out"
    base = [str(images), "-o", str(out), "--sam-checkpoint", str(tiny_models["sam"])]
    base += ["--no-browser", "--device", "cpu"]
    cases = [
        (["--samic", str(tmp_path / "none.pt")], "none.pt: SAMIC checkpoint not found"),
        (["--backbone-weights", str(tmp_path / "r.pt")], "ignored without --suggest or --samic"),
        (["--suggest", "--backbone-weights", str(tmp_path / "r.pt")], "r.pt: ResNet-50 weights"),
    ]
    for extra, message in cases:
        assert main(["annotate", *base, *extra]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and message in err, err
        assert not out.exists()


@pytest.mark.slow
def test_annotate_suggest_from_the_command_line(tmp_path, tiny_models):
    """`annotate --suggest` serves SAMIC's progress (a fresh network: the config's)."""
    images, out = make_images(tmp_path / "images"), tmp_path / "out"
    config = tmp_path / "config.yaml"
    network = {"input_size": [64, 64], "channels": [8, 16, 32]}
    config.write_text(json.dumps({"network": network, "adaptation": {"steps": 2, "views": 2}}))
    port = free_port()
    command = [sys.executable, "-m", "samic_vos", "annotate", str(images), "-o", str(out)]
    command += ["--sam-checkpoint", str(tiny_models["sam"]), "--device", "cpu", "--no-browser"]
    command += ["--port", str(port), "--suggest", "--random-backbone", "--config", str(config)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env) as proc:
        try:
            token = proc.stdout.readline().decode().split("token=")[1].split()[0]
            request = urllib.request.Request(
                f"http://127.0.0.1:{port}/api/suggest", headers={"X-SAMBOX-Token": token}
            )
            for _ in range(600):
                try:
                    with urllib.request.urlopen(request, timeout=5) as response:
                        status = json.loads(response.read())
                    break
                except urllib.error.URLError:
                    time.sleep(0.1)
            assert status["phase"] == "idle" and status["steps"] == 2 and not status["trained"]
        finally:
            proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=60) == 130
    assert (out / ".sambox/suggest").is_dir()


def test_other_settings_after_a_restart_adapt_again(folders, segmenter):
    """learned.json records the settings the network learned with: a restart with other
    adaptation settings adapts again instead of serving the old network."""
    images, annotations = folders
    app = create_app(images, annotations, segmenter, suggest=tiny_suggest_setup(segmenter))
    with script_client(app) as client:
        annotate_red(client)
        wait_status(client, lambda s: s["phase"] == "ready")
    learned = json.loads((annotations / ".sambox/suggest/learned.json").read_text())
    assert learned["settings"]["adaptation"]["steps"] == 3
    setup = tiny_suggest_setup(segmenter, steps=4)
    with script_client(create_app(images, annotations, segmenter, suggest=setup)) as client:
        ready = wait_status(client, lambda s: s["phase"] == "ready")
        assert (ready["learned_from"], ready["adaptations"]) == (1, 1)


def test_an_annotation_that_cannot_be_a_reference_does_not_stop_the_learning(
    folders, segmenter, caplog
):
    """An object painted then erased to nothing is saved without pixels: that image is no
    reference (warned), and SAMIC still learns from the others."""
    images, annotations = folders
    app = create_app(images, annotations, segmenter, suggest=tiny_suggest_setup(segmenter))
    stroke = [[[30.0, 30.0], [50.0, 30.0]]]
    with script_client(app) as client:
        act(client, {"type": "new_object", "label": "red"}, "b.jpg")
        paint = {"type": "paint", "object": 1, "strokes": stroke, "radius": 3.0}
        act(client, paint, "b.jpg")
        act(client, {**paint, "radius": 6.0, "erase": True}, "b.jpg")
        save(client, "b.jpg")
        annotate_red(client)
        ready = wait_status(client, lambda s: s["phase"] in ("ready", "failed"))
        assert ready["phase"] == "ready" and ready["learned_from"] == 1, ready
    assert "SAMIC does not learn from b.jpg" in caplog.text


def test_references_without_clicks_take_their_embedding_from_the_cache(tmp_path, segmenter):
    """Objects imported as masks have no clicks: SAMIC's prompts on them come from SAM over
    the mask, with the image's cached embedding, never an encoding under the annotator's lock
    (which holds every click meanwhile)."""
    import contextlib

    from samic_vos.data.mask_io import write_mask

    images, masks = make_images(tmp_path / "images"), tmp_path / "masks"
    masks.mkdir()
    for name in ("a", "b", "c"):
        ids = np.zeros((HEIGHT, WIDTH), np.uint8)
        ids[10:40, 10:40] = 1
        write_mask(masks / f"{name}.png", ids)
    setup = tiny_suggest_setup(segmenter)
    app = create_app(images, tmp_path / "ann", segmenter, masks, import_as="masks", suggest=setup)
    annotator, locked, inside = app.state.annotator, [], threading.local()
    in_use, embed = annotator.segmenter_in_use, segmenter.embed

    @contextlib.contextmanager
    def watched():
        with in_use() as sam:
            inside.on = True
            try:
                yield sam
            finally:
                inside.on = False

    def counted_embed(*args, **kwargs):
        if getattr(inside, "on", False):
            locked.append(threading.current_thread().name)
        return embed(*args, **kwargs)

    annotator.segmenter_in_use, segmenter.embed = watched, counted_embed
    try:
        with script_client(app) as client:
            for name in ("a.png", "b.jpg", "c.bmp"):
                client.get("/api/state", params={"name": name})
                save(client, name)
                wait_status(
                    client,
                    lambda s, n=name: (
                        s["phase"] == "ready" and s["learned_from"] == "abc".index(n[0]) + 1
                    ),
                )
    finally:
        segmenter.embed = embed
    assert locked == []
