"""Time of the pipeline's small stages with 1 and 2 torch threads, quiet and under contention.

What it measures, per stage (median of ``--repeats`` calls after one warm-up call):

- ``samic backbone``: :meth:`SamicNet.extract_features` of one frame (default SAMIC network,
  224×224, random ResNet-50 backbone);
- ``samic head bN``: :meth:`SamicNet.predict` with a batch of N references (1: one object with
  one reference; 2: the last and the first reference, as the tracker decodes them);
- ``sam decoder``: :meth:`SamSegmenter.segment` of one object from 3 one-point groups against
  a fixed embedding (SAM ViT-B architecture, random weights, a 854×480 frame);
- ``adaptation step``: one step of :func:`adapt_on_first_frame` (``seconds_per_step`` of a
  run of ``--steps`` steps; validations included as they occur), on the first bear frame;
- ``training step``: one training step of the trainer's kind (head forward on cached
  features, saliency loss, backward, Adam), batch 4.

Each under ``torch.set_num_threads(1)`` and ``(2)``, once on a quiet machine and once with one
competing busy process (``while True: pass``) beside it. Random weights: the compute is the
real one, not the numbers. Denormals are flushed as the pipeline does.

Usage: .venv/bin/python -u benchmarks/bench_stage_threads.py [--repeats 7] [--steps 6]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from bench_track import busy_processes

from samic_vos.data.frame_source import open_frames
from samic_vos.data.mask_io import read_mask
from samic_vos.model.samic_net import SamicNetConfig, build_samic, preprocess
from samic_vos.prompts.heatmaps import points_to_heatmap
from samic_vos.runtime.devices import flush_denormals
from samic_vos.runtime.stage_threads import torch_threads
from samic_vos.sam.models import build_sam
from samic_vos.sam.segmenter import ImageEmbedding, SamSegmenter
from samic_vos.training.first_frame_adaptation import AdaptationConfig, adapt_on_first_frame
from samic_vos.training.losses import saliency_loss

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "videos"
VIDEO = DATA / "davis_bear.mp4"
FIRST_MASK = DATA / "davis_bear_first_mask.png"


def median_seconds(call: Callable[[], object], repeats: int) -> float:
    call()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def build_stages(steps: int) -> dict[str, Callable[[], object]]:
    """Stage name → a call running it once."""
    torch.manual_seed(0)
    with open_frames(VIDEO) as source:
        rgb = next(iter(source)).rgb
    ids = read_mask(FIRST_MASK)
    net = build_samic(SamicNetConfig(backbone="random")).eval()
    size = net.config.input_size
    image = preprocess(rgb, size, net.config.resize)
    with torch.inference_mode():
        feats = net.extract_features(image)
    heat = torch.from_numpy(
        points_to_heatmap(np.array([[400.0, 250.0]], np.float32), rgb.shape[:2], size, 0.02)
    )[None, None]

    def head(batch: int) -> Callable[[], object]:
        ref = [f.expand(batch, -1, -1, -1) for f in feats]
        ref_heat = heat.expand(batch, -1, -1, -1)

        def call() -> object:
            with torch.inference_mode():
                return net.predict(ref, ref_heat, ref)

        return call

    segmenter = SamSegmenter(build_sam("vit_b", random_init=True), "cpu")
    segmenter.set_embedding(
        ImageEmbedding(torch.randn(1, 256, 64, 64), (576, 1024), tuple(rgb.shape[:2]))
    )
    groups = [np.array([[x, 250.0]], np.float32) for x in (300.0, 420.0, 540.0)]

    train_net = build_samic(SamicNetConfig(backbone="random"))
    optimizer = torch.optim.Adam(train_net.head.parameters(), lr=1e-3)
    batch_feats = [f.expand(4, -1, -1, -1).clone() for f in feats]
    batch_heat = heat.expand(4, -1, -1, -1).clone()
    fixations = (batch_heat > 0.9).float()

    def train_step() -> object:
        pred = torch.sigmoid(train_net.predict(batch_feats, batch_heat, batch_feats))
        loss, _ = saliency_loss(pred, batch_heat, fixations)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return loss

    def adaptation_step() -> float:
        adapted = build_samic(SamicNetConfig(backbone="random"))
        config = AdaptationConfig(steps=steps, max_seconds=None, views=4)
        metrics = adapt_on_first_frame(
            adapted, rgb, ids, config, heat_sigma=0.02, device=torch.device("cpu"), progress=False
        )
        return metrics["seconds_per_step"]

    return {
        "samic backbone": lambda: net.extract_features(image),
        "samic head b1": head(1),
        "samic head b2": head(2),
        "sam decoder (3 groups)": lambda: segmenter.segment(groups),
        "training step (batch 4)": train_step,
        "adaptation step (batch 4)": adaptation_step,
    }


def _uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--steps", type=int, default=6, help="adaptation steps per measurement")
    args = parser.parse_args()
    flush_denormals()
    print(f"uptime before: {_uptime()}")
    stages = build_stages(args.steps)
    results: dict[tuple[str, int, int], float] = {}
    for busy in (0, 1):
        with busy_processes(busy):
            for name, call in stages.items():
                for threads in (1, 2):
                    with torch_threads(threads), torch.inference_mode(name.startswith("samic")):
                        if name.startswith("adaptation"):
                            seconds = statistics.median(call() for _ in range(2))
                        else:
                            seconds = median_seconds(call, args.repeats)
                    results[name, threads, busy] = seconds
            print(f"uptime with {busy} busy process(es): {_uptime()}")
    print(
        "\n| stage | quiet, 1 thread (ms) | quiet, 2 threads (ms) | busy, 1 thread (ms) |", end=""
    )
    print(" busy, 2 threads (ms) | best under contention |")
    print("| --- | --- | --- | --- | --- | --- |")
    for name in stages:
        cells = [results[name, t, b] * 1e3 for b in (0, 1) for t in (1, 2)]
        best = 1 if results[name, 1, 1] <= results[name, 2, 1] else 2
        print(f"| {name} | " + " | ".join(f"{c:.0f}" for c in cells) + f" | {best} thread(s) |")
    print(f"\nuptime after: {_uptime()}")


if __name__ == "__main__":
    main()
