"""SAMBOX loses no work: one server per folder, stale tabs refused, only real work saved, a
JSON and its mask saved as one unit, what a killed save left cleaned at start."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys

import numpy as np
import pytest
from sambox_helpers import decode_png, saved_mask

from samic_vos.annotate.browser import script_client
from samic_vos.annotate.folder_lock import FolderInUse
from samic_vos.annotate.server import create_app
from samic_vos.commands.cli import main
from samic_vos.data.mask_io import read_mask, write_mask
from samic_vos.data.sambox_format import read_annotation

A = {"type": "point", "x": 20.0, "y": 20.0, "positive": True, "refine": False}
B = {"type": "point", "x": 60.0, "y": 40.0, "positive": True, "refine": False}


def post(client, path, payload, status=200):
    response = client.post(path, json=payload)
    assert response.status_code == status, response.text
    return response.json()


def files(folder):
    """The annotations folder's files but the embeddings and the lock: name -> bytes."""
    return {
        str(p.relative_to(folder)): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and "embeddings" not in p.parts and p.name != "lock"
    }


def test_a_second_server_on_one_folder_is_refused_in_one_line(folders, segmenter, tmp_path, capsys):
    images, annotations = folders
    first = create_app(images, annotations, segmenter)
    with script_client(first) as client:
        post(client, "/api/action", {"image": "a.png", "action": A})
        with pytest.raises(FolderInUse) as refused:
            create_app(images, annotations, segmenter)
        message = str(refused.value)
        assert "\n" not in message and f"pid {os.getpid()} on " in message
        assert message.startswith(f"{annotations}: another `samic-vos annotate` is working")
        first.state.annotator.embeddings.wait()  # its encoder's log lines are not the command's
        capsys.readouterr()
        # The command line says so before loading SAM (the checkpoint does not even exist).
        code = main(["annotate", str(images), "-o", str(annotations), "--no-browser",
                     "--sam-checkpoint", str(tmp_path / "none.pt")])  # fmt: skip
        err = capsys.readouterr().err
        assert code == 2 and err.count("\n") == 1 and "another `samic-vos annotate`" in err
        assert "none.pt" not in err  # refused before SAM's checkpoint was looked at
    # Shut down: the folder is free again, and the first server's click is all there is.
    with script_client(create_app(images, annotations, segmenter)) as client:
        view = client.get("/api/state", params={"name": "a.png"}).json()
        assert [len(i["steps"]) for i in view["objects"][0]["instances"]] == [1]


def test_a_lock_left_by_a_killed_server_is_taken_over(folders, segmenter, caplog):
    images, annotations = folders
    holder = (
        "import sys, time; from pathlib import Path;"
        "from samic_vos.annotate.folder_lock import FolderLock;"
        "FolderLock(Path(sys.argv[1])); print('locked', flush=True); time.sleep(600)"
    )
    with subprocess.Popen(
        [sys.executable, "-c", holder, str(annotations)], stdout=subprocess.PIPE
    ) as proc:
        assert proc.stdout.readline() == b"locked\n"
        with pytest.raises(FolderInUse, match=f"pid {proc.pid} on "):
            create_app(images, annotations, segmenter)
        proc.kill()
    assert json.loads((annotations / ".sambox/lock").read_text())["pid"] == proc.pid  # stale
    with caplog.at_level(logging.INFO, logger="samic_vos.annotate.folder_lock"):
        app = create_app(images, annotations, segmenter)
    assert f"taking over a stale lock of {annotations} (pid {proc.pid} on " in caplog.text
    app.state.annotator.close()


def test_a_stale_tab_is_refused_and_learns_the_current_revision(folders, segmenter):
    """Two tabs on one image: the one that did not see the other's click is refused (409,
    with the current revision) instead of adding to the other's objects; nothing changes."""
    app = create_app(*folders, segmenter)
    with script_client(app) as client:
        seen = client.get("/api/state", params={"name": "a.png"}).json()["revision"]
        one = post(client, "/api/action", {"image": "a.png", "action": A, "revision": seen})
        assert one["revision"] == seen + 1
        for path, payload in (
            ("/api/action", {"image": "a.png", "action": B, "revision": seen}),
            ("/api/action", {"image": "a.png", "action": {"type": "undo"}, "revision": seen}),
            ("/api/save", {"image": "a.png", "revision": seen}),
        ):
            stale = post(client, path, payload, status=409)
            assert stale["revision"] == one["revision"]
            assert "changed in another tab" in stale["detail"]
        now = client.get("/api/state", params={"name": "a.png"}).json()
        assert now["objects"] == one["objects"] and now["revision"] == one["revision"]
        assert not (folders[1] / "a.sambox.json").exists()
        # Reloaded, the tab goes on from the current revision.
        two = post(
            client, "/api/action", {"image": "a.png", "action": B, "revision": now["revision"]}
        )
        assert [len(i["steps"]) for i in two["objects"][0]["instances"]] == [2]
    with script_client(create_app(*folders, segmenter)) as client:  # kept across a restart
        assert client.get("/api/state", params={"name": "a.png"}).json()["revision"] == 2


