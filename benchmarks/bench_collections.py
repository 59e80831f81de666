"""Throughput of `samic-vos segment` and `track` over collections, and of two local shards.

With the tests' tiny random SAM and SAMIC (``build_sam("tiny")``, SAMIC at 64², random
backbone), on synthetic tiny inputs made here:

1. ``segment`` over ``--images`` tiny images (32×40 RGB PNGs), one reference: the command's
   images per second (``samic-vos segment`` in a fresh process, model loading included, and
   the collection loop alone) against the engine's own time per image
   (:meth:`ImageSegmenter.segment` wrapped and timed inside the command's process), as the
   ratio seconds per image / engine seconds per image (target ≤ 1.05 at one process);
2. the same collection as two local shards (``--shard 0/2`` and ``--shard 1/2`` launched
   together, one torch thread each) against one process (torch's own thread count);
3. the same for ``track`` over ``--clips`` short clips (``--frames`` frames of 32×40 each, a
   CSV manifest), the engine being :meth:`CausalTracker.step`.

Every figure is the wall clock of whole commands started by this script (``python -m
samic_vos.commands.cli``), so it includes interpreter start and model loading; the loop-only
figures come from the timer written by the wrapped process into ``$BENCH_TIMES``.

Usage: .venv/bin/python -u benchmarks/bench_collections.py [--images 10000] [--clips 50]
       [--frames 8] [--skip-segment] [--skip-track]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from samic_vos.data.mask_io import write_mask
from samic_vos.model.checkpoint import save_samic
from samic_vos.model.samic_net import SamicNetConfig, build_samic
from samic_vos.sam.models import build_sam, save_sam

TINY_NET = SamicNetConfig(input_size=(64, 64), backbone="random", channels=(8, 16, 32))
H, W = 32, 40
# The timer each timed command's process runs first (python -c): ``timed(owner, name, key)``
# sums the seconds spent in ``owner.name`` under ``key`` (``count``: also counts the calls in
# ``items``); the sums go to the JSON file $BENCH_TIMES when the process exits.
TIMER = """
import atexit, collections, json, os, sys, time
times = collections.defaultdict(float)
def timed(owner, name, key, count=False):
    inner = getattr(owner, name)
    def wrapper(*args, **kwargs):
        start = time.perf_counter()
        try:
            return inner(*args, **kwargs)
        finally:
            times[key] += time.perf_counter() - start
            if count:
                times["items"] += 1
    setattr(owner, name, wrapper)
atexit.register(lambda: open(os.environ["BENCH_TIMES"], "w").write(json.dumps(times)))
"""
MAIN = """
from samic_vos.commands.cli import main
sys.exit(main(sys.argv[1:]))
"""


def timed_command(wraps: str) -> str:
    """The source of a command's process (``python -c``): :data:`TIMER`, ``wraps`` (imports and
    ``timed`` calls), then samic-vos's main on the process's arguments."""
    return TIMER + wraps + MAIN


# Time the engine and the collection loop.
WRAPPED = timed_command(
    """
from samic_vos.api.images import ImageSegmenter
from samic_vos.inference.tracker import CausalTracker
import samic_vos.pipelines.segment as segment
import samic_vos.pipelines.track as track
timed(ImageSegmenter, "segment", "engine")
timed(CausalTracker, "step", "engine", count=True)
timed(segment, "_segment_all", "loop")
timed(track, "run_track", "loop")
"""
)


def tiny_model_flags(folder: Path) -> list[str]:
    """Write the tests' tiny random SAM and SAMIC into ``folder``; the flags that load them."""
    torch.manual_seed(0)
    save_sam(folder / "sam.pt", build_sam("tiny", random_init=True), "tiny")
    save_samic(folder / "samic.pt", build_samic(TINY_NET))
    return ["--sam-checkpoint", str(folder / "sam.pt"), "--samic", str(folder / "samic.pt")]


