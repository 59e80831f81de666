"""Train SAMIC on DAVIS-2016 train, then score its point prompts on DAVIS-2016 val.

1. Training: ``samic_vos.training.job.run_training`` on the train split (dynamic frames by
   optical flow, held-out train sequences for early stopping), with a *randomly initialised*
   frozen backbone (no ImageNet weights exist on our machines), augmentation off so the
   backbone features are computed once and cached, a modest input size and epoch budget.
2. Evaluation on every frame t >= 1 of the val sequences, with the true t-1 reference: the
   reference points are the ground-truth interior points of frame t-1's mask
   (``samic_vos.prompts.mask_points.interior_points``, as in training), and the methods give points
   for frame t:

   - ``samic``: the trained network's heat map → ``find_peaks`` with the paper's absolute
     threshold 0.5 (floor 0.5), and with a threshold of 0.5 × each map's maximum (floor 0);
   - ``copy t-1``: the reference points unchanged;
   - ``correlation``: no training: for each reference point, the target position whose
     backbone feature (layer2, the finest level, cosine similarity averaged over its 4 blocks)
     is most similar to the reference point's; the same random backbone as SAMIC's.

   precision = predicted points inside frame t's object mask / all predicted points;
   recall = frames where at least one predicted point is inside the object / frames.

    .venv/bin/python benchmarks/bench_samic_points.py --out /tmp/bench_samic_points
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from samic_vos.data.davis import DavisDataset, read_image
from samic_vos.model.checkpoint import load_samic
from samic_vos.model.samic_net import SamicNet, preprocess
from samic_vos.prompts.heatmaps import points_to_heatmap, rescale_points
from samic_vos.prompts.mask_points import interior_points
from samic_vos.prompts.peaks import PeakConfig, find_peaks
from samic_vos.runtime.config import apply_overrides
from samic_vos.training.job import TrainJobConfig, run_training

REPO = Path(__file__).resolve().parents[1]
LAYER2 = slice(0, 4)  # the 4 layer2 blocks in the 13-map pyramid


def correlation_points(
    ref_feats: list[torch.Tensor], tgt_feats: list[torch.Tensor], ref_xy: np.ndarray, size
) -> np.ndarray:
    """Per reference point, the target cell of highest layer2 cosine similarity, as (x, y)."""
    grid = tuple(ref_feats[0].shape[-2:])
    cells = rescale_points(ref_xy, size, grid)
    cols = np.clip(np.floor(cells[:, 0] + 0.5).astype(int), 0, grid[1] - 1)
    rows = np.clip(np.floor(cells[:, 1] + 0.5).astype(int), 0, grid[0] - 1)
    sims = 0
    for ref, tgt in zip(ref_feats[LAYER2], tgt_feats[LAYER2], strict=True):
        ref = F.normalize(ref[0], dim=0)[:, rows, cols]  # (C, N)
        tgt = F.normalize(tgt[0], dim=0).flatten(1)  # (C, h*w)
        sims = sims + ref.T @ tgt  # (N, h*w)
    best = sims.argmax(dim=1).numpy()
    found = np.stack([best % grid[1], best // grid[1]], axis=1).astype(np.float64)
    return rescale_points(found, grid, size)


def score(points: np.ndarray, mask: np.ndarray) -> tuple[int, int]:
    """(points inside ``mask``, all points); points are (x, y) pixels."""
    if len(points) == 0:
        return 0, 0
    cols = np.clip(np.floor(points[:, 0] + 0.5).astype(int), 0, mask.shape[1] - 1)
    rows = np.clip(np.floor(points[:, 1] + 0.5).astype(int), 0, mask.shape[0] - 1)
    return int(mask[rows, cols].sum()), len(points)


def evaluate(
    model: SamicNet,
    davis_root: Path,
    points_per_object: int,
    sigma: float,
    sequences: list[str] | None = None,
) -> dict[str, dict]:
    """Precision/recall of every method over all val frames t >= 1 (see the module doc), of
    the val ``sequences`` only if given."""
    val = DavisDataset(davis_root, "2016", "val")
    if sequences is not None:
        val.sequences = list(sequences)
    size_in = model.config.input_size
    peak_configs = {
        "samic (peaks: threshold 0.5)": PeakConfig(threshold=0.5, relative=False, floor=0.5),
        "samic (peaks: 0.5 x max)": PeakConfig(threshold=0.5, relative=True, floor=0.0),
    }
    names = [*peak_configs, "copy t-1", "correlation"]
    # Per method and sequence: [points inside, points, frames hit, frames, sum of per-frame
    # precisions (frames with points only), frames with points].
    stats = {name: {seq: [0] * 6 for seq in val.sequences} for name in names}
    heat_max = []  # the trained network's heat-map maximum per frame
    with torch.no_grad():
        for seq in val.sequences:
            paths = val.frame_paths(seq)
            prev_feats, prev_mask = None, None
            for t, path in enumerate(paths):
                image = read_image(path)
                size = image.shape[:2]
                feats = model.extract_features(preprocess(image, size_in, model.config.resize))
                mask = val.read_annotation(seq, t) > 0
                if prev_feats is not None and prev_mask.any():
                    ref_xy = interior_points(prev_mask, points_per_object).astype(np.float64)
                    heat_in = points_to_heatmap(ref_xy, size, size_in, sigma)
                    ref_heat = torch.from_numpy(heat_in)[None, None]
                    heat = torch.sigmoid(model.predict(prev_feats, ref_heat, feats))[0, 0]
                    heat_max.append(float(heat.max()))
                    found = {
                        name: np.array([[p.x, p.y] for p in find_peaks(heat.numpy(), size, cfg)])
                        for name, cfg in peak_configs.items()
                    }
                    found["copy t-1"] = ref_xy
                    found["correlation"] = correlation_points(prev_feats, feats, ref_xy, size)
                    for name, pts in found.items():
                        inside, total = score(pts.reshape(-1, 2), mask)
                        s = stats[name][seq]
                        s[0] += inside
                        s[1] += total
                        s[2] += inside > 0
                        s[3] += 1
                        s[4] += inside / total if total else 0.0
                        s[5] += total > 0
                prev_feats, prev_mask = feats, mask
    results = {name: summarise(per_seq) for name, per_seq in stats.items()}
    results["samic heat-map maximum"] = dict(
        zip(("min", "median", "max"), np.percentile(heat_max, [0, 50, 100]).tolist(), strict=True)
    )
    return results


def summarise(per_seq: dict[str, list]) -> dict:
    """precision (pooled over points), frame precision (mean over frames with points),
    recall, points per frame; overall and per sequence."""

    def numbers(s: list) -> dict[str, float]:
        return {
            "precision": s[0] / max(s[1], 1),
            "frame_precision": s[4] / max(s[5], 1),
            "recall": s[2] / max(s[3], 1),
            "points_per_frame": s[1] / max(s[3], 1),
            "frames": s[3],
        }

    total = [sum(v[i] for v in per_seq.values()) for i in range(6)]
    return {**numbers(total), "sequences": {k: numbers(v) for k, v in per_seq.items()}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--davis-root", default=str(REPO.parent / "shared" / "data" / "DAVIS"))
    parser.add_argument("--out", default="/tmp/bench_samic_points", help="training run folder")
    parser.add_argument("--input-size", type=int, default=160)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--patience", type=int, default=10)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument(
        "--bce", type=float, default=None, help="weight of the BCE loss term (default: LossWeights)"
    )
    parser.add_argument("--skip-training", action="store_true", help="reuse OUT/best.pt")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    overrides = {
        "network": {"backbone": "random", "input_size": (args.input_size, args.input_size)},
        "davis": {"year": "2016"},
        "device": "cpu",
        "augment": {"enabled": False},
        "train": {"max_epochs": args.epochs, "patience": args.patience},
    }
    if args.bce is not None:
        overrides["train"]["loss"] = {"bce": args.bce}
    config = apply_overrides(TrainJobConfig(), overrides, "benchmark")
    out = Path(args.out)
    start = time.perf_counter()
    if not args.skip_training:
        run_training(config, out_dir=out, davis_root=args.davis_root, force=True)
    train_seconds = time.perf_counter() - start
    model, meta = load_samic(out / "best.pt")
    start = time.perf_counter()
    results = evaluate(
        model, Path(args.davis_root), config.data.points_per_object, config.heat_sigma
    )
    history = json.loads((out / "history.json").read_text())
    report = {
        "settings": {**meta["config"], "threads": args.threads},
        "training": {
            "seconds": None if args.skip_training else train_seconds,
            "epochs": len(history),
            "best_epoch": meta["metrics"]["best_epoch"],
            "best_val_loss": meta["metrics"]["best_loss"],
            "pairs": meta["config"]["run"]["pairs"],
            "val_sequences": meta["config"]["run"]["val_sequences"],
        },
        "eval_seconds": time.perf_counter() - start,
        "results": results,
    }
    (out / "bench_samic_points.json").write_text(json.dumps(report, indent=1) + "\n")
    print(json.dumps(report["training"], indent=1))
    heat_max = results.pop("samic heat-map maximum")
    frames = next(iter(results.values()))["frames"]
    print(f"\n{frames} val frames (t >= 1, true t-1 reference)\n")
    print("| method | precision | frame precision | recall | points / frame |")
    print("| --- | --- | --- | --- | --- |")
    for name, r in results.items():
        print(
            f"| {name} | {r['precision']:.1%} | {r['frame_precision']:.1%} | "
            f"{r['recall']:.1%} | {r['points_per_frame']:.2f} |"
        )
    print(
        "\nSAMIC heat-map maximum over frames: "
        + ", ".join(f"{k} {v:.3f}" for k, v in heat_max.items())
    )


if __name__ == "__main__":
    main()
