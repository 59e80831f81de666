"""SAM 2.1's video predictor beside `samic-vos track` on the same frames, every segmenter family
and size: time and memory per frame.

Every side tracks the bear of DAVIS (the first ``--frames`` JPEGs of
``DAVIS/JPEGImages/480p/bear`` from the first frame's mask), each in a fresh child process of its
own, one after the other in the same run, with ``--threads`` torch threads, on the CPU, random
weights:

- ours, once per ``--ours`` segmenter (a name of ``samic_vos.sam.names.SAM_MODELS``: SAM,
  HQ-SAM, MedSAM, SAM 2.1 image models): ``run_track`` with that segmenter (the defaults) and a
  SAMIC network at its default 224×224 (random ResNet-50 backbone), peaks calibrated as in
  ``bench_track.py``;
- SAM 2.1, once per ``--sam2`` size: ``build_sam2_video_predictor("configs/sam2.1/
  sam2.1_hiera_<size>.yaml", ckpt_path=None, device="cpu")``, ``init_state`` on the frame
  folder, ``add_new_mask`` on frame 0, then ``propagate_in_video``: with the same image encoder
  as ours with ``sam2.1_hiera_<size>``, plus its memory attention.

Per frame: seconds from the previous frame's result to this one's (frame 0: from the end of
the set-up, i.e. model loading for ours, model building + ``init_state`` for SAM 2.1), and the
child's RSS and VmHWM (/proc/self/status) right after it. SAM 2.1 is never a dependency of this
project's core: it is the ``sam2`` extra (``SAM2_BUILD_CUDA=0 pip install --no-build-isolation
'samic-vos[sam2]'``), or another virtualenv given by ``--sam2-python``; when it is missing this
script says so in one line and measures ours alone.

A side may name its precision after ``@``: ``--ours sam2.1_hiera_tiny@fp32`` runs that one of
ours in fp32 whatever ``--precision`` says, and ``--sam2 t@bf16`` runs SAM 2.1's video
predictor under ``torch.autocast("cpu", torch.bfloat16)`` (as its README runs it on a GPU),
default fp32.

Usage: .venv/bin/python -u benchmarks/bench_sam2.py [--frames 8] [--threads 2]
       [--ours vit_b,hq_vit_b,medsam_vit_b,sam2.1_hiera_tiny,...] [--sam2 t,s,b+,l]
       [--sam2-python PYTHON] [--precision auto]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# Only the standard library at the top: the SAM 2.1 child runs this file in another virtualenv.
SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
FRAMES = SHARED / "DAVIS" / "JPEGImages" / "480p" / "bear"
FIRST_MASK = SHARED / "DAVIS" / "Annotations" / "480p" / "bear" / "00000.png"
SAM2_CONFIG = "configs/sam2.1/sam2.1_hiera_{}.yaml"
SAM2_SIZES = {"t": "tiny", "s": "small", "b+": "base_plus", "l": "large"}
OURS = "vit_b,vit_l,vit_h,hq_vit_b,hq_vit_l,hq_vit_h,medsam_vit_b," + ",".join(
    f"sam2.1_hiera_{name}" for name in SAM2_SIZES.values()
)


def _memory_mb() -> tuple[float, float]:
    """(VmRSS, VmHWM) of this process, MiB."""
    values = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            values[key] = int(rest.split()[0]) / 1024
    return values["VmRSS"], values["VmHWM"]


class FrameLog:
    """Seconds and memory after each frame's result."""

    def __init__(self) -> None:
        self.setup_s = 0.0
        self.seconds: list[float] = []
        self.memory: list[tuple[float, float]] = []
        self._last = time.perf_counter()

    def setup_done(self, started: float) -> None:
        self._last = time.perf_counter()
        self.setup_s = self._last - started

    def frame_done(self) -> None:
        now = time.perf_counter()
        self.seconds.append(now - self._last)
        self.memory.append(_memory_mb())
        self._last = now

    def dump(self, path: Path) -> None:
        record = {"setup_s": self.setup_s, "per_frame_s": self.seconds, "memory_mb": self.memory}
        path.write_text(json.dumps(record))


