"""Benchmark of SAMBOX (`samic-vos annotate`): click → mask drawn, with a cached embedding.

Random weights (no checkpoint can be downloaded here) in the real SAM ViT-B architecture, so
the decoder's compute is the real one: prompt encoder + mask decoder on a 64x64x256 embedding,
masks upscaled to the image, composed, sent as a palette PNG. Two scenes:

- ``--scene bear`` (default): the DAVIS bear frame (854x480), two objects (the bear, and a
  rock in two instances), made by the clicks timed;
- ``--scene vspw``: the VSPW 1920x1080 frame with ``--objects`` objects (40: the largest of
  its first-frame mask, one interior point each, :func:`interior_points`, given at once as
  an accepted suggestion before the timing), then ``--clicks`` positive clicks on the largest
  object timed (pixels of its mask, seeded). With ``--ahead`` the folder also holds the next
  frames, whose embeddings are not cached: the server encodes them in the background (SAMBOX's
  prefetch of the next images) while the clicks are timed; the run says how many of those
  encodings had finished by the last timed click.

1. The clicked frame's embedding is computed once (timed: SAM's image encoder) and cached on
   disk; every click after that decodes against the cached embedding.
2. Server alone: each prompt is a POST /api/action through FastAPI's TestClient (in process,
   with the token header, sending the ``mask_token`` of the mask held, as the page does); the
   time from request to decoded JSON answer.
3. In the browser: the real server (uvicorn, 127.0.0.1) and the page in headless Chromium
   (Playwright): the page's own clock from the mouse event to the mask drawn on the canvas
   (request, decode, PNG, JSON, image decode, draw), on a fresh server (nothing decoded is
   remembered from 2). Target: median ≤ 150 ms.

SAM's decoder alone (``SamSegmenter.prompt`` on the same prompts, in a worker thread as in the
server) is timed in the same run, so the cost of everything around it can be told apart from
the machine's load.

``--screenshot PATH`` writes the page after the clicks (the README's picture).
``--embeddings DIR`` keeps the clicked frame's embedding cache in DIR between runs (the image
encoder, minutes for ViT-B on a loaded CPU, then runs once for all the runs; the random
weights are seeded).

Usage: .venv/bin/python -u benchmarks/bench_annotate.py [--threads 2] [--screenshot P]
    [--embeddings DIR] [--scene vspw [--objects 40] [--clicks 8] [--ahead]]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from samic_vos.annotate.annotator import PREFETCH, STATE_FOLDER
from samic_vos.annotate.browser import SamboxPage, chromium_page, live_server, script_client
from samic_vos.annotate.server import create_app
from samic_vos.data.mask_io import object_ids, read_mask
from samic_vos.prompts.mask_points import interior_points
from samic_vos.runtime.stage_threads import StageThreads
from samic_vos.sam.models import build_sam
from samic_vos.sam.segmenter import SamSegmenter

DATA = Path(__file__).resolve().parents[2] / "shared/data"
BEAR = DATA / "DAVIS/JPEGImages/480p/bear/00000.jpg"
VSPW_CLIP = "1001_3iEIq5HBY1s"
VSPW_FRAMES = DATA / "vspw/JPEGImages/Full-Resolution" / VSPW_CLIP
VSPW_MASK = DATA / "vspw/Annotations/Full-Resolution" / VSPW_CLIP / "00002058.png"

# (x, y, positive) clicks in image pixels; "instance" / "object" start a new one.
SCRIPT: list[tuple] = [
    ("object", "bear"),
    (311, 290, True),
    (180, 285, True),
    (410, 330, True),
    (520, 400, False),
    (130, 250, True),
    ("object", "rock"),
    (650, 150, True),
    (620, 250, True),
    (740, 60, True),
    ("instance",),
    (350, 150, True),
    (380, 135, True),
]


@dataclass
class Scene:
    """The frame clicked (``frames[0]``) and the folder's other frames, the action that makes
    the objects before the timing (``None``: none), and the timed script (as :data:`SCRIPT`)."""

    frames: list[Path]
    setup: dict[str, Any] | None
    script: list[tuple]

    @property
    def name(self) -> str:
        return self.frames[0].name


def vspw_scene(objects: int, clicks: int, ahead: bool) -> Scene:
    """The VSPW frame with its ``objects`` largest objects prompted by one interior point each,
    then ``clicks`` positive clicks on the largest one; with ``ahead``, the next frames too."""
    ids = read_mask(VSPW_MASK)
    areas = {k: int((ids == k).sum()) for k in object_ids(ids)}
    chosen = sorted(areas, key=lambda k: -areas[k])[:objects]
    suggested = []
    for k in chosen:
        (x, y), *_ = interior_points(ids == k).tolist()
        suggested.append({"object": k, "label": None, "points": [[x, y]]})
    rows, cols = np.nonzero(ids == chosen[0])
    picks = np.random.default_rng(0).choice(len(rows), clicks, replace=False)
    script = [(float(cols[i]), float(rows[i]), True) for i in picks]
    frames = sorted(VSPW_FRAMES.glob("*.jpg"))
    return Scene(
        frames[: 1 + PREFETCH] if ahead else frames[:1],
        {"type": "accept_suggestion", "objects": suggested},
        script,
    )


def summary(name: str, values: list[float]) -> str:
    values = sorted(values)
    return (
        f"| {name} | {len(values)} | {statistics.median(values):.1f} | "
        f"{values[len(values) // 10]:.1f} | {values[-1]:.1f} |"
    )


def decoder_latencies(segmenter: SamSegmenter, script: list[tuple]) -> list[float]:
    """SamSegmenter.prompt alone, in ms, for the script's prompts (one instance per object)."""
    times, points, labels = [], [], []
    for entry in script:
        if isinstance(entry[0], str):
            points, labels = [], []
            continue
        points.append(entry[:2])
        labels.append(int(entry[2]))
        started = time.perf_counter()
        segmenter.prompt(np.array(points, float), np.array(labels))
        times.append((time.perf_counter() - started) * 1000)
    return times


