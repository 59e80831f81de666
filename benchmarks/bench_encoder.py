"""Benchmark: our SAM image encoder against Meta's ``ImageEncoderViT``, same frames, same run.

SAM ViT-B architecture with random weights (no checkpoint can be downloaded here); the
relative-position tables, which SAM initialises to zero, are drawn at random too (σ 0.2) so
that the bias our SDPA path adds as a mask is not zero. The weights are written once to a
temporary checkpoint and every variant loads that same file in a fresh child process, so each
variant's peak memory is its own:

- time: seconds per frame of ``SamSegmenter.embed`` (resize, normalise, encode) on real DAVIS
  frames (854×480), after one warm-up frame (reported apart: for ``compile`` it includes the
  compilation);
- memory: the child's peak RSS (VmHWM) while encoding, its high-water mark reset once the
  model is loaded (``/proc/self/clear_refs``), and the child's whole peak (loading included);
- parity against Meta fp32: the relative error ‖ours − Meta‖ / ‖Meta‖ of each frame's
  embedding (worst frame), and the IoU of the masks SAM's decoder gives from the same prompts
  (one point, and three points, per frame, inside the DAVIS ground truth; worst mask).

Usage: .venv/bin/python -u benchmarks/bench_encoder.py [--frames 3] [--threads 2]
       [--variants meta-fp32,sdpa-fp32,sdpa-fp32-compile,sdpa-bf16,sdpa-fp16]
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
from PIL import Image

from samic_vos.mask_io import read_mask
from samic_vos.mask_points import interior_points
from samic_vos.sam_encoder import EncoderConfig
from samic_vos.sam_models import build_sam, load_sam, save_sam
from samic_vos.segmenter import SamSegmenter

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


def _child(variant: str, checkpoint: Path, frames: int, threads: int, out: Path) -> None:
    """One variant in this (fresh) process: times, peaks, embeddings and masks → ``out``."""
    torch.set_num_threads(threads)
    segmenter = SamSegmenter(load_sam("vit_b", checkpoint), "cpu", VARIANTS[variant])
    data = _frames(frames)
    load_peak = _status_mib("VmHWM")
    Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM: peak of encoding from here
    seconds, embeddings, masks = [], [], []
    for rgb, truth in data:
        start = time.perf_counter()
        embedding = segmenter.embed(rgb)
        seconds.append(time.perf_counter() - start)
        segmenter.set_embedding(embedding)
        embeddings.append(embedding.features.numpy())
        points = interior_points(truth, 3, 1)
        for prompt in (points[:1], points):
            masks.append(segmenter.segment([prompt]).mask)
    np.savez(out.with_suffix(".npz"), embeddings=np.stack(embeddings), masks=np.stack(masks))
    record = {
        "seconds": seconds,
        "encode_peak_mib": _status_mib("VmHWM"),
        "process_peak_mib": max(load_peak, _status_mib("VmHWM")),
    }
    out.write_text(json.dumps(record))


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    union = (a | b).sum()
    return float((a & b).sum() / union) if union else 1.0


def _run_variant(variant: str, checkpoint: Path, args: argparse.Namespace, tmp: Path) -> dict:
    out = tmp / f"{variant}.json"
    load = os.getloadavg()[0]
    command = [sys.executable, __file__, "--child", variant, "--checkpoint", str(checkpoint)]
    command += ["--frames", str(args.frames), "--threads", str(args.threads), "--out", str(out)]
    subprocess.run(command, check=True)
    record = json.loads(out.read_text())
    record.update(np.load(out.with_suffix(".npz")))
    record["load_before"] = load
    return record


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=3, help="frames (the first is warm-up)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--checkpoint", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(args.child, args.checkpoint, args.frames, args.threads, args.out)
        return 0
    variants = args.variants.split(",")
    unknown = sorted(set(variants) - set(VARIANTS))
    if unknown or REFERENCE not in variants:
        parser.error(f"--variants: one of {', '.join(VARIANTS)} each, {REFERENCE} included")
    with tempfile.TemporaryDirectory(prefix="bench_encoder_") as name:
        tmp = Path(name)
        torch.manual_seed(0)
        sam = build_sam("vit_b", random_init=True)
        with torch.no_grad():
            for block in sam.image_encoder.blocks:
                block.attn.rel_pos_h.normal_(std=0.2)
                block.attn.rel_pos_w.normal_(std=0.2)
        save_sam(tmp / "sam.pt", sam, "vit_b")
        del sam
        print(f"uptime: {os.popen('uptime').read().strip()}", flush=True)
        results = {}
        for variant in variants:
            results[variant] = _run_variant(variant, tmp / "sam.pt", args, tmp)
            print(f"{variant}: {[round(s, 2) for s in results[variant]['seconds']]} s", flush=True)
        print(f"uptime: {os.popen('uptime').read().strip()}")
    _print_table(results, args)
    return 0


def _print_table(results: dict[str, dict], args: argparse.Namespace) -> None:
    ref = results[REFERENCE]
    ref_time = float(np.mean(ref["seconds"][1:]))
    print(
        f"\nSAM ViT-B (random weights), {args.frames} DAVIS {SEQUENCE} frames 854x480, "
        f"{args.threads} threads; s/frame over frames 2..{args.frames}"
    )
    print(
        "| variant | s/frame | speed-up vs Meta | first frame (s) | peak RSS encoding (MiB) "
        "| vs Meta | process peak (MiB) | embedding rel. error | mask IoU (worst) "
        "| load avg before |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for variant, r in results.items():
        per_frame = float(np.mean(r["seconds"][1:]))
        error = max(
            float(np.linalg.norm(o - m) / np.linalg.norm(m))
            for o, m in zip(r["embeddings"], ref["embeddings"], strict=True)
        )
        iou = min(_iou(o, m) for o, m in zip(r["masks"], ref["masks"], strict=True))
        print(
            f"| {variant} | {per_frame:.2f} | {ref_time / per_frame:.2f}x | {r['seconds'][0]:.1f} "
            f"| {r['encode_peak_mib']:.0f} | {r['encode_peak_mib'] / ref['encode_peak_mib']:.2f} "
            f"| {r['process_peak_mib']:.0f} | {error:.1e} | {iou:.4f} | {r['load_before']:.1f} |"
        )
    areas = [int(m.sum()) for m in ref["masks"]]
    print(f"Meta's mask areas (pixels, per frame: 1 point, 3 points): {areas}")


if __name__ == "__main__":
    sys.exit(main())