def _child_sam2(size: str, frames: Path, out: Path, threads: int) -> None:
    import numpy as np
    import torch
    from PIL import Image
    from sam2.build_sam import build_sam2_video_predictor

    torch.set_num_threads(threads)
    size, _, precision = size.partition("@")
    log, started = FrameLog(), time.perf_counter()
    predictor = build_sam2_video_predictor(SAM2_CONFIG.format(size), ckpt_path=None, device="cpu")
    half = torch.autocast("cpu", torch.bfloat16, enabled=precision == "bf16")
    with torch.inference_mode(), half:
        state = predictor.init_state(video_path=str(frames))
        log.setup_done(started)
        mask = np.array(Image.open(FIRST_MASK)) == 1
        predictor.add_new_mask(state, frame_idx=0, obj_id=1, mask=mask)
        for _ in predictor.propagate_in_video(state):
            log.frame_done()
    log.dump(out)


def _child_ours(
    name: str, frames: Path, out: Path, threads: int, models: Path, precision: str
) -> None:
    from unittest import mock

    import torch

    import samic_vos.jobs.track as loop_module
    import samic_vos.pipelines.track as track_module
    from samic_vos.inference.prompter import TrackerConfig
    from samic_vos.jobs.track import TrackConfig
    from samic_vos.pipelines.track import TrackInputs, run_track
    from samic_vos.prompts.peaks import PeakConfig
    from samic_vos.sam.encoder import EncoderConfig

    torch.set_num_threads(threads)
    name, _, own_precision = name.partition("@")
    precision = own_precision or precision
    peaks = json.loads((models / "peaks.json").read_text())
    log, started = FrameLog(), time.perf_counter()
    write_mask, loading = loop_module.write_mask, [True]
    original_open = track_module.open_frames

    def open_logged(*args, **kwargs):  # model loading ends when the first frame is requested
        source = original_open(*args, **kwargs)
        frames_of = source._frames

        def logged():
            for frame in frames_of():
                if loading:
                    loading.clear()
                    log.setup_done(started)
                yield frame

        source._frames = logged
        return source

    def logged_write(*args, **kwargs):
        write_mask(*args, **kwargs)
        log.frame_done()

    inputs = TrackInputs(
        video=frames,
        first_mask=FIRST_MASK,
        out_dir=out.parent / f"ours_out_{name}_{precision}",
        samic_checkpoint=models / "samic.pt",
        sam_checkpoint=models / f"{name}.pt",
    )
    tracker = TrackerConfig(peaks=PeakConfig(**peaks))
    encoder = EncoderConfig(precision=precision)
    config = TrackConfig(device="cpu", sam_model=name, tracker=tracker, encoder=encoder)
    with (
        mock.patch.object(loop_module, "write_mask", logged_write),
        mock.patch.object(track_module, "open_frames", open_logged),
    ):
        run_track(inputs, config, progress=False)
    log.dump(out)


def _write_models(models: Path, frames: Path, names: list[str]) -> dict:
    """Random checkpoints of the segmenters ``names`` and of SAMIC, and the peak settings for
    the random head."""
    import numpy as np
    import torch
    from bench_track import calibrate_peaks
    from PIL import Image

    from samic_vos.model.checkpoint import save_samic
    from samic_vos.model.samic_net import SamicNetConfig, build_samic
    from samic_vos.sam.models import build_named, save_sam

    for name in names:
        torch.manual_seed(0)
        save_sam(models / f"{name}.pt", build_named(name), name)
    torch.manual_seed(0)  # the same SAMIC whichever segmenters were built before
    net = build_samic(SamicNetConfig(backbone="random")).eval()
    save_samic(models / "samic.pt", net)
    rgb = [np.array(Image.open(p).convert("RGB")) for p in sorted(frames.glob("*.jpg"))[:2]]
    peaks = calibrate_peaks(net, rgb, FIRST_MASK)
    (models / "peaks.json").write_text(json.dumps(peaks))
    return peaks


