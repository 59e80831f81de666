"""Benchmark: our SAM image encoder against Meta's ``ImageEncoderViT``, same frames, same run.

SAM ViT-B architecture with random weights (no checkpoint can be downloaded here); the
relative-position tables, which SAM initialises to zero, are drawn at random too (σ 0.2) so
that the bias our SDPA path adds as a mask is not zero. The weights are written once to a
temporary checkpoint that every child process loads:

- time: seconds per frame of ``SamSegmenter.embed`` (resize, normalise, encode) on real DAVIS
  frames (854×480), after one warm-up frame (reported apart: for ``compile`` it includes the
  compilation). All variants run in one child, interleaved frame by frame with the order
  rotating, so that each sees the same load from the other jobs on a shared machine;
- memory: each variant in a fresh child encoding one frame: its peak RSS (VmHWM) while
  encoding, the high-water mark reset once the model is loaded (``/proc/self/clear_refs``),
  and the child's whole peak (loading included);
- parity against Meta fp32: the relative error ‖ours − Meta‖ / ‖Meta‖ of each frame's
  embedding (worst frame), and the IoU of the masks SAM's decoder gives from the same prompts
  (one point, and three points, per frame, inside the DAVIS ground truth; worst mask).

With ``--sam-model`` naming a family that runs its package's own encoder (SAM 2.1's Hiera,
HQ-SAM's ViT), the variants are that encoder in fp32 (``own-fp32``, the reference) and under
bfloat16 autocast (``own-bf16``); no relative-position tables are drawn there.

Usage: .venv/bin/python -u benchmarks/bench_encoder.py [--frames 3] [--threads 2]
       [--variants meta-fp32,sdpa-fp32,sdpa-fp32-compile,sdpa-bf16,sdpa-fp16]
       [--sam-model vit_b | sam2.1_hiera_tiny --variants own-fp32,own-bf16 | ...]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from samic_vos.data.mask_io import read_mask
from samic_vos.prompts.mask_points import interior_points
from samic_vos.sam.encoder import EncoderConfig
from samic_vos.sam.families import SEGMENTERS
from samic_vos.sam.models import build_named, load_named, randomize_relative_positions, save_sam
from samic_vos.sam.names import family_of
from samic_vos.sam.segmenter import SamSegmenter, mask_iou

DAVIS = Path(__file__).resolve().parents[2] / "shared" / "data" / "DAVIS"
SEQUENCE = "bear"
VARIANTS: dict[str, EncoderConfig] = {
    "meta-fp32": EncoderConfig(implementation="reference", precision="fp32"),
    "sdpa-fp32": EncoderConfig(precision="fp32"),
    "sdpa-fp32-compile": EncoderConfig(precision="fp32", compile=True),
    "sdpa-bf16": EncoderConfig(precision="bf16"),
    "sdpa-fp16": EncoderConfig(precision="fp16"),
}
REFERENCE = "meta-fp32"
# Families whose package's own encoder runs (no SDPA rewrite of ours): its two precisions.
OWN_VARIANTS: dict[str, EncoderConfig] = {
    "own-fp32": EncoderConfig(precision="fp32"),
    "own-bf16": EncoderConfig(precision="bf16"),
}
OWN_REFERENCE = "own-fp32"


def _variants(model: str) -> tuple[dict[str, EncoderConfig], str]:
    """The variants ``model``'s family can run, and the one the others are compared with."""
    if family_of(model) in ("sam2", "hq"):
        return OWN_VARIANTS, OWN_REFERENCE
    return VARIANTS, REFERENCE