def _body(name: str, action: dict[str, Any], shown: str | None) -> dict[str, Any]:
    """An action's request; ``shown``: the mask token of the answer before (as the page)."""
    return {"image": name, "action": action, **({} if shown is None else {"mask_token": shown})}


def server_latencies(app, scene: Scene) -> tuple[list[float], int]:
    """Each click's POST /api/action → JSON answer, in ms, through TestClient; and the
    background encodings finished by the last click."""
    times = []
    name = scene.name
    with script_client(app) as client:
        shown = client.get("/api/state", params={"name": name}).json().get("mask_token")
        for entry in scene.script:
            if isinstance(entry[0], str):
                kind = "new_object" if entry[0] == "object" else "new_instance"
                action = {"type": kind, "label": entry[1] if len(entry) > 1 else None}
                answer = client.post("/api/action", json=_body(name, action, shown)).json()
                shown = answer.get("mask_token")
                continue
            x, y, positive = entry
            action = {"type": "point", "x": x, "y": y, "positive": positive}
            started = time.perf_counter()
            response = client.post("/api/action", json=_body(name, action, shown))
            shown = response.json().get("mask_token")
            times.append((time.perf_counter() - started) * 1000)
            assert response.status_code == 200, response.text
        encoded = app.state.annotator.embeddings.encoded
        client.post("/api/action", json={"image": name, "action": {"type": "reset"}})
    return times, encoded


def browser_latencies(app, scene: Scene, screenshot: Path | None) -> tuple[list[float], int]:
    """Each click's mouse event → mask drawn, in ms, measured by the page; and the background
    encodings finished by the last click."""
    times = []
    with live_server(app) as url, chromium_page(1400, 640) as page:
        sambox = SamboxPage(page)
        sambox.open(url)
        for entry in scene.script:
            if entry[0] == "object":
                page.fill("#label", entry[1])
                page.click("#new-object")
                sambox.settle()
            elif entry[0] == "instance":
                sambox.press("n")
            else:
                times.append(sambox.click(entry[0], entry[1], positive=entry[2]))
        encoded = app.state.annotator.embeddings.encoded
        if screenshot is not None:
            page.mouse.move(5, 5)
            page.screenshot(path=str(screenshot))
    return times, encoded


