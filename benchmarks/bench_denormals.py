"""Denormal floats in SAMIC: first-frame adaptation and one prediction, before/after the fix.

The fix has two parts: heat maps cut to exactly 0 below ``HEAT_CUTOFF`` (source and network,
``net.heat_cutoff``) and CPU flush-to-zero (``samic_vos.runtime.devices.flush_denormals``). This
script times, in one process, the four combinations on the judo frames (854×480; frame 0 and its
mask), SAMIC at its default 224×224 with a random backbone (the compute is the real one):

- adaptation seconds per step: ``adapt_on_first_frame`` with ``--steps`` steps and no time
  bound, its ``seconds_per_step`` (the steps and the one validation at the last step) and
  ``setup_seconds`` (views: crops, backbone features, heat maps);
- one SAMIC prediction (batch 1, features precomputed): frame 0 with its prompt heat map as
  reference, frame 1 as target; and the hypercorrelation alone (where the denormals were);
  the fastest of ``--repeats``.

Rounds alternate the order of the combinations; each figure is the median over rounds.
"before" is the code without the fix: heat maps with their full tails, no flush.

    .venv/bin/python benchmarks/bench_denormals.py [--steps 4] [--rounds 3] [--threads 1]
"""

from __future__ import annotations

import argparse
import functools
import json
import statistics
import time
from pathlib import Path
from unittest import mock

import numpy as np
import torch
from bench_adaptation import adapt

import samic_vos.training.adaptation_views as views_module
from samic_vos.data.davis import read_image
from samic_vos.data.mask_io import read_mask
from samic_vos.model.samic_net import SamicNetConfig, build_samic, hypercorrelation, preprocess
from samic_vos.prompts.heatmaps import DEFAULT_SIGMA, HEAT_CUTOFF, points_to_heatmap
from samic_vos.prompts.mask_points import interior_points
from samic_vos.training.first_frame_adaptation import AdaptationConfig

JUDO = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "judo"
MODES = {  # name: (heat cutoff, flush-to-zero)
    "before: full tails, no flush": (0.0, False),
    "cutoff only": (HEAT_CUTOFF, False),
    "flush only": (0.0, True),
    "after: cutoff + flush": (HEAT_CUTOFF, True),
}


def _denormal_share(heat: np.ndarray) -> float:
    return float(((heat > 0) & (heat < np.finfo(np.float32).tiny)).mean())


def _adapt_seconds(rgb, ids, cutoff: float, steps: int) -> tuple[float, float]:
    """(seconds per step, set-up seconds) of an adaptation of ``steps`` steps."""
    config = AdaptationConfig(steps=steps, val_every=steps, max_seconds=None)
    draw = functools.partial(points_to_heatmap, cutoff=cutoff)
    with mock.patch.object(views_module, "points_to_heatmap", draw):
        _, metrics = adapt(rgb, ids, config, SamicNetConfig(backbone="random", heat_cutoff=cutoff))
    return metrics["seconds_per_step"], metrics["setup_seconds"]


def _predict_seconds(frames, ids, cutoff: float, repeats: int) -> dict[str, float]:
    """The fastest of ``repeats`` predictions and of as many correlations alone (seconds),
    and the share of denormal pixels in the reference heat map."""
    torch.manual_seed(0)
    net = build_samic(SamicNetConfig(backbone="random", heat_cutoff=cutoff)).eval()
    size = net.config.input_size
    points = interior_points(ids == 1, AdaptationConfig().points_per_object)
    heat = points_to_heatmap(points, ids.shape, size, DEFAULT_SIGMA, cutoff=cutoff)
    predict, correlate = [], []
    with torch.no_grad():
        ref, tgt = (net.extract_features(preprocess(f, size, net.config.resize)) for f in frames)
        ref_heat = torch.from_numpy(heat)[None, None]
        for _ in range(repeats):
            start = time.perf_counter()
            net.predict(ref, ref_heat, tgt)
            predict.append(time.perf_counter() - start)
            start = time.perf_counter()
            hypercorrelation(ref, ref_heat, tgt, heat_cutoff=cutoff)
            correlate.append(time.perf_counter() - start)
    return {
        "predict_ms": 1000 * min(predict),
        "correlation_ms": 1000 * min(correlate),
        "denormal_pixels": _denormal_share(heat),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=4, help="timed adaptation steps")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=5, help="timed predictions")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--out", default="/tmp/bench_denormals.json")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    frames = [read_image(JUDO / "JPEGImages" / "480p" / "judo" / f"{t:05d}.jpg") for t in (0, 1)]
    ids = read_mask(JUDO / "Annotations" / "480p" / "judo" / "00000.png")
    runs: dict[str, list[dict[str, float]]] = {name: [] for name in MODES}
    for round_index in range(args.rounds):
        order = list(MODES) if round_index % 2 == 0 else list(MODES)[::-1]
        for name in order:
            cutoff, flush = MODES[name]
            torch.set_flush_denormal(flush)
            step, setup = _adapt_seconds(frames[0], ids, cutoff, args.steps)
            predict = _predict_seconds(frames, ids, cutoff, args.repeats)
            runs[name].append({"step_s": step, "setup_s": setup, **predict})
            print(f"round {round_index} {name}: {runs[name][-1]}", flush=True)
    summary = {
        name: {k: statistics.median(r[k] for r in rs) for k in rs[0]} for name, rs in runs.items()
    }
    Path(args.out).write_text(json.dumps({"args": vars(args), "runs": runs}, indent=1) + "\n")
    base = summary["before: full tails, no flush"]
    print(
        "\n| combination | s / adaptation step | set-up (s) | prediction (ms) | correlation "
        "(ms) | speed-up: step / prediction / correlation | denormal heat pixels |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for name, s in summary.items():
        ratios = [base[k] / s[k] for k in ("step_s", "predict_ms", "correlation_ms")]
        print(
            f"| {name} | {s['step_s']:.2f} | {s['setup_s']:.2f} | {s['predict_ms']:.0f} | "
            f"{s['correlation_ms']:.0f} | {' / '.join(f'{r:.2f}x' for r in ratios)} | "
            f"{s['denormal_pixels']:.1%} |"
        )


if __name__ == "__main__":
    main()
