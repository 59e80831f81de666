"""Benchmark of `samic-vos segment`: seconds per target per stage, and the share outside SAM.

Two runs of the real pipeline (``run_segment``: reading targets, the few-shot engine, PNG
writes, prompts.jsonl) on real DAVIS frames (854×480) from ``../shared/data``, with frame 0 of
``bear`` and its mask as the one reference (``--shots`` references: frames 0, 10, 20, ... of
``bear``):

1. ``tiny``: the tests' tiny random SAM and SAMIC on ``--tiny-targets`` frames (default 200);
2. ``vit_b``: the real SAM ViT-B architecture (random weights, ``sam_models.build_sam``; the
   compute is the real one, 1024² input) and SAMIC at its default 224×224 with a random
   ResNet-50 backbone, on ``--vit-targets`` frames (default 5).

Stages are timed by wrapping the library's functions from this script
(:class:`samic_vos.runtime.stage_timer.StageTimer`, exclusive seconds: a nested stage's time is its
own). The clock of "per target" is :func:`samic_vos.pipelines.segment._segment_all`, the loop
over targets (model loading and the references excluded; they are shown apart). "Outside SAM's
encoder" is that loop's time minus the encoder's, over the loop's time (target ≤ 5% with
ViT-B). Reference features: the engine's ``reference_feature_calls`` and the backbone's image
count (references + targets: each reference once).

Usage: .venv/bin/python -u benchmarks/bench_segment.py [--tiny-targets 200] [--vit-targets 5]
       [--shots 1] [--threads 2] [--skip-vit]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

import samic_vos.inference.fewshot_engine as engine_module
import samic_vos.pipelines.segment as pipeline
from samic_vos.inference.fewshot_engine import FewShotSegmenter
from samic_vos.jobs.segment import SegmentConfig
from samic_vos.model.checkpoint import save_samic
from samic_vos.model.samic_net import SamicNet, SamicNetConfig, build_samic
from samic_vos.pipelines.segment import SegmentInputs, run_segment
from samic_vos.runtime.stage_timer import StageTimer
from samic_vos.sam.models import build_sam, save_sam
from samic_vos.sam.segmenter import SamSegmenter

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "DAVIS"
FRAMES = DATA / "JPEGImages" / "480p"
MASKS = DATA / "Annotations" / "480p"
REFERENCE_SEQUENCE = "bear"
TINY_NET = SamicNetConfig(input_size=(64, 64), backbone="random", channels=(8, 16, 32))
# (object, method or function name, stage label), wrapped in this order.
STAGES = (
    (pipeline, "read_image", "read target"),
    (SamSegmenter, "embed", "SAM image encoder"),
    (SamicNet, "predict", "SAMIC head (predict)"),
    (engine_module, "find_peaks", "peaks"),
    (SamSegmenter, "_decode", "SAM prompt decoding"),
    (pipeline, "_write", "mask PNG write"),
)


def _targets(count: int) -> list[Path]:
    """The first ``count`` DAVIS frames, sequence by sequence (names sorted)."""
    frames = [f for seq in sorted(FRAMES.iterdir()) for f in sorted(seq.glob("*.jpg"))]
    if len(frames) < count:
        sys.exit(f"only {len(frames)} DAVIS frames under {FRAMES}")
    return frames[:count]


def _load() -> str:
    return " ".join(f"{v:.2f}" for v in os.getloadavg())


def _run(name: str, sam_path: Path, samic_path: Path, targets: list[Path], shots: int, out: Path):
    """One timed ``run_segment``; prints its table."""
    timer, originals = StageTimer(), []
    for obj, attr, stage in STAGES:
        originals.append((obj, attr, getattr(obj, attr)))
        timer.wrap(obj, attr, stage)
    loop, engines = {}, []
    inner_loop, inner_refs = pipeline._segment_all, FewShotSegmenter.set_references

    def timed_loop(*args, **kwargs):
        before = dict(timer.seconds)
        start = time.perf_counter()
        try:
            return inner_loop(*args, **kwargs)
        finally:
            loop["seconds"] = time.perf_counter() - start
            loop["stages"] = {k: v - before.get(k, 0.0) for k, v in timer.seconds.items()}

    def kept_references(self, references):
        engines.append(self)
        start = time.perf_counter()
        inner_refs(self, references)
        loop["references"] = time.perf_counter() - start

    images_through_backbone = []
    inner_features = SamicNet.extract_features

    def counted_features(self, images):
        images_through_backbone.append(int(images.shape[0]))
        return inner_features(self, images)

    pipeline._segment_all = timed_loop
    FewShotSegmenter.set_references = kept_references
    SamicNet.extract_features = counted_features
    timer.wrap(SamicNet, "extract_features", "SAMIC backbone")
    refs = [FRAMES / REFERENCE_SEQUENCE / f"{10 * k:05d}.jpg" for k in range(shots)]
    masks = [MASKS / REFERENCE_SEQUENCE / f"{10 * k:05d}.png" for k in range(shots)]
    inputs = SegmentInputs(
        targets=[str(t) for t in targets],
        out_dir=out,
        ref_images=refs,
        ref_masks=masks,
        samic_checkpoint=samic_path,
        sam_checkpoint=sam_path,
    )
    start = time.perf_counter()
    try:
        summary = run_segment(inputs, SegmentConfig(device="cpu"), progress=False)
    finally:
        for obj, attr, original in originals:
            setattr(obj, attr, original)
        pipeline._segment_all = inner_loop
        FewShotSegmenter.set_references = inner_refs
        SamicNet.extract_features = inner_features
    whole = time.perf_counter() - start
    assert summary.computed == len(targets), summary
    in_loop = loop["stages"]
    n = len(targets)
    loop_seconds = loop["seconds"]
    measured = sum(in_loop.values())
    print(f"\n### {name}: {n} targets, {shots} reference(s)\n")
    print("| stage | ms / target |\n| --- | --- |")
    for stage in [s for _, _, s in STAGES[:2]] + ["SAMIC backbone"] + [s for _, _, s in STAGES[2:]]:
        print(f"| {stage} | {1000 * in_loop.get(stage, 0.0) / n:.1f} |")
    print(
        f"| rest of the loop (engine, prompts.jsonl, batching) | "
        f"{1000 * (loop_seconds - measured) / n:.1f} |"
    )
    print(f"| **whole loop** | **{1000 * loop_seconds / n:.1f}** |")
    encoder = in_loop.get("SAM image encoder", 0.0)
    share = (loop_seconds - encoder) / loop_seconds
    engine = engines[0]
    print()
    print(
        f"- outside SAM's encoder: **{100 * share:.2f}%** of the loop "
        f"({loop_seconds - encoder:.2f} s of {loop_seconds:.2f} s)"
    )
    print(
        f"- references: {loop['references']:.2f} s (features and prompts, once); whole "
        f"run_segment {whole:.2f} s (model loading included)"
    )
    lines = [json.loads(x) for x in (out / "prompts.jsonl").read_text().splitlines()]
    points = [sum(len(c["points"]) for c in line["classes"].values()) for line in lines]
    print(f"- SAM prompts (points) per target: mean {np.mean(points):.2f}, max {max(points)}")
    print(
        f"- reference features computed: {engine.reference_feature_calls} "
        f"(references: {shots}); images through the SAMIC backbone: "
        f"{sum(images_through_backbone)} = {shots} references + {n} targets, in "
        f"{len(images_through_backbone)} batches"
    )
    return share


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tiny-targets", type=int, default=200)
    parser.add_argument("--vit-targets", type=int, default=5)
    parser.add_argument("--shots", type=int, default=1)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--skip-vit", action="store_true")
    parser.add_argument("--skip-tiny", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"load average before: {_load()} (torch threads {args.threads})")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        torch.manual_seed(0)
        save_sam(folder / "tiny_sam.pt", build_sam("tiny", random_init=True), "tiny")
        save_samic(folder / "tiny_samic.pt", build_samic(TINY_NET))
        targets = _targets(max(args.tiny_targets, args.vit_targets))
        if not args.skip_tiny:
            tiny = (folder / "tiny_sam.pt", folder / "tiny_samic.pt")
            _run("tiny models", *tiny, targets[: args.tiny_targets], args.shots, folder / "t")
            print(f"\nload average after the tiny run: {_load()}")
        if args.skip_vit:
            return
        save_sam(folder / "vit_b.pt", build_sam("vit_b", random_init=True), "vit_b")
        save_samic(folder / "samic.pt", build_samic(SamicNetConfig(backbone="random")))
        print(f"load average before the ViT-B run: {_load()}")
        share = _run(
            "SAM ViT-B, SAMIC 224×224",
            folder / "vit_b.pt",
            folder / "samic.pt",
            targets[: args.vit_targets],
            args.shots,
            folder / "out_vit",
        )
        print(
            f"\nload average after: {_load()}; ViT-B share outside the encoder "
            f"{100 * share:.2f}% (target ≤ 5%)"
        )


if __name__ == "__main__":
    main()