def _run_child(command: list[str], log: Path) -> None:
    with open(log, "w") as stream:
        done = subprocess.run(command, stdout=stream, stderr=subprocess.STDOUT)
    if done.returncode != 0:
        raise RuntimeError(f"child failed ({' '.join(command[:3])} ...):\n{log.read_text()}")


def _report(results: dict[str, dict]) -> None:
    names = list(results)
    print("| frame | " + " | ".join(f"{n}: s / RSS / peak RSS (MiB)" for n in names) + " |")
    print("| --- |" + " --- |" * len(names))
    print("| set-up | " + " | ".join(f"{results[n]['setup_s']:.1f} s" for n in names) + " |")
    count = min(len(r["per_frame_s"]) for r in results.values())
    for frame in range(count):
        cells = []
        for name in names:
            seconds = results[name]["per_frame_s"][frame]
            rss, hwm = results[name]["memory_mb"][frame]
            cells.append(f"{seconds:.2f} / {rss:.0f} / {hwm:.0f}")
        print(f"| {frame} | " + " | ".join(cells) + " |")
    print()
    for name in names:
        rest = results[name]["per_frame_s"][1:count]
        rss = [m[0] for m in results[name]["memory_mb"][:count]]
        hwm = results[name]["memory_mb"][count - 1][1]
        print(
            f"{name}: frames ≥ 1 {sum(rest) / len(rest):.2f} s/frame; RSS after frame 1 → last "
            f"{rss[min(1, count - 1)]:.0f} → {rss[-1]:.0f} MiB; peak {hwm:.0f} MiB"
        )


def _uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sam2-python", type=Path, default=Path(sys.executable))
    parser.add_argument("--ours", default=OURS, help="our segmenters, comma-separated")
    parser.add_argument("--sam2", default=",".join(SAM2_SIZES), help="SAM 2.1 video sizes")
    parser.add_argument("--precision", default="auto", help="our encoder's precision")
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--child", nargs=4, help=argparse.SUPPRESS)  # side, name, frames, out
    parser.add_argument("--models", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        side, name, frames, out = args.child
        if side == "sam2":
            _child_sam2(name, Path(frames), Path(out), args.threads)
        else:
            _child_ours(name, Path(frames), Path(out), args.threads, args.models, args.precision)
        return

    print(f"uptime before: {_uptime()}")
    has_sam2 = (
        args.sam2_python.is_file()
        and subprocess.run([str(args.sam2_python), "-c", "import sam2"]).returncode == 0
    )
    if not has_sam2:
        print(
            f"SAM 2.1's video predictor not measured: no sam2 in {args.sam2_python} (install it: "
            "SAM2_BUILD_CUDA=0 pip install --no-build-isolation 'samic-vos[sam2]')"
        )
    with tempfile.TemporaryDirectory(prefix="bench_sam2_") as tmp_name:
        tmp = Path(tmp_name)
        frames = tmp / "frames"
        frames.mkdir()
        for path in sorted(FRAMES.glob("*.jpg"))[: args.frames]:
            shutil.copy(path, frames / path.name)
        models = tmp / "models"
        models.mkdir()
        ours = args.ours.split(",")
        names = sorted({name.partition("@")[0] for name in ours})
        print(f"ours: peaks {_write_models(models, frames, names)}")
        results = {}
        sides = [(f"ours ({name})", sys.executable, "ours", name) for name in ours]
        if has_sam2:
            sides += [
                (f"SAM 2.1 video {size}", str(args.sam2_python), "sam2", size)
                for size in args.sam2.split(",")
            ]
        for label, python, side, name in sides:
            out = tmp / f"{side}_{name}.json"
            command = [python, __file__, "--child", side, name, str(frames), str(out)]
            command += ["--threads", str(args.threads), "--models", str(models)]
            command += ["--precision", args.precision]
            _run_child(command, tmp / f"{side}_{name}.log")
            results[label] = json.loads(out.read_text())
            print(f"uptime after {label}: {_uptime()}")
    print(f"\n{args.frames} bear frames (854×480), CPU, {args.threads} torch threads\n")
    _report(results)


if __name__ == "__main__":
    main()