def test_only_real_work_is_saved_and_nothing_here_is_explicit(folders, segmenter):
    images, annotations = folders
    with script_client(create_app(images, annotations, segmenter)) as client:
        # Looking at images (what D does) and even S on an untouched one write nothing.
        for name in ("a.png", "b.jpg"):
            view = client.get("/api/state", params={"name": name}).json()
            assert not view["dirty"] and view["saved"] is None
        assert post(client, "/api/save", {"image": "b.jpg"})["wrote"] is None
        # A click undone, or an object without a click, is no work either.
        post(client, "/api/action", {"image": "b.jpg", "action": A})
        assert not post(client, "/api/action", {"image": "b.jpg", "action": {"type": "undo"}})[
            "dirty"
        ]
        post(client, "/api/action", {"image": "c.bmp", "action": {"type": "new_object"}})
        assert post(client, "/api/save", {"image": "c.bmp"})["wrote"] is None
        assert files(annotations).keys() <= {
            ".sambox/sessions/a.png.json",
            ".sambox/sessions/b.jpg.json",
            ".sambox/sessions/c.bmp.json",
        }
        assert client.get("/api/images").json()["annotated"] == 0

        marked = post(client, "/api/save", {"image": "b.jpg", "nothing_here": True})
        assert marked["wrote"] == "nothing_here" and marked["saved"] == "nothing_here"
        assert read_annotation(annotations / "b.sambox.json").objects == []
        assert not (annotations / "masks").exists()  # no mask for "nothing here"
        listing = client.get("/api/images").json()
        assert [i["saved"] for i in listing["images"]] == [None, "nothing_here", None, None]
        assert listing["annotated"] == 1

        post(client, "/api/action", {"image": "a.png", "action": A})
        refused = post(client, "/api/save", {"image": "a.png", "nothing_here": True}, 400)
        assert "has objects: reset it" in refused["detail"]
        assert post(client, "/api/save", {"image": "a.png"})["wrote"] == "objects"
        saved_mask(annotations, "a")
        # Every object removed and saved: the annotation goes, the image is not done.
        post(client, "/api/action", {"image": "a.png", "action": {"type": "reset"}})
        removed = post(client, "/api/save", {"image": "a.png"})
        assert removed["wrote"] == "removed" and removed["saved"] is None
        assert not (annotations / "a.sambox.json").exists()
        assert list((annotations / "masks").iterdir()) == []
        assert client.get("/api/images").json()["annotated"] == 1


def test_a_json_and_its_mask_are_one_unit(folders, segmenter, monkeypatch):
    """A save killed after its mask was written: the JSON still names the previous save's
    mask, unchanged; the next server removes the new mask nobody names and the temporary
    files of killed writes, and keeps masks it did not write."""
    images, annotations = folders
    with script_client(create_app(images, annotations, segmenter)) as client:
        post(client, "/api/action", {"image": "a.png", "action": A})
        first = post(client, "/api/save", {"image": "a.png"})
        post(client, "/api/action", {"image": "a.png", "action": {"type": "new_object"}})
        post(client, "/api/action", {"image": "a.png", "action": B})
        second = post(client, "/api/save", {"image": "a.png"})
        np.testing.assert_array_equal(saved_mask(annotations, "a"), decode_png(second["mask_png"]))
        # The next save dies between its mask and its JSON.
        post(client, "/api/action", {"image": "a.png", "action": {"type": "undo"}})

        def killed(*args):
            raise RuntimeError("killed")

        monkeypatch.setattr("samic_vos.annotate.annotator.write_annotation", killed)
        with pytest.raises(RuntimeError, match="killed"):
            client.post("/api/save", json={"image": "a.png"})
    monkeypatch.undo()
    masks = annotations / "masks"
    assert len(list(masks.glob("a.*.png"))) == 2  # the committed one and the orphan
    annotation = read_annotation(annotations / "a.sambox.json")
    assert len(annotation.objects) == 2  # the second save: its JSON and its own mask
    np.testing.assert_array_equal(saved_mask_named(annotation), decode_png(second["mask_png"]))
    assert not np.array_equal(decode_png(first["mask_png"]), decode_png(second["mask_png"]))

    # What killed writes leave, and a mask of the person's own.
    leftovers = [
        annotations / ".a.k3j2h1g0.part.json",
        masks / ".a.abcd_123.part.png",
        annotations / ".sambox/sessions/.a.png.zzzzzzzz.part.json",
    ]
    for path in leftovers:
        path.write_bytes(b"half")
    write_mask(masks / "a.png", np.zeros((60, 80), np.uint8))
    with script_client(create_app(images, annotations, segmenter)):
        pass
    assert not any(p.exists() for p in leftovers)
    assert (masks / "a.png").exists()
    np.testing.assert_array_equal(saved_mask(annotations, "a"), decode_png(second["mask_png"]))


def saved_mask_named(annotation):
    """The mask the annotation's objects name (one file for all)."""
    (path,) = {annotation.mask_path(o) for o in annotation.objects}
    return read_mask(path)
