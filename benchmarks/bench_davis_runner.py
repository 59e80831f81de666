"""What `samic-vos bench davis` adds on top of the tracker: its wall time over the tracker's own.

Runs the whole command (model loading, per-sequence set-up, PNG/JSONL writing, scoring, the
table) on short copies of real DAVIS sequences and divides its wall time by the tracker's own
time: every frame's ``CausalTracker.step`` plus SAM's image encoder on that frame
(``SamSegmenter.embed``, which the tracking loop calls before the step). Random-weight models:
the tiny test architecture, or SAM ViT-B's real architecture (``--sam vit_b``), with a tiny
SAMIC.

    python benchmarks/bench_davis_runner.py --sam tiny --frames 20 --sequences 4
    python benchmarks/bench_davis_runner.py --sam vit_b --frames 5 --sequences 2 --threads 2

The heavy imports happen in ``main_``: scoring processes started by forkserver import this
script's top level again, which must stay as light as the ``samic-vos`` command's own.
"""

from __future__ import annotations

import argparse
import io
import os
import tempfile
import time
from contextlib import redirect_stdout
from pathlib import Path

DAVIS = Path(__file__).resolve().parents[2] / "shared" / "data" / "DAVIS"


def main_() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sam", choices=("tiny", "vit_b"), default="tiny")
    parser.add_argument("--frames", type=int, default=20, help="frames per sequence")
    parser.add_argument("--sequences", type=int, default=4, help="DAVIS-2016 val sequences")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()

    import torch

    from samic_vos.cli import main
    from samic_vos.davis import copy_short_root
    from samic_vos.pipelines import bench_davis, track
    from samic_vos.sam_models import build_sam, save_sam
    from samic_vos.samic_checkpoint import save_samic
    from samic_vos.samic_net import SamicNetConfig, build_samic
    from samic_vos.segmenter import SamSegmenter
    from samic_vos.tracker import CausalTracker

    torch.set_num_threads(args.threads)
    names = (DAVIS / "ImageSets/2016/val.txt").read_text().split()[: args.sequences]
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        root = copy_short_root(DAVIS, base / "davis", names, args.frames, "2016")
        torch.manual_seed(0)
        save_sam(base / "sam.pt", build_sam(args.sam, random_init=True), args.sam)
        net = SamicNetConfig(input_size=(128, 128), backbone="random", channels=(8, 16, 32))
        save_samic(base / "samic.pt", build_samic(net))

        seconds = {"step": 0.0, "embed": 0.0}  # embed: the loop's calls, outside the steps
        stepping = [False]
        real_step, real_embed = CausalTracker.step, SamSegmenter.embed

        def step(tracker, rgb, mask=None, embedding=None):
            start, stepping[0] = time.perf_counter(), True
            try:
                return real_step(tracker, rgb, mask, embedding)
            finally:
                stepping[0] = False
                seconds["step"] += time.perf_counter() - start

        def embed(segmenter, rgb):
            start, outside = time.perf_counter(), not stepping[0]
            try:
                return real_embed(segmenter, rgb)
            finally:
                if outside:
                    seconds["embed"] += time.perf_counter() - start

        # Parts of the runner's own time: models loaded, result PNGs written, scoring.
        parts = {"models": 0.0, "mask PNGs": 0.0, "scoring": 0.0}

        def timing(function, part):
            def timed(*args, **kwargs):
                start = time.perf_counter()
                try:
                    return function(*args, **kwargs)
                finally:
                    parts[part] += time.perf_counter() - start

            return timed

        real = (bench_davis._Runner.__init__, track.write_mask, bench_davis.score)
        bench_davis._Runner.__init__ = timing(real[0], "models")  # type: ignore[method-assign]
        track.write_mask = timing(real[1], "mask PNGs")
        bench_davis.score = timing(real[2], "scoring")
        CausalTracker.step = step  # type: ignore[method-assign]
        SamSegmenter.embed = embed  # type: ignore[method-assign]
        argv = ["bench", "davis", "--davis-root", str(root), "--year", "2016", "-q"]
        argv += ["-o", str(base / "out"), "--sam-checkpoint", str(base / "sam.pt")]
        argv += ["--samic", str(base / "samic.pt")]
        load_before = os.getloadavg()[0]
        start = time.perf_counter()
        with redirect_stdout(io.StringIO()) as table:
            code = main(argv)
        wall = time.perf_counter() - start
        load_after = os.getloadavg()[0]
        CausalTracker.step, SamSegmenter.embed = real_step, real_embed  # type: ignore[method-assign]
        bench_davis._Runner.__init__, track.write_mask, bench_davis.score = real  # type: ignore
    assert code == 0, code
    frames = args.frames * len(names)
    own = seconds["step"] + seconds["embed"]
    print(table.getvalue())
    print(f"SAM {args.sam}, {len(names)} sequences x {args.frames} frames, {args.threads} threads")
    print(
        f"bench davis wall {wall:.2f} s; tracker {own:.2f} s (step {seconds['step']:.2f} s, "
        f"encoder outside the step {seconds['embed']:.2f} s); runner {wall - own:.2f} s"
    )
    shown = ", ".join(f"{k} {v:.2f} s" for k, v in parts.items())
    print(f"runner parts: {shown}, the rest {wall - own - sum(parts.values()):.2f} s")
    print(
        f"ratio wall / tracker {wall / own:.3f}; {frames / wall:.2f} frames/s; "
        f"load {load_before:.1f} -> {load_after:.1f}"
    )


if __name__ == "__main__":
    main_()
