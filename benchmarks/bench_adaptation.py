"""First-frame adaptation with the defaults: time per step, loss curve, and what it learns.

1. Curve: ``adapt_on_first_frame`` with ``AdaptationConfig()`` (the defaults, or
   ``--max-seconds`` / ``--steps`` instead of theirs) on frame 0 of the judo frames and its
   mask, SAMIC at its default 224×224 with a random backbone (no ImageNet weights here).
   Prints seconds per step, the set-up, why it stopped, and the validation loss (held-out
   view) and mean training loss per validation.
2. Proxy (``--proxy``): for each DAVIS-2016 val sequence, a fresh network adapted on the
   sequence's frame 0 and ground-truth mask the same way, then scored with the learning proxy
   of ``bench_samic_points.py`` (``evaluate``) on every frame t >= 1 of that sequence: points
   predicted from the true frame t−1 and its ground-truth points, against copying them.

    .venv/bin/python benchmarks/bench_adaptation.py [--max-seconds S|none] [--proxy]
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

import numpy as np
import torch
from bench_samic_points import evaluate

from samic_vos.data.davis import DavisDataset, read_image
from samic_vos.data.mask_io import read_mask
from samic_vos.model.samic_net import SamicNet, SamicNetConfig, build_samic
from samic_vos.prompts.heatmaps import DEFAULT_SIGMA
from samic_vos.runtime.config import apply_overrides
from samic_vos.training.first_frame_adaptation import AdaptationConfig, adapt_on_first_frame
from samic_vos.training.training_pairs import DEFAULT_POINTS_PER_OBJECT

RANDOM = SamicNetConfig(backbone="random")

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
JUDO = SHARED / "judo"


def adapt(
    rgb: np.ndarray, ids: np.ndarray, config: AdaptationConfig, net_config: SamicNetConfig
) -> tuple[SamicNet, dict]:
    """A fresh network (head seed 0) adapted on ``rgb`` with id map ``ids``; its metrics."""
    torch.manual_seed(0)
    net = build_samic(net_config)
    metrics = adapt_on_first_frame(
        net,
        rgb,
        ids,
        config,
        heat_sigma=DEFAULT_SIGMA,
        device=torch.device("cpu"),
        progress=False,
    )
    return net, metrics


def print_curve(metrics: dict) -> None:
    print(
        f"{metrics['steps']} steps ({metrics['stop']}), {metrics['seconds_per_step']:.2f} s per "
        f"step, set-up {metrics['setup_seconds']:.1f} s, steps {metrics['seconds']:.0f} s; kept "
        f"step {metrics['best_step']} (validation loss {metrics['best_val_loss']:.3f})"
    )
    print("| step | learning rate | training loss (mean since last) | validation loss |")
    print("| --- | --- | --- | --- |")
    for h in metrics["history"]:
        train = "—" if h["train_loss"] is None else f"{h['train_loss']:.3f}"
        print(f"| {h['step']} | {h['lr']:.2e} | {train} | {h['val_loss']:.3f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--max-seconds", default=None, help="override: seconds, or 'none'")
    parser.add_argument("--steps", type=int, default=None, help="override the step bound")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--proxy", action="store_true", help="also the DAVIS-2016 val proxy")
    parser.add_argument("--skip-curve", action="store_true")
    parser.add_argument("--out", default="/tmp/bench_adaptation.json")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    overrides: dict = {}
    if args.max_seconds is not None:
        overrides["max_seconds"] = None if args.max_seconds == "none" else float(args.max_seconds)
    if args.steps is not None:
        overrides["steps"] = args.steps
    config = apply_overrides(AdaptationConfig(), overrides, "benchmark")
    report: dict = {"config": overrides, "threads": args.threads}
    if not args.skip_curve:
        rgb = read_image(JUDO / "JPEGImages" / "480p" / "judo" / "00000.jpg")
        ids = read_mask(JUDO / "Annotations" / "480p" / "judo" / "00000.png")
        _, metrics = adapt(rgb, ids, config, RANDOM)
        report["judo"] = metrics
        print_curve(metrics)
    if args.proxy:
        davis = SHARED / "DAVIS"
        val = DavisDataset(davis, "2016", "val")
        report["proxy"] = {}
        for seq in val.sequences:
            rgb = read_image(val.frame_paths(seq)[0])
            start = time.perf_counter()
            net, metrics = adapt(rgb, val.read_annotation(seq, 0), config, RANDOM)
            net.eval()
            print(f"\n{seq}: ", end="")
            print_curve(metrics)
            results = evaluate(net, davis, DEFAULT_POINTS_PER_OBJECT, DEFAULT_SIGMA, [seq])
            results.pop("samic heat-map maximum")
            report["proxy"][seq] = {
                "adaptation": metrics,
                "results": results,
                "seconds": time.perf_counter() - start,
            }
            for name, r in results.items():
                print(
                    f"  {name}: precision {r['precision']:.1%}, recall {r['recall']:.1%}, "
                    f"{r['points_per_frame']:.2f} points / frame, {r['frames']} frames"
                )
    Path(args.out).write_text(json.dumps(report, indent=1) + "\n")


if __name__ == "__main__":
    main()