def fresh_app(root: Path, scene: Scene, segmenter: SamSegmenter, cache: Path):
    """A server on a new folder of the scene's frames, its embedding cache a copy of ``cache``
    (the clicked frame's: the other frames get encoded), the scene's objects made."""
    images, annotations = root / "images", root / "annotations"
    images.mkdir(parents=True)
    for frame in scene.frames:
        shutil.copy(frame, images / frame.name)
    shutil.copytree(cache, annotations / STATE_FOLDER / "embeddings")
    app = create_app(images, annotations, segmenter)
    if scene.setup is not None:
        app.state.annotator.act(scene.name, scene.setup)
    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2, help="torch threads")
    parser.add_argument("--arch", default="vit_b", help="SAM architecture (random weights)")
    parser.add_argument("--screenshot", type=Path, help="write the page's screenshot here")
    parser.add_argument("--embeddings", type=Path, help="keep the embedding cache here")
    parser.add_argument("--scene", choices=("bear", "vspw"), default="bear")
    parser.add_argument("--objects", type=int, default=40, help="vspw: objects prompted")
    parser.add_argument("--clicks", type=int, default=8, help="vspw: clicks timed")
    parser.add_argument("--ahead", action="store_true", help="vspw: next frames being encoded")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    # As `samic-vos annotate` builds it: every stage at the process's thread count.
    sam = build_sam(args.arch, random_init=True)
    segmenter = SamSegmenter(sam, "cpu", threads=StageThreads.interactive())
    if args.scene == "bear":
        scene = Scene([BEAR], None, SCRIPT)
    else:
        scene = vspw_scene(args.objects, args.clicks, args.ahead)
    print(f"load average before: {os.getloadavg()}, torch threads {args.threads}")
    with tempfile.TemporaryDirectory() as tmp:
        cache = args.embeddings or Path(tmp) / "embeddings"
        cache.mkdir(parents=True, exist_ok=True)
        images, state = Path(tmp) / "encode", Path(tmp) / "encode-annotations" / STATE_FOLDER
        images.mkdir()
        shutil.copy(scene.frames[0], images / scene.name)
        state.mkdir(parents=True)
        (state / "embeddings").symlink_to(cache.resolve())
        encoder = create_app(images, state.parent, segmenter)
        started = time.perf_counter()
        embedding = encoder.state.annotator.embeddings.get(images / scene.name)
        encode_s = time.perf_counter() - started
        encoder.state.annotator.close()
        print(f"SAM {args.arch} image encoder (once, then cached): {encode_s:.1f} s (0 if cached)")
        segmenter.set_embedding(embedding)
        # In a worker thread, as the server decodes (FastAPI runs its handlers in a thread pool;
        # on this loaded machine the main thread's decoding measured 2-4x slower).
        with ThreadPoolExecutor(1) as worker:
            decoder = worker.submit(decoder_latencies, segmenter, scene.script).result()
        app = fresh_app(Path(tmp) / "server", scene, segmenter, cache)
        server, server_encoded = server_latencies(app, scene)
        # A new server on a new folder: none of the decodings of the first run are remembered,
        # and the next frames are encoded again.
        fresh = fresh_app(Path(tmp) / "browser", scene, segmenter, cache)
        browser, browser_encoded = browser_latencies(fresh, scene, args.screenshot)
        fresh.state.annotator.close()
    ahead = len(scene.frames) - 1
    print(
        f"scene {args.scene}: {scene.name}, {embedding.original_size[1]}x"
        f"{embedding.original_size[0]}, frames encoded ahead: {ahead}"
    )
    if ahead:
        print(
            f"background encodings finished by the last click: server {server_encoded} of "
            f"{ahead}, browser {browser_encoded} of {ahead}"
        )
    print("\n| click → | clicks | median ms | p10 ms | max ms |\n| --- | --- | --- | --- | --- |")
    print(summary("SAM decoder alone (SamSegmenter.prompt)", decoder))
    print(summary("server answer (TestClient)", server))
    print(summary("mask drawn in Chromium", browser))
    print(f"\nload average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