def _frames(count: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """The first ``count`` (RGB uint8 (H, W, 3), ground-truth bool (H, W)) DAVIS frames."""
    images = sorted((DAVIS / "JPEGImages" / "480p" / SEQUENCE).glob("*.jpg"))[:count]
    masks = DAVIS / "Annotations" / "480p" / SEQUENCE
    return [
        (np.asarray(Image.open(p).convert("RGB")), read_mask(masks / f"{p.stem}.png") > 0)
        for p in images
    ]


def _status_mib(field: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise KeyError(field)


def _segmenters(model: str, checkpoint: Path, variants: list[str]) -> dict[str, SamSegmenter]:
    """One segmenter per variant, all over one model (the same weights in memory)."""
    sam, _ = load_named(model, checkpoint)
    configs, _ = _variants(model)
    family = SEGMENTERS[family_of(model)]
    return {variant: family(sam, "cpu", configs[variant]) for variant in variants}


def _memory_child(model: str, variant: str, checkpoint: Path, out: Path) -> None:
    """Peak RSS of one variant encoding one frame, in this fresh process → ``out``."""
    segmenter = _segmenters(model, checkpoint, [variant])[variant]
    load_peak = _status_mib("VmHWM")
    Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM: the peak of encoding from here
    segmenter.embed(_frames(1)[0][0])
    encode_peak = _status_mib("VmHWM")
    record = {"encode_peak_mib": encode_peak, "process_peak_mib": max(load_peak, encode_peak)}
    out.write_text(json.dumps(record))


def _timing_child(
    model: str, variants: list[str], checkpoint: Path, frames: int, out: Path
) -> None:
    """All variants in this process, interleaved frame by frame (the order rotating), so that
    each sees the same load from other jobs; times, embeddings and masks → ``out``."""
    segmenters = _segmenters(model, checkpoint, variants)
    seconds: dict[str, list[float]] = {v: [] for v in variants}
    embeddings: dict[str, list[np.ndarray]] = {v: [] for v in variants}
    masks: dict[str, list[np.ndarray]] = {v: [] for v in variants}
    for index, (rgb, truth) in enumerate(_frames(frames)):
        points = interior_points(truth, 3, 1)
        shift = index % len(variants)
        for variant in variants[shift:] + variants[:shift]:
            segmenter = segmenters[variant]
            start = time.perf_counter()
            embedding = segmenter.embed(rgb)
            seconds[variant].append(time.perf_counter() - start)
            print(f"frame {index} {variant}: {seconds[variant][-1]:.1f} s", flush=True)
            segmenter.set_embedding(embedding)
            embeddings[variant].append(embedding.features.numpy())
            masks[variant] += [segmenter.segment([prompt]).mask for prompt in (points[:1], points)]
    np.savez(
        out.with_suffix(".npz"),
        **{f"{v}/embeddings": np.stack(embeddings[v]) for v in variants},
        **{f"{v}/masks": np.stack(masks[v]) for v in variants},
    )
    out.write_text(json.dumps(seconds))


def _child_command(tmp: Path, args: argparse.Namespace, *extra: str) -> list[str]:
    command = [sys.executable, __file__, "--checkpoint", str(tmp / "sam.pt")]
    command += ["--sam-model", args.sam_model]
    return command + ["--threads", str(args.threads), "--frames", str(args.frames), *extra]


def _uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--frames", type=int, default=3, help="frames (the first is warm-up; 1: parity only)"
    )
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--variants", help="default: every variant the model's family runs")
    parser.add_argument("--sam-model", default="vit_b", help="a segmenter name (random weights)")
    parser.add_argument("--no-memory", action="store_true", help="skip the peak-RSS children")
    parser.add_argument("--child", choices=("memory", "timing"), help=argparse.SUPPRESS)
    parser.add_argument("--checkpoint", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    configs, reference = _variants(args.sam_model)
    variants = args.variants.split(",") if args.variants else list(configs)
    if args.child:
        torch.set_num_threads(args.threads)
        if args.child == "memory":
            _memory_child(args.sam_model, variants[0], args.checkpoint, args.out)
        else:
            _timing_child(args.sam_model, variants, args.checkpoint, args.frames, args.out)
        return 0
    unknown = sorted(set(variants) - set(configs))
    if unknown or reference not in variants or args.frames < 1:
        parser.error(f"--variants: from {', '.join(configs)}, {reference} included; --frames >= 1")
    with tempfile.TemporaryDirectory(prefix="bench_encoder_") as name:
        tmp = Path(name)
        torch.manual_seed(0)
        sam = build_named(args.sam_model)
        if family_of(args.sam_model) in ("sam", "medsam"):
            randomize_relative_positions(sam, std=0.2)
        save_sam(tmp / "sam.pt", sam, args.sam_model)
        del sam
        memory = {}
        for variant in [] if args.no_memory else variants:
            print(f"{_uptime()}: memory child {variant}", flush=True)
            out = tmp / f"memory-{variant}.json"
            command = _child_command(tmp, args, "--child", "memory", "--variants", variant)
            subprocess.run([*command, "--out", str(out)], check=True)
            memory[variant] = json.loads(out.read_text())
        print(f"{_uptime()}: timing child", flush=True)
        out = tmp / "timing.json"
        command = _child_command(tmp, args, "--child", "timing", "--variants", ",".join(variants))
        subprocess.run([*command, "--out", str(out)], check=True)
        seconds = json.loads(out.read_text())
        arrays = dict(np.load(out.with_suffix(".npz")))
        print(f"{_uptime()}: done", flush=True)
    _print_table(variants, reference, seconds, arrays, memory, args)
    return 0


def _print_table(
    variants: list[str],
    reference: str,
    seconds: dict[str, list[float]],
    arrays: dict[str, np.ndarray],
    memory: dict[str, dict],
    args: argparse.Namespace,
) -> None:
    timed = slice(1 if args.frames > 1 else 0, None)  # one frame: its time, warm-up included
    ref_time = float(np.mean(seconds[reference][timed]))
    print(
        f"\n{args.sam_model} (random weights), {args.frames} DAVIS {SEQUENCE} frames 854x480, "
        f"{args.threads} threads; s/frame: mean over frames {timed.start + 1}..{args.frames}"
    )
    print(
        f"| variant | s/frame | speed-up vs {reference} | first frame (s) "
        f"| peak RSS encoding (MiB) | vs {reference} | process peak (MiB) "
        "| embedding rel. error | mask IoU (worst) |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    ref_peak = memory.get(reference, {}).get("encode_peak_mib", float("nan"))
    for variant in variants:
        per_frame = float(np.mean(seconds[variant][timed]))
        error = max(
            float(np.linalg.norm(o - m) / np.linalg.norm(m))
            for o, m in zip(
                arrays[f"{variant}/embeddings"], arrays[f"{reference}/embeddings"], strict=True
            )
        )
        iou = min(
            mask_iou(o, m)
            for o, m in zip(arrays[f"{variant}/masks"], arrays[f"{reference}/masks"], strict=True)
        )
        peak = memory.get(variant, {}).get("encode_peak_mib", float("nan"))
        whole = memory.get(variant, {}).get("process_peak_mib", float("nan"))
        print(
            f"| {variant} | {per_frame:.2f} | {ref_time / per_frame:.2f}x | "
            f"{seconds[variant][0]:.1f} | {peak:.0f} | {peak / ref_peak:.2f} | {whole:.0f} "
            f"| {error:.1e} | {iou:.4f} |"
        )
    for variant in variants:
        ratios = [m / o for m, o in zip(seconds[reference], seconds[variant], strict=True)]
        print(f"per frame, {reference} / {variant} time: {[round(r, 2) for r in ratios]}")
    areas = [int(m.sum()) for m in arrays[f"{reference}/masks"]]
    print(f"{reference}'s mask areas (pixels; per frame: 1 point, 3 points): {areas}")


if __name__ == "__main__":
    sys.exit(main())
