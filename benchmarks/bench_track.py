"""Benchmark of `samic-vos track` on real frames with a real segmenter architecture.

Random weights (no checkpoint can be downloaded here), but the architecture, and so the
compute, is the real one: SAM ViT-B at 1024×1024 (or the family and size ``--sam-model``
names: SAM 2.1, HQ-SAM, MedSAM) and a SAMIC network at its default 224×224 input with a
(random) ResNet-50 backbone. Three measurements, printed as Markdown tables:

1. Per-stage time per frame of the real pipeline (``run_track`` with an overlay) on the first
   ``--frames`` frames of ``davis_bear.mp4``: the library's stage functions are wrapped by
   :class:`samic_vos.runtime.stage_timer.StageTimer` from this script (each second counted once, for
   the innermost stage). Frame 0 (prompts derived from the
   first mask) is shown apart from frames ≥ 1 (SAMIC → peaks → SAM).
2. The ratio of the whole pipeline's wall time per frame to the SAM image encoder alone. The
   encoder alone (a second ``SamSegmenter`` holding the same weights) encodes each frame right
   after the pipeline has finished it, so both see the same load from other jobs; that time is
   taken out of the pipeline's clock. The clock starts when the first frame is requested (model
   loading excluded) and stops when ``run_track`` returns (overlay video finished). Target
   ≤ 1.05 for frames ≥ 1. ``--busy N`` runs N competing busy processes (``while True: pass``)
   during the timed run, as another job on a shared machine would.
3. Peak memory of the whole `samic-vos track` command, run as a child process, on a short and
   a long clip of the same video: the child's VmHWM (/proc/self/status) read as it finishes.
   Not ``ru_maxrss`` of the child: on Linux it inherits the parent's high-water mark through
   fork/exec, so it would report this (larger) benchmark process. Target long/short ≤ 1.05.
   ``--no-memory`` skips it.

Clips are the first frames of the video re-encoded to H.264 (crf 12) in a temporary folder,
decoded by the default backend. The random SAMIC head's heat maps are nearly flat (all values
within about 0.500–0.512), so the default peak threshold (0.5) would give one region covering
the frame. The benchmark calibrates an absolute threshold instead: the lowest on a fine grid
that gives :data:`TARGET_PEAKS` points on frame 1 with frame 0 as reference (at most
``max_points`` 4), as a trained network gives a few points per object. The threshold and the
number of peaks on every frame are printed.

Usage: .venv/bin/python -u benchmarks/bench_track.py [--frames 5] [--short 3] [--long 24]
       [--threads 2] [--busy 0] [--uniform | --all-threads] [--no-memory] [--sam-model vit_b]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from functools import partial
from pathlib import Path
from unittest import mock

import numpy as np
import torch

import samic_vos.inference.samic_prompter as samic_prompter
import samic_vos.jobs.track as loop_module
import samic_vos.pipelines.track as track_module
import samic_vos.runtime.stage_threads as stage_threads
from samic_vos.api.models import load_segmenter
from samic_vos.data.frame_source import Frame, open_frames
from samic_vos.data.mask_io import read_mask
from samic_vos.data.video_writer import VideoWriter
from samic_vos.inference.prompter import TrackerConfig
from samic_vos.inference.tracker import CausalTracker
from samic_vos.jobs.track import TrackConfig
from samic_vos.model.checkpoint import save_samic
from samic_vos.model.samic_net import SamicNet, SamicNetConfig, build_samic, preprocess
from samic_vos.pipelines.track import TrackInputs, run_track
from samic_vos.prompts.heatmaps import points_to_heatmap
from samic_vos.prompts.mask_points import interior_points
from samic_vos.prompts.peaks import PeakConfig, find_peaks
from samic_vos.runtime.stage_threads import StageThreads, ThreadsConfig
from samic_vos.runtime.stage_timer import StageTimer
from samic_vos.sam.models import build_named, save_sam
from samic_vos.sam.names import SAM_MODELS
from samic_vos.sam.segmenter import SamSegmenter

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "videos"
VIDEO = DATA / "davis_bear.mp4"
FIRST_MASK = DATA / "davis_bear_first_mask.png"
# See the module docstring: a few points per frame from the random head's flat heat maps.
TARGET_PEAKS = 3
MAX_PEAKS = 4
WAIT = 600.0  # seconds: a bound for a frame's outputs to be written, never a timing
# Table rows: (stage key, label). Keys are filled by the timers installed in `_timed_run`.
STAGES = (
    ("decode", "decode (frame source)"),
    ("encoder", "SAM image encoder (embed)"),
    ("resize", "SAMIC input resize (preprocess)"),
    ("backbone", "SAMIC backbone features"),
    ("predict", "SAMIC predict (head)"),
    ("peaks", "peaks"),
    ("decoder", "SAM prompt decoding (segment)"),
    ("tracker_rest", "tracker, rest of step()"),
    ("png", "PNG write"),
    ("render", "overlay render"),
    ("encode", "overlay encode (+ final flush)"),
    ("loop_rest", "rest of the loop (prompts.jsonl ...)"),
)


class FrameTimes:
    """Per-frame seconds of the pipeline's stages, from one library :class:`StageTimer`.

    The stage timer counts each second once per thread, for the innermost wrapped call running
    (so the tracker's "step" keeps only its own code). Frames are split where the tracking loop
    receives each frame (:meth:`loop_frames`): before it takes frame t+1, frame t's outputs are
    waited for (the loop writes them in its background thread), frame t is encoded alone, and
    a snapshot of the totals is taken. Decoding runs ahead in the run-ahead worker, beside the
    loop: its seconds land in the frame during which they ran. Frame -1: before the loop.
    """

    def __init__(self) -> None:
        self.stages = StageTimer()
        self.frame = -1
        self.rgb: np.ndarray | None = None
        self.loop_start: float | None = None
        self.starts: dict[int, float] = {}  # frame index → when the loop received it
        self._snapshots: dict[int, dict[str, float]] = {-1: {}}
        self.counts: dict[tuple[str, int], list[int]] = defaultdict(list)
        self.written: dict[int, threading.Event] = defaultdict(threading.Event)

    def _snapshot(self, frame: int) -> None:
        self._snapshots[frame] = dict(self.stages.seconds)

    def finish(self) -> None:
        """The run ended: what came after the last frame (the video's flush) joins it."""
        self._snapshot(self.frame + 1)

    def total(self, stage: str, frames: range) -> float:
        """Seconds of ``stage`` over ``frames`` (from receiving the first to the next's)."""
        first, last = frames.start, frames.stop
        return self._snapshots[last].get(stage, 0.0) - self._snapshots[first].get(stage, 0.0)

    def timed_decode(self, frames: Iterator[Frame]) -> Iterator[Frame]:
        """``frames``, timing each decode (in the thread that pulls them)."""
        try:
            while True:
                start = time.perf_counter()
                frame = next(frames, None)
                self.stages.add("decode", time.perf_counter() - start)
                if frame is None:
                    return
                yield frame
        finally:
            frames.close()

    def loop_frames(self, encoded: Iterator, encode_alone) -> Iterator:
        """The tracking loop's ``(frame, embedding)`` items, split into frames as above."""
        self.loop_start = time.perf_counter()
        self._snapshot(0)
        try:
            for frame, embedding in encoded:
                if self.frame >= 0:
                    self._close_frame(encode_alone)
                self.frame, self.rgb = frame.index, frame.rgb
                self.starts[frame.index] = time.perf_counter()
                yield frame, embedding
            self._close_frame(encode_alone)
        finally:
            encoded.close()

    def _close_frame(self, encode_alone) -> None:
        if not self.written[self.frame].wait(WAIT):
            raise RuntimeError(f"frame {self.frame}'s outputs were not written in {WAIT} s")
        start = time.perf_counter()
        encode_alone(self.rgb)  # the original method: not the pipeline's "encoder"
        self.stages.add("alone", time.perf_counter() - start)
        self._snapshot(self.frame + 1)


def _timed_run(
    inputs: TrackInputs, config: TrackConfig, alone: SamSegmenter
) -> tuple[FrameTimes, float]:
    """Run the pipeline with every stage timed, and the encoder alone after each frame.

    Returns the times (stage ``"alone"``: the encoder alone, outside the stage stack) and the
    time the run ended.
    """
    timer = FrameTimes()
    original_open, original_embedded = track_module.open_frames, loop_module.embedded_frames
    original_job = loop_module._frame_job

    def open_timed(*args, **kwargs):
        source = original_open(*args, **kwargs)
        frames = source._frames
        source._frames = lambda: timer.timed_decode(frames())
        return source

    def embedded_timed(frames, segmenter, **kwargs):
        encoded = original_embedded(frames, segmenter, **kwargs)
        return timer.loop_frames(encoded, partial(encode_alone, alone))

    def signalled_job(*args, **kwargs):
        job, written = original_job(*args, **kwargs), timer.written[timer.frame]

        def run():
            try:
                job()
            finally:
                written.set()

        return run

    def count_peaks(*args, **kwargs):
        peaks = original_peaks(*args, **kwargs)
        timer.counts["peaks", timer.frame].append(len(peaks))
        return peaks

    def count_groups(self, groups):
        timer.counts["groups", timer.frame].append(sum(1 for g in groups if len(g)))
        return segment(self, groups)

    original_peaks, segment = samic_prompter.find_peaks, SamSegmenter.segment
    encode_alone = SamSegmenter.embed
    with ExitStack() as stack:
        stack.enter_context(mock.patch.object(track_module, "open_frames", open_timed))
        stack.enter_context(mock.patch.object(loop_module, "embedded_frames", embedded_timed))
        stack.enter_context(mock.patch.object(loop_module, "_frame_job", signalled_job))
        stack.enter_context(mock.patch.object(samic_prompter, "find_peaks", count_peaks))
        stack.enter_context(mock.patch.object(SamSegmenter, "segment", count_groups))
        for owner, name, stage in (
            (SamSegmenter, "embed", "encoder"),
            (SamSegmenter, "segment", "decoder"),
            (SamSegmenter, "prompt", "decoder"),
            (samic_prompter, "preprocess", "resize"),
            (SamicNet, "extract_features", "backbone"),
            (SamicNet, "predict", "predict"),
            (samic_prompter, "find_peaks", "peaks"),
            (CausalTracker, "step", "step"),
            (loop_module, "write_mask", "png"),
            (loop_module, "overlay", "render"),
            (VideoWriter, "write", "encode"),
            (VideoWriter, "__exit__", "encode"),
        ):
            # The stage timer replaces the attribute; the patch restores it afterwards.
            stack.enter_context(mock.patch.object(owner, name, getattr(owner, name)))
            timer.stages.wrap(owner, name, stage)
        run_track(inputs, config, progress=False)
        end = time.perf_counter()
    timer.finish()
    return timer, end


def calibrate_peaks(
    net: SamicNet, frames: list[np.ndarray], first_mask: Path = FIRST_MASK
) -> dict[str, float]:
    """Peak settings giving :data:`TARGET_PEAKS` points on frame 1 (reference: frame 0 with
    the first mask's interior point); see the module docstring."""
    size, image_size = net.config.input_size, frames[0].shape[:2]
    points = interior_points(read_mask(first_mask) != 0, max_points=1)
    ref_heat = points_to_heatmap(points, image_size, size, TrackerConfig().heat_sigma)
    with torch.inference_mode():
        ref, tgt = (
            net.extract_features(preprocess(rgb, size, net.config.resize)) for rgb in frames[:2]
        )
        logits = net.predict(ref, torch.from_numpy(ref_heat)[None, None], tgt)
        heat = torch.sigmoid(logits)[0, 0].numpy()
    for threshold in np.linspace(0.5, float(heat.max()), 201)[1:]:
        peaks = {
            "threshold": round(float(threshold), 5),
            "relative": False,
            "floor": 0.0,
            "max_points": MAX_PEAKS,
        }
        if len(find_peaks(heat, image_size, PeakConfig(**peaks))) == TARGET_PEAKS:
            return peaks
    raise RuntimeError(f"no threshold gives {TARGET_PEAKS} peaks on this random SAMIC head")


def _first_frames(path: Path, count: int) -> tuple[list[np.ndarray], float]:
    """The first ``count`` RGB frames of a video and its frame rate."""
    frames = []
    with open_frames(path) as source:
        for frame in source:
            frames.append(frame.rgb)
            if len(frames) == count:
                break
        return frames, source.fps


def _make_clip(path: Path, frames: list[np.ndarray], fps: float) -> None:
    with VideoWriter(path, fps, frames[0].shape[:2], crf=12) as writer:
        for rgb in frames:
            writer.write(rgb)


def _report_timing(timer: FrameTimes, frames: int, end: float) -> None:
    """Print the stage table and the ratios (the final flush counts in frames ≥ 1)."""
    first, rest, everything = range(-1, 1), range(1, frames), range(-1, frames)
    walls = {
        first: timer.starts[1] - timer.loop_start - timer.total("alone", first),
        rest: end - timer.starts[1] - timer.total("alone", rest),
    }
    walls[everything] = walls[first] + walls[rest]
    per_frame = {first: 1e3, rest: 1e3 / len(rest)}  # seconds → ms (per frame)
    print("| stage | frame 0 (ms) | frames ≥ 1 (ms / frame) |\n| --- | --- | --- |")
    rows = {key: [label] for key, label in STAGES}
    rows["whole"] = ["**whole pipeline**"]
    for part, scale in per_frame.items():
        values = {k: timer.total(k, part) for k, _ in STAGES}
        values["tracker_rest"] = timer.total("step", part)  # exclusive: the inner stages' out
        values["loop_rest"] = walls[part] - sum(v for k, v in values.items() if k != "loop_rest")
        values["whole"] = walls[part]
        for key, value in values.items():
            rows[key].append(f"{scale * value:.0f}")
    print("\n".join("| " + " | ".join(row) + " |" for row in rows.values()))

    peaks = [sum(timer.counts.get(("peaks", f), [])) for f in rest]
    groups = [timer.counts.get(("groups", f), []) for f in range(frames)]
    print(f"\npeaks per frame (frames ≥ 1): {peaks}")
    print(f"SAM prompt groups per segment() call, per frame: {groups}")

    print("\n| frames | pipeline (s / frame) | encoder alone (s / frame) | ratio | target |")
    print("| --- | --- | --- | --- | --- |")
    for label, part, count, target in (
        ("all (frame 0 included)", everything, frames, "—"),
        ("frames ≥ 1", rest, len(rest), "≤ 1.05"),
    ):
        wall, alone = walls[part] / count, timer.total("alone", part) / count
        print(f"| {label} | {wall:.2f} | {alone:.2f} | {wall / alone:.3f} | {target} |")
    bounds = [timer.loop_start, *(timer.starts[f] for f in rest), end]
    ratios = [
        (bounds[f + 1] - bounds[f] - timer.total("alone", range(f, f + 1)))
        / timer.total("alone", range(f, f + 1))
        for f in range(frames)
    ]
    print(f"\nper frame, pipeline / encoder alone: {[round(r, 3) for r in ratios]}")
    inside = timer.total("encoder", everything)
    print(
        f"\nencoder inside the pipeline: {inside / frames:.2f} s/frame; "
        f"whole pipeline / it: {walls[everything] / inside:.3f}"
    )


def _proc_status_mb(field: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise KeyError(field)


def _child_track(json_path: Path, threads: int, cli_args: list[str]) -> int:
    """Child process: run the CLI, sampling RSS after each mask; write the samples as JSON."""
    from samic_vos.commands.cli import main

    torch.set_num_threads(threads)
    samples: list[tuple[float, float]] = []
    write_mask = loop_module.write_mask

    def sampled(*args, **kwargs):
        write_mask(*args, **kwargs)
        samples.append((_proc_status_mb("VmRSS"), _proc_status_mb("VmHWM")))

    with mock.patch.object(loop_module, "write_mask", sampled):
        status = main(cli_args)
    record = {"per_frame_rss_hwm_mb": samples, "hwm_mb": _proc_status_mb("VmHWM")}
    json_path.write_text(json.dumps(record))
    return status


def _memory_run(tmp: Path, clip: Path, name: str, common: list[str], threads: int) -> dict:
    """Run `samic-vos track` on ``clip`` in a child process; its peak and per-frame memory."""
    out = tmp / f"out_{name}"
    record = tmp / f"memory_{name}.json"
    cli = ["track", str(clip), "-o", str(out), "--overlay", str(out / "overlay.mp4"), *common]
    command = [sys.executable, __file__, "--child-json", str(record), "--threads", str(threads)]
    log = tmp / f"child_{name}.log"
    with open(log, "w") as stream:
        done = subprocess.run([*command, "--", *cli], stdout=stream, stderr=subprocess.STDOUT)
    if done.returncode != 0:
        raise RuntimeError(f"track child failed:\n{log.read_text()}")
    return {"frames": len(list((out / "masks").glob("*.png"))), **json.loads(record.read_text())}


def _report_memory(memory: dict[str, dict]) -> None:
    print("| clip | frames | peak RSS, VmHWM (MB) | RSS after frame 1 / last frame (MB) |")
    print("| --- | --- | --- | --- |")
    for name, m in memory.items():
        rss = [s[0] for s in m["per_frame_rss_hwm_mb"]]
        after1 = rss[min(1, len(rss) - 1)]
        print(f"| {name} | {m['frames']} | {m['hwm_mb']:.0f} | {after1:.0f} / {rss[-1]:.0f} |")
    ratio = memory["long"]["hwm_mb"] / memory["short"]["hwm_mb"]
    print(f"\npeak memory long / short: {ratio:.3f} (target ≤ 1.05)")
    for name, m in memory.items():
        rss, hwm = zip(*m["per_frame_rss_hwm_mb"], strict=True)
        print(f"{name}: RSS after each frame (MB): {[round(v) for v in rss]}")
        print(f"{name}: VmHWM after each frame (MB): {[round(v) for v in hwm]}")


@contextmanager
def busy_processes(count: int) -> Iterator[None]:
    """``count`` child processes spinning a core each (``while True: pass``) for the block."""
    children = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(count)]
    try:
        time.sleep(0.5 if count else 0)  # let them start spinning
        yield
    finally:
        for child in children:
            child.kill()
            child.wait()


def _uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=5, help="frames of the timed run (>= 2)")
    parser.add_argument("--short", type=int, default=3, help="frames of the short memory clip")
    parser.add_argument("--long", type=int, default=24, help="frames of the long memory clip")
    parser.add_argument("--threads", type=int, default=2, help="torch intra-op threads")
    parser.add_argument("--busy", type=int, default=0, help="competing busy processes")
    parser.add_argument(
        "--uniform",
        action="store_true",
        help="every stage at --threads and the overlay encoder at FFmpeg's automatic thread "
        "count (the pipeline before per-stage threads); default: the threads config's auto",
    )
    parser.add_argument(
        "--all-threads",
        action="store_true",
        help="threads: all for every stage (a machine of one's own); overlay encoder as default",
    )
    parser.add_argument("--no-memory", action="store_true", help="skip the memory children")
    parser.add_argument(
        "--sam-model", default="vit_b", choices=sorted(SAM_MODELS), help="the segmenter (random)"
    )
    parser.add_argument("--child-json", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("cli_args", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child_json is not None:
        sys.exit(_child_track(args.child_json, args.threads, args.cli_args[1:]))
    if args.frames < 2 or not 1 <= args.short < args.long:
        parser.error("need --frames >= 2 and 1 <= --short < --long")

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    print(f"uptime before: {_uptime()}")
    print(f"torch {torch.__version__}, CPU, intra-op threads {torch.get_num_threads()}")
    print(f"segmenter: {args.sam_model} (random weights)")
    print(f"busy processes during the timed run: {args.busy}")
    with tempfile.TemporaryDirectory(prefix="bench_track_") as tmp_name:
        tmp = Path(tmp_name)
        sam_path, samic_path = tmp / f"sam_{args.sam_model}_random.pt", tmp / "samic_random.pt"
        save_sam(sam_path, build_named(args.sam_model), args.sam_model)
        net = build_samic(SamicNetConfig(backbone="random")).eval()
        save_samic(samic_path, net)
        frames, fps = _first_frames(VIDEO, max(args.frames, args.long))
        peaks = calibrate_peaks(net, frames)
        del net
        clips = {}
        for name, count in (("timed", args.frames), ("short", args.short), ("long", args.long)):
            clips[name] = tmp / f"bear_{count}.mp4"
            if not clips[name].exists():
                _make_clip(clips[name], frames[:count], fps)
        del frames

        alone = load_segmenter(args.sam_model, sam_path, device="cpu")
        alone.set_frame(_first_frames(VIDEO, 1)[0][0])  # warm-up, untimed
        out = tmp / "out_timed"
        inputs = TrackInputs(
            video=clips["timed"],
            first_mask=FIRST_MASK,
            out_dir=out,
            overlay=out / "overlay.mp4",
            samic_checkpoint=samic_path,
            sam_checkpoint=sam_path,
        )
        threads = None
        if args.uniform:
            threads = ThreadsConfig(**dict.fromkeys(stage_threads.STAGES, args.threads))
        elif args.all_threads:
            threads = ThreadsConfig(**dict.fromkeys(stage_threads.STAGES, "all"))
        config = TrackConfig(
            device="cpu",
            sam_model=args.sam_model,
            tracker=TrackerConfig(peaks=PeakConfig(**peaks)),
            threads=threads or ThreadsConfig(),
        )
        print(f"stage threads: {StageThreads.resolve(config.threads).counts}")
        writer = partial(VideoWriter, threads=0) if args.uniform else VideoWriter
        print(f"overlay encoder threads: {'FFmpeg automatic' if args.uniform else 1}")
        with busy_processes(args.busy), mock.patch.object(track_module, "VideoWriter", writer):
            timer, end = _timed_run(inputs, config, alone)
            print(f"uptime at the end of the timed run: {_uptime()}")
        del alone
        print(f"\n## Stages: {args.frames} frames of {VIDEO.name}, overlay on, peaks {peaks}\n")
        _report_timing(timer, args.frames, end)

        if args.no_memory:
            print(f"\nuptime after: {_uptime()}")
            return
        (tmp / "config.yaml").write_text(json.dumps({"tracker": {"peaks": peaks}}))
        common = ["--first-mask", str(FIRST_MASK), "--samic", str(samic_path)]
        common += ["--sam-checkpoint", str(sam_path), "--sam-model", args.sam_model]
        common += ["--device", "cpu"]
        common += ["--config", str(tmp / "config.yaml")]
        memory = {n: _memory_run(tmp, clips[n], n, common, args.threads) for n in ("short", "long")}
        print("\n## Peak memory of `samic-vos track` (child process, same options)\n")
        _report_memory(memory)
    print(f"\nuptime after: {_uptime()}")


if __name__ == "__main__":
    main()
