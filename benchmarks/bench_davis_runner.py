"""What `samic-vos bench davis` adds on top of the tracker: its wall time over the tracker's own.

Runs the whole command (model loading, per-sequence set-up, PNG/JSONL writing, scoring, the
table) on short copies of real DAVIS sequences and divides its wall time by the sum of the
time spent inside ``CausalTracker.step`` (every frame's tracking). Random-weight models: the
tiny test architecture, or SAM ViT-B's real architecture (``--sam vit_b``), with a tiny SAMIC.

    python benchmarks/bench_davis_runner.py --sam tiny --frames 20 --sequences 4
    python benchmarks/bench_davis_runner.py --sam vit_b --frames 5 --sequences 2 --threads 2
"""

from __future__ import annotations

import argparse
import io
import os
import shutil
import tempfile
import time
from contextlib import redirect_stdout
from pathlib import Path

import torch

from samic_vos.cli import main
from samic_vos.sam_models import build_sam, save_sam
from samic_vos.samic_checkpoint import save_samic
from samic_vos.samic_net import SamicNetConfig, build_samic
from samic_vos.tracker import CausalTracker

DAVIS = Path(__file__).resolve().parents[2] / "shared" / "data" / "DAVIS"


def short_root(root: Path, names: list[str], frames: int) -> Path:
    """A DAVIS-2016 root of the first ``frames`` frames of ``names``."""
    for name in names:
        for kind, suffix in (("JPEGImages", "jpg"), ("Annotations", "png")):
            folder = root / kind / "480p" / name
            folder.mkdir(parents=True)
            for path in sorted((DAVIS / kind / "480p" / name).glob(f"*.{suffix}"))[:frames]:
                shutil.copy(path, folder / path.name)
    (root / "ImageSets" / "2016").mkdir(parents=True)
    (root / "ImageSets" / "2016" / "val.txt").write_text("".join(f"{n}\n" for n in names))
    return root


def main_() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sam", choices=("tiny", "vit_b"), default="tiny")
    parser.add_argument("--frames", type=int, default=20, help="frames per sequence")
    parser.add_argument("--sequences", type=int, default=4, help="DAVIS-2016 val sequences")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    names = (DAVIS / "ImageSets/2016/val.txt").read_text().split()[: args.sequences]
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        root = short_root(base / "davis", names, args.frames)
        torch.manual_seed(0)
        save_sam(base / "sam.pt", build_sam(args.sam, random_init=True), args.sam)
        net = SamicNetConfig(input_size=(128, 128), backbone="random", channels=(8, 16, 32))
        save_samic(base / "samic.pt", build_samic(net))

        inside = [0.0]
        real = CausalTracker.step

        def timed(tracker, rgb, mask=None):
            start = time.perf_counter()
            try:
                return real(tracker, rgb, mask)
            finally:
                inside[0] += time.perf_counter() - start

        CausalTracker.step = timed  # type: ignore[method-assign]
        argv = ["bench", "davis", "--davis-root", str(root), "--year", "2016", "-q"]
        argv += ["-o", str(base / "out"), "--sam-checkpoint", str(base / "sam.pt")]
        argv += ["--samic", str(base / "samic.pt")]
        start = time.perf_counter()
        with redirect_stdout(io.StringIO()) as table:
            code = main(argv)
        wall = time.perf_counter() - start
        CausalTracker.step = real  # type: ignore[method-assign]
    assert code == 0, code
    load = os.getloadavg()[0]
    frames = args.frames * len(names)
    print(table.getvalue())
    print(f"SAM {args.sam}, {len(names)} sequences x {args.frames} frames, {args.threads} threads")
    print(f"bench davis wall {wall:.2f} s; inside CausalTracker.step {inside[0]:.2f} s")
    ratio = wall / inside[0]
    print(f"ratio wall / tracker {ratio:.3f}; {frames / wall:.2f} frames/s; load {load:.1f}")


if __name__ == "__main__":
    main_()
