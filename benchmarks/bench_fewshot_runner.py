"""`samic-vos bench fewshot`'s runner against the engine's own time per episode.

With the tests' tiny random SAM and SAMIC (``build_sam("tiny")``, SAMIC at 64², random
backbone), on a synthetic ``folder`` set made here (``--classes`` classes of ``--images``
textured 48×64 images with a square object each; every image the query of one 1-shot episode,
as FSS-1000's protocol draws it):

- engine: the model work of the episodes, timed inside the command's process by wrapping
  :meth:`SamSegmenter.embed` (SAM's encoder, once per image of a class) and
  :meth:`FewShotSegmenter.set_references` / :meth:`FewShotSegmenter.segment` (SAMIC, SAM's
  decoder);
- runner: the episode loop of ``bench fewshot`` (``_Runner.run``: the images read, the engine,
  the prediction PNG and prompts file of each episode);
- whole command: ``samic-vos bench fewshot`` started in a fresh process (interpreter start,
  model loading, episode draws, scoring and ``scores.json`` included).

Prints episodes per second and the ratios runner / engine and whole / engine (target ≤ 1.05).

Usage: .venv/bin/python -u benchmarks/bench_fewshot_runner.py [--classes 20] [--images 50]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from bench_collections import timed_command, tiny_model_flags
from PIL import Image

from samic_vos.data.mask_io import write_mask

H, W = 48, 64
# Time the engine's model work and the episode loop.
WRAPPED = timed_command(
    """
from samic_vos.inference.fewshot_engine import FewShotSegmenter
from samic_vos.sam.segmenter import SamSegmenter
import samic_vos.pipelines.bench_fewshot as bench
timed(SamSegmenter, "embed", "engine")
timed(FewShotSegmenter, "set_references", "engine")
timed(FewShotSegmenter, "segment", "engine")
timed(bench._Runner, "run", "runner")
"""
)


def _folder_set(root: Path, classes: int, images: int) -> None:
    """``root/images/<class>/<n>.png`` and ``root/masks/<class>/<n>.png`` (the `folder` layout)."""
    rng = np.random.default_rng(0)
    for c in range(classes):
        for n in range(images):
            rgb = rng.integers(0, 90, (H, W, 3), dtype=np.uint8)
            ids = np.zeros((H, W), np.uint8)
            top, left = rng.integers(4, 20), rng.integers(4, 36)
            ids[top : top + 20, left : left + 24] = 1
            rgb[ids == 1] = (40 + 10 * c, 200, 60)
            (root / "images" / f"c{c:02d}").mkdir(parents=True, exist_ok=True)
            (root / "masks" / f"c{c:02d}").mkdir(parents=True, exist_ok=True)
            Image.fromarray(rgb).save(root / "images" / f"c{c:02d}" / f"{n:03d}.png")
            write_mask(root / "masks" / f"c{c:02d}" / f"{n:03d}.png", ids)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--classes", type=int, default=20)
    parser.add_argument("--images", type=int, default=50)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        models = tiny_model_flags(folder)
        _folder_set(folder / "set", args.classes, args.images)
        command = ["bench", "fewshot", "--dataset", "folder", "--root", str(folder / "set")]
        command += [*models, "-o", str(folder / "out"), "-q", "--json"]
        env = {**os.environ, "BENCH_TIMES": str(folder / "times.json")}
        start = time.perf_counter()
        done = subprocess.run(
            [sys.executable, "-c", WRAPPED, *command], env=env, capture_output=True, text=True
        )
        wall = time.perf_counter() - start
        if done.returncode:
            raise SystemExit(f"bench fewshot failed: {done.stderr}")
        episodes = json.loads(done.stdout)["episodes"]
        times = json.loads((folder / "times.json").read_text())
    engine = times["engine"] / episodes
    print(
        f"{episodes} episodes ({args.classes} classes x {args.images} images), 1-shot, "
        f"{torch.get_num_threads()} torch threads"
    )
    print(f"  engine alone: {1000 * engine:.2f} ms/episode")
    runner = times["runner"] / episodes
    print(
        f"  runner (episode loop): {1000 * runner:.2f} ms/episode = {runner / engine:.3f} x engine"
    )
    whole = wall / episodes
    print(
        f"  whole command: {episodes / wall:.1f} episodes/s, {1000 * whole:.2f} ms/episode = "
        f"{whole / engine:.3f} x engine"
    )


if __name__ == "__main__":
    main()
