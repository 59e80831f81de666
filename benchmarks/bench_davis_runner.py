"""What `samic-vos bench davis` adds on top of the tracker: its wall time over the tracker's own.

Runs the whole command (model loading, per-sequence set-up, PNG/JSONL writing, scoring, the
table) on copies of real DAVIS sequences (the first ``--frames`` frames, or all of them, of the
4 val sequences of ../shared/data and then its 16 train ones) and divides its wall time by the
tracker's own time: every frame's ``CausalTracker.step`` plus SAM's image encoder on that frame
(``SamSegmenter.embed``, which the tracking loop calls before the step). Random-weight models:
the tiny test architecture, or SAM ViT-B's real architecture (``--sam vit_b``), with a tiny
SAMIC. It prints the runner's own parts (in the main thread) apart from the work that runs
beside the tracker in background threads (mask PNGs, each sequence's scoring): that work costs
the runner nothing while a core is free, and slows the tracker when none is.

    python benchmarks/bench_davis_runner.py --sam tiny --frames 0 --sequences 20 --threads 2
    python benchmarks/bench_davis_runner.py --sam vit_b --frames 5 --sequences 2 --threads 2

The heavy imports happen in ``main_``: scoring processes started by forkserver import this
script's top level again, which must stay as light as the ``samic-vos`` command's own.
"""

from __future__ import annotations

import argparse
import io
import os
import tempfile
import threading
import time
from collections import defaultdict
from contextlib import redirect_stdout
from pathlib import Path

DAVIS = Path(__file__).resolve().parents[2] / "shared" / "data" / "DAVIS"
SPLITS = ("val", "train")
BIG = 10**6  # frames per sequence: all of them


def main_() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sam", choices=("tiny", "vit_b"), default="tiny")
    parser.add_argument("--frames", type=int, default=20, help="frames per sequence (0: all)")
    parser.add_argument(
        "--sequences",
        type=int,
        default=4,
        help="sequences: the 4 DAVIS-2016 val ones of ../shared/data first, then its train ones",
    )
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()

    import torch

    from samic_vos.commands.cli import main
    from samic_vos.data.davis import copy_short_root
    from samic_vos.inference.tracker import CausalTracker
    from samic_vos.model.checkpoint import save_samic
    from samic_vos.model.samic_net import SamicNetConfig, build_samic
    from samic_vos.pipelines import bench_davis, track
    from samic_vos.sam.models import build_sam, save_sam
    from samic_vos.sam.segmenter import SamSegmenter

    torch.set_num_threads(args.threads)
    lists = [(DAVIS / f"ImageSets/2016/{split}.txt").read_text().split() for split in SPLITS]
    names = [name for names in lists for name in names][: args.sequences]
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        root = copy_short_root(DAVIS, base / "davis", names, args.frames or BIG, "2016")
        frames = len(list((root / "JPEGImages/480p").glob("*/*.jpg")))
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

        # Parts of the runner's own time (the main thread's: models loaded, the final scoring),
        # and the work done in background threads beside the tracker (mask PNGs, the scoring
        # of each sequence once it is tracked).
        parts: dict[str, float] = defaultdict(float)

        def timing(function, part):
            def timed(*args, **kwargs):
                start = time.perf_counter()
                try:
                    return function(*args, **kwargs)
                finally:
                    main = threading.current_thread() is threading.main_thread()
                    parts[part if main else f"{part} (background)"] += time.perf_counter() - start

            return timed

        def timing_jobs(make_job, part):  # the jobs made by make_job, timed when they run
            return lambda *args: timing(make_job(*args), part)

        real = (bench_davis._Runner.__init__, track.write_mask, bench_davis.score)
        jobs = getattr(bench_davis, "_scoring_job", None)  # absent before the background scoring
        bench_davis._Runner.__init__ = timing(real[0], "models")  # type: ignore[method-assign]
        track.write_mask = timing(real[1], "mask PNGs")
        bench_davis.score = timing(real[2], "scoring")
        if jobs is not None:
            bench_davis._scoring_job = timing_jobs(jobs, "scoring")
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
        if jobs is not None:
            bench_davis._scoring_job = jobs
    assert code == 0, code
    own = seconds["step"] + seconds["embed"]
    print(table.getvalue())
    print(f"SAM {args.sam}, {len(names)} sequences, {frames} frames, {args.threads} threads")
    print(
        f"bench davis wall {wall:.2f} s; tracker {own:.2f} s (step {seconds['step']:.2f} s, "
        f"encoder outside the step {seconds['embed']:.2f} s); runner {wall - own:.2f} s"
    )
    mine = {k: v for k, v in parts.items() if not k.endswith("(background)")}
    shown = ", ".join(f"{k} {v:.2f} s" for k, v in mine.items())
    print(f"runner parts: {shown}, the rest {wall - own - sum(mine.values()):.2f} s")
    behind = ", ".join(f"{k} {v:.2f} s" for k, v in parts.items() if k not in mine)
    print(f"beside the tracker: {behind or 'nothing'}")
    print(
        f"ratio wall / tracker {wall / own:.3f}; {frames / wall:.2f} frames/s; "
        f"load {load_before:.1f} -> {load_after:.1f}"
    )


if __name__ == "__main__":
    main_()
