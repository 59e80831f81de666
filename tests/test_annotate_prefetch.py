"""SAMBOX's encoding of the next images never holds a click back: it runs in its own thread at
the lowest CPU priority (Linux's per-thread nice), a click is decoded while it runs, and it
waits at its blocks' starts while clicks are served and shortly after."""

from __future__ import annotations

import os
import sys
import threading
import time
from pathlib import Path

import pytest
from sambox_helpers import make_images, tiny_segmenter

from samic_vos.annotate.browser import script_client
from samic_vos.annotate.server import create_app
from samic_vos.runtime.thread_priority import BACKGROUND_NICE

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="per-thread priorities are Linux's"
)


def test_a_click_is_decoded_at_the_usual_priority_while_the_next_images_encode(
    tmp_path: Path,
) -> None:
    segmenter = tiny_segmenter()
    usual = os.getpriority(os.PRIO_PROCESS, 0)  # this thread's nice (0: the calling thread)
    encoding, release = threading.Event(), threading.Event()
    priorities: dict[str, set[int]] = {"background": set(), "request": set()}

    def encoder_runs(*_) -> None:  # the patch embedding: the first module of every encoder
        background = threading.current_thread().name.startswith("sambox-encode")
        priorities["background" if background else "request"].add(
            os.getpriority(os.PRIO_PROCESS, 0)
        )
        if background:
            encoding.set()
            release.wait(timeout=60)  # held until the click below is answered

    hook = segmenter.sam.image_encoder.patch_embed.register_forward_hook(encoder_runs)
    app = create_app(make_images(tmp_path / "images"), tmp_path / "annotations", segmenter)
    try:
        with script_client(app) as client:
            client.get("/api/state", params={"name": "a.png"})  # encoded now; b, c ahead
            assert encoding.wait(timeout=60)
            click = {"type": "point", "x": 20.0, "y": 20.0}
            answer = client.post("/api/action", json={"image": "a.png", "action": click})
            # Answered while the next image's encoding is still held: it waited for none.
            assert answer.status_code == 200 and not release.is_set()
            assert app.state.annotator.embeddings.encoded == 1
            release.set()
            app.state.annotator.embeddings.wait()
            assert app.state.annotator.embeddings.encoded == 3
    finally:
        release.set()
        hook.remove()
    assert priorities == {"background": {max(usual, BACKGROUND_NICE)}, "request": {usual}}
    assert os.getpriority(os.PRIO_PROCESS, 0) == usual


def test_opening_an_image_being_encoded_ahead_does_not_wait_for_that_encoding(
    tmp_path: Path,
) -> None:
    """The person opens b while b is encoded ahead at the lowest priority (held here): b is
    encoded again at the person's priority and answered; the held encoding changes nothing and
    stops at its next block."""
    segmenter = tiny_segmenter()
    encoding, release, finished = threading.Event(), threading.Event(), threading.Event()

    def encoder_runs(*_) -> None:
        if threading.current_thread().name.startswith("sambox-encode"):
            encoding.set()
            release.wait(timeout=20)
            finished.set()  # the held encoding went on

    hook = segmenter.sam.image_encoder.patch_embed.register_forward_hook(encoder_runs)
    app = create_app(make_images(tmp_path / "images"), tmp_path / "annotations", segmenter)
    try:
        with script_client(app) as client:
            client.get("/api/state", params={"name": "a.png"})  # a encoded now; b held ahead
            assert encoding.wait(timeout=60)
            answer = client.get("/api/state", params={"name": "b.jpg"})
            assert answer.status_code == 200 and not finished.is_set()  # it waited for none
            release.set()
            app.state.annotator.embeddings.wait()
            again = client.get("/api/state", params={"name": "b.jpg"}).json()
            assert again["mask_png"] == answer.json()["mask_png"]
            # Each of the 4 images encoded once: the held encoding of b gave up at its next
            # block, b's embedding being there already.
            assert app.state.annotator.embeddings.encoded == 4
    finally:
        release.set()
        hook.remove()


def test_the_encoding_ahead_waits_at_its_blocks_while_a_person_is_served(tmp_path: Path) -> None:
    segmenter = tiny_segmenter()
    at_start, go = threading.Event(), threading.Event()

    def encoder_starts(*_) -> None:  # before the blocks: the encoding ahead is held here
        if threading.current_thread().name.startswith("sambox-encode"):
            at_start.set()
            go.wait(timeout=60)

    hook = segmenter.sam.image_encoder.patch_embed.register_forward_hook(encoder_starts)
    app = create_app(make_images(tmp_path / "images"), tmp_path / "annotations", segmenter)
    embeddings = app.state.annotator.embeddings
    gate = embeddings.gate
    gate.linger = 0.5
    try:
        with script_client(app) as client:
            client.get("/api/state", params={"name": "a.png"})  # a encoded now; b, c ahead
            assert at_start.wait(timeout=60)
            with gate.foreground():  # a person's request being served, for a second
                go.set()  # the encoding reaches its first block and waits there
                click = {"type": "point", "x": 20.0, "y": 20.0}
                answer = client.post("/api/action", json={"image": "a.png", "action": click})
                assert answer.status_code == 200  # the click itself waited for nothing
                time.sleep(1.0)
                assert embeddings.encoded == 1
                ended = time.monotonic()
            embeddings.wait()
            assert time.monotonic() - ended >= gate.linger  # and stayed paused that long after
            assert embeddings.encoded == 3 and gate.paused_s >= 1.0 + gate.linger
    finally:
        go.set()
        hook.remove()
