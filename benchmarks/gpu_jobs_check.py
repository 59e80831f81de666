"""GPU check of the jobs: tracking and image few-shot, end to end, on a device beside the CPU.

``benchmarks/gpu_check.py`` measures the image encoders; this runs everything else that a GPU
user's first ``track`` or ``segment`` runs (prompters, SAMIC's first-frame adaptation,
decoding, PerSAM's decoder guidance, overlap resolution) through the Python API, once on the
device and once on the CPU, with tiny random-weight models of every segmenter family (built
by each package's own builder, as the tests build them) and a tiny fresh SAMIC network
(``backbone: random``). Per (family, job, prompter): whether it ran on the device, its
seconds, and how close its masks are to the CPU's (mean and worst IoU of the object masks over
frames or targets; the adapted SAMIC network is trained on each device, so its masks may part).

Data: the first ``--frames`` bear frames of ``../shared/data/DAVIS`` with its first mask; for
images, frame 0 and its mask as the reference and frames 20 and 40 as targets.

    python benchmarks/gpu_jobs_check.py                 # on a CUDA machine (a few minutes)
    python benchmarks/gpu_jobs_check.py --device cpu    # smoke run: the CPU against itself

Exit status 1 when any case raised on the device (its error is in the table).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import traceback
from pathlib import Path

import numpy as np
import torch
from gpu_check import build_or_skip  # this folder's script (run as benchmarks/...)

import samic_vos
from samic_vos.model.samic_net import SamicNetConfig
from samic_vos.sam.models import save_sam
from samic_vos.sam.segmenter import mask_iou
from samic_vos.training.first_frame_adaptation import AdaptationConfig

DAVIS = Path(__file__).resolve().parents[2] / "shared/data/DAVIS"
FAMILIES = "tiny,tiny_hq,tiny_medsam,tiny_sam2"
VIDEO_PROMPTERS = ("samic", "previous-mask", "persam")
IMAGE_PROMPTERS = ("samic", "persam")
TARGETS = (20, 40)  # bear frames segmented from frame 0 as the reference
# A small fresh network and a short adaptation: the code paths, not the quality.
NETWORK = SamicNetConfig(input_size=(64, 64), backbone="random", channels=(8, 16, 32))
ADAPTATION = AdaptationConfig(steps=10, views=4, batch_size=2, val_every=5)


def _bear(index: int) -> tuple[np.ndarray, np.ndarray | None]:
    rgb = samic_vos.read_image(DAVIS / f"JPEGImages/480p/bear/{index:05d}.jpg")
    mask_path = DAVIS / f"Annotations/480p/bear/{index:05d}.png"
    return rgb, samic_vos.read_mask(mask_path) if index == 0 else None


def _track(models: samic_vos.Models, frames: int) -> list[np.ndarray]:
    tracker = samic_vos.VideoTracker(models, adaptation=ADAPTATION)
    return [tracker.step(*_bear(index)).ids for index in range(frames)]


def _segment(models: samic_vos.Models, frames: int) -> list[np.ndarray]:
    segmenter = samic_vos.ImageSegmenter(models, adaptation=ADAPTATION)
    segmenter.set_references([_bear(0)])
    return [result.ids for result in segmenter.segment([_bear(i)[0] for i in TARGETS])]


def _run(job, checkpoint: Path, family: str, prompter: str, device: str, frames: int):
    """(seconds, id maps) of one job on ``device``, or the exception it raised."""
    torch.manual_seed(0)
    models = samic_vos.load_models(
        family, sam_checkpoint=checkpoint, prompter=prompter, device=device, network=NETWORK
    )
    start = time.perf_counter()
    ids = job(models, frames)
    if models.device.type == "cuda":
        torch.cuda.synchronize(models.device)
    return time.perf_counter() - start, ids


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda", help="cuda, cuda:N, or cpu (smoke run)")
    parser.add_argument("--families", default=FAMILIES)
    parser.add_argument("--frames", type=int, default=6, help="bear frames tracked")
    args = parser.parse_args()
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print(
            "gpu_jobs_check: error: no CUDA device here; run it on a GPU machine, or pass "
            "--device cpu for a smoke run",
            file=sys.stderr,
        )
        return 2
    failed = 0
    print(f"{args.device} against the CPU, torch {torch.__version__}, {args.frames} bear frames")
    print("| family | job | prompter | device s | CPU s | mean IoU | worst IoU | error |")
    print("|---|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory(prefix="gpu_jobs_check_") as tmp:
        for family in args.families.split(","):
            sam = build_or_skip(family)
            if sam is None:
                continue
            checkpoint = Path(tmp) / f"{family}.pt"
            save_sam(checkpoint, sam, family)
            jobs = [("track", _track, p) for p in VIDEO_PROMPTERS]
            jobs += [("segment", _segment, p) for p in IMAGE_PROMPTERS]
            for job_name, job, prompter in jobs:
                row = f"| {family} | {job_name} | {prompter} |"
                try:
                    seconds, ids = _run(job, checkpoint, family, prompter, args.device, args.frames)
                except Exception as err:  # noqa: BLE001 - reported in the table, then counted
                    failed += 1
                    where = traceback.extract_tb(err.__traceback__)[-1]
                    error = (
                        f"{type(err).__name__}: {err} ({Path(where.filename).name}:{where.lineno})"
                    )
                    print(f"{row} - | - | - | - | {error[:300]} |", flush=True)
                    continue
                cpu_seconds, cpu_ids = _run(job, checkpoint, family, prompter, "cpu", args.frames)
                ious = [mask_iou(a > 0, b > 0) for a, b in zip(ids, cpu_ids, strict=True)]
                print(
                    f"{row} {seconds:.2f} | {cpu_seconds:.2f} | {np.mean(ious):.4f} "
                    f"| {min(ious):.4f} | |",
                    flush=True,
                )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
