"""Benchmark of SAMBOX (`samic-vos annotate`): click → mask drawn, with a cached embedding.

Random weights (no checkpoint can be downloaded here) in the real SAM ViT-B architecture, so
the decoder's compute is the real one: prompt encoder + mask decoder on a 64x64x256 embedding,
masks upscaled to the image, composed, sent as a palette PNG. On the DAVIS bear frame
(854x480), two objects (the bear, and a rock in two instances):

1. The embedding is computed once (timed: SAM's image encoder) and cached on disk; every click
   after that decodes against the cached embedding.
2. Server alone: each prompt is a POST /api/action through FastAPI's TestClient (in process,
   with the token header); the time from request to decoded JSON answer.
3. In the browser: the real server (uvicorn, 127.0.0.1) and the page in headless Chromium
   (Playwright): the page's own clock from the mouse event to the mask drawn on the canvas
   (request, decode, PNG, JSON, image decode, draw), on a fresh server (nothing decoded is
   remembered from 2). Target: median ≤ 150 ms.

SAM's decoder alone (``SamSegmenter.prompt`` on the same prompts, in a worker thread as in the
server) is timed in the same run, so the cost of everything around it can be told apart from
the machine's load.

``--screenshot PATH`` writes the page after the clicks (the README's picture).
``--embeddings DIR`` keeps the embedding cache in DIR between runs (the image encoder, minutes
for ViT-B on a loaded CPU, then runs once for all the runs; the random weights are seeded).

Usage: .venv/bin/python -u benchmarks/bench_annotate.py [--threads 2] [--screenshot P]
    [--embeddings DIR]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch

from samic_vos.annotate.annotator import STATE_FOLDER
from samic_vos.annotate.browser import SamboxPage, chromium_page, live_server, script_client
from samic_vos.annotate.server import create_app
from samic_vos.runtime.stage_threads import StageThreads
from samic_vos.sam.models import build_sam
from samic_vos.sam.segmenter import SamSegmenter

BEAR = Path(__file__).resolve().parents[2] / "shared/data/DAVIS/JPEGImages/480p/bear/00000.jpg"

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


def summary(name: str, values: list[float]) -> str:
    values = sorted(values)
    return (
        f"| {name} | {len(values)} | {statistics.median(values):.1f} | "
        f"{values[len(values) // 10]:.1f} | {values[-1]:.1f} |"
    )


def decoder_latencies(segmenter: SamSegmenter) -> list[float]:
    """SamSegmenter.prompt alone, in ms, for the script's prompts (one instance per object)."""
    times, points, labels = [], [], []
    for entry in SCRIPT:
        if isinstance(entry[0], str):
            points, labels = [], []
            continue
        points.append(entry[:2])
        labels.append(int(entry[2]))
        started = time.perf_counter()
        segmenter.prompt(np.array(points, float), np.array(labels))
        times.append((time.perf_counter() - started) * 1000)
    return times


def server_latencies(app) -> list[float]:
    """Each click's POST /api/action → JSON answer, in ms, through TestClient."""
    times = []
    with script_client(app) as client:
        client.get("/api/state", params={"name": BEAR.name})
        for entry in SCRIPT:
            if isinstance(entry[0], str):
                kind = "new_object" if entry[0] == "object" else "new_instance"
                action = {"type": kind, "label": entry[1] if len(entry) > 1 else None}
                client.post("/api/action", json={"image": BEAR.name, "action": action})
                continue
            x, y, positive = entry
            action = {"type": "point", "x": x, "y": y, "positive": positive}
            started = time.perf_counter()
            response = client.post("/api/action", json={"image": BEAR.name, "action": action})
            response.json()
            times.append((time.perf_counter() - started) * 1000)
            assert response.status_code == 200, response.text
        client.post("/api/action", json={"image": BEAR.name, "action": {"type": "reset"}})
    return times


def browser_latencies(app, screenshot: Path | None) -> list[float]:
    """Each click's mouse event → mask drawn, in ms, measured by the page."""
    times = []
    with live_server(app) as url, chromium_page(1400, 640) as page:
        sambox = SamboxPage(page)
        sambox.open(url)
        for entry in SCRIPT:
            if entry[0] == "object":
                page.fill("#label", entry[1])
                page.click("#new-object")
                sambox.settle()
            elif entry[0] == "instance":
                sambox.press("n")
            else:
                times.append(sambox.click(entry[0], entry[1], positive=entry[2]))
        if screenshot is not None:
            page.mouse.move(5, 5)
            page.screenshot(path=str(screenshot))
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2, help="torch threads")
    parser.add_argument("--arch", default="vit_b", help="SAM architecture (random weights)")
    parser.add_argument("--screenshot", type=Path, help="write the page's screenshot here")
    parser.add_argument("--embeddings", type=Path, help="keep the embedding cache here")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    # As `samic-vos annotate` builds it: every stage at the process's thread count.
    sam = build_sam(args.arch, random_init=True)
    segmenter = SamSegmenter(sam, "cpu", threads=StageThreads.interactive())
    print(f"load average before: {os.getloadavg()}, torch threads {args.threads}")
    with tempfile.TemporaryDirectory() as tmp:
        images = Path(tmp) / "images"
        images.mkdir()
        shutil.copy(BEAR, images / BEAR.name)
        if args.embeddings is not None:
            args.embeddings.mkdir(parents=True, exist_ok=True)
            state = Path(tmp) / "annotations" / STATE_FOLDER
            state.mkdir(parents=True)
            (state / "embeddings").symlink_to(args.embeddings.resolve())
        app = create_app(images, Path(tmp) / "annotations", segmenter)
        started = time.perf_counter()
        embedding = app.state.annotator.embeddings.get(images / BEAR.name)
        encode_s = time.perf_counter() - started
        print(f"SAM {args.arch} image encoder (once, then cached): {encode_s:.1f} s (0 if cached)")
        segmenter.set_embedding(embedding)
        # In a worker thread, as the server decodes (FastAPI runs its handlers in a thread pool;
        # on this loaded machine the main thread's decoding measured 2-4x slower).
        with ThreadPoolExecutor(1) as worker:
            decoder = worker.submit(decoder_latencies, segmenter).result()
        server = server_latencies(app)
        # A new server on the same folder: its embedding comes from the disk cache, and none of
        # the decodings of the first run are remembered.
        fresh = create_app(images, Path(tmp) / "annotations", segmenter)
        browser = browser_latencies(fresh, args.screenshot)
        encoded = app.state.annotator.embeddings.encoded + fresh.state.annotator.embeddings.encoded
    print(f"encoder calls in all: {encoded} (the cached embedding served every click)")
    print("\n| click → | clicks | median ms | p10 ms | max ms |\n| --- | --- | --- | --- | --- |")
    print(summary("SAM decoder alone (SamSegmenter.prompt)", decoder))
    print(summary("server answer (TestClient)", server))
    print(summary("mask drawn in Chromium", browser))
    print(f"\nload average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