def _scene(rng: np.random.Generator, shift: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rgb = rng.integers(0, 80, (H, W, 3), dtype=np.uint8)
    ids = np.zeros((H, W), np.uint8)
    ids[8:20, 6 + shift : 18 + shift] = 1
    rgb[ids == 1] = (220, 40, 40)
    return rgb, ids


def _run(args: list[str], threads: int, times: Path) -> float:
    """Start one command (``samic-vos ARGS`` with the wrapper); returns its process handle."""
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    env["BENCH_TIMES"] = str(times)
    return subprocess.Popen([sys.executable, "-c", WRAPPED, *args, "-q"], env=env)


def _timed(runs: list[list[str]], threads: int, folder: Path) -> tuple[float, list[dict]]:
    """Launch ``runs`` together; wall seconds until the last ends, and each one's timer."""
    start = time.perf_counter()
    procs = [_run(a, threads, folder / f"times{i}.json") for i, a in enumerate(runs)]
    codes = [p.wait() for p in procs]
    wall = time.perf_counter() - start
    if any(codes):
        raise SystemExit(f"a command failed: {codes}")
    return wall, [json.loads((folder / f"times{i}.json").read_text()) for i in range(len(runs))]


def _report(what: str, count: int, unit: str, one: tuple, two: tuple) -> None:
    (wall1, [t1]), (wall2, _) = one, two
    engine = t1["engine"] / count
    print(f"\n{what}: {count} {unit}")
    print(f"  engine alone: {1000 * engine:.2f} ms/{unit[:-1]}")
    loop = t1["loop"] / count
    print(f"  collection loop: {1000 * loop:.2f} ms/{unit[:-1]} = {loop / engine:.3f} x engine")
    whole = wall1 / count
    print(
        f"  whole command (1 process, {torch.get_num_threads()} threads): {count / wall1:.1f} "
        f"{unit}/s, {1000 * whole:.2f} ms/{unit[:-1]} = {whole / engine:.3f} x engine"
    )
    print(
        f"  two local shards (1 thread each): {count / wall2:.1f} {unit}/s; wall {wall2:.1f} s "
        f"against {wall1:.1f} s: {wall1 / wall2:.2f}x"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=10_000)
    parser.add_argument("--clips", type=int, default=50)
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--skip-segment", action="store_true")
    parser.add_argument("--skip-track", action="store_true")
    args = parser.parse_args()
    threads = torch.get_num_threads()
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        models = tiny_model_flags(folder)
        if not args.skip_segment:
            rgb, ids = _scene(rng)
            Image.fromarray(rgb).save(folder / "ref.png")
            write_mask(folder / "ref_mask.png", ids)
            targets = folder / "targets"
            targets.mkdir()
            for n in range(args.images):
                Image.fromarray(_scene(rng, n % 10)[0]).save(targets / f"{n:05d}.png")
            base = ["segment", "--ref", str(folder / "ref.png"), "--ref-mask"]
            base += [str(folder / "ref_mask.png"), str(targets), *models]
            one = _timed([[*base, "-o", str(folder / "s1")]], threads, folder)
            shards = [[*base, "-o", str(folder / "s2"), "--shard", f"{i}/2"] for i in range(2)]
            two = _timed(shards, 1, folder)
            _report("segment", args.images, "images", one, two)
        if not args.skip_track:
            rows = [("video", "first_mask")]
            for c in range(args.clips):
                clip = folder / "clips" / f"c{c:03d}"
                clip.mkdir(parents=True)
                for t in range(args.frames):
                    Image.fromarray(_scene(rng, t)[0]).save(clip / f"{t:05d}.png")
                write_mask(folder / "clips" / f"c{c:03d}.png", _scene(rng)[1])
                rows.append((str(clip), str(folder / "clips" / f"c{c:03d}.png")))
            with open(folder / "clips.csv", "w", newline="") as handle:
                csv.writer(handle).writerows(rows)
            base = ["track", str(folder / "clips.csv"), *models]
            one = _timed([[*base, "-o", str(folder / "t1")]], threads, folder)
            shards = [[*base, "-o", str(folder / "t2"), "--shard", f"{i}/2"] for i in range(2)]
            two = _timed(shards, 1, folder)
            _report("track", args.clips * args.frames, "frames", one, two)


if __name__ == "__main__":
    main()
