"""Optical-flow settings for dynamic-frame selection: speed against agreement of the picks.

For DAVIS sequences, motion scores (with the ground-truth masks) are computed under several
flow settings; each is timed and its top-k picks are compared with those of the reference
setting (DIS "medium" on full-resolution frames). Prints a Markdown table for BENCHMARKS.md:
time per frame pair (JPEG decoding included) relative to the default setting, the share of the
reference's picks that the setting also picks, and how dynamic the setting's picks are by the
reference's own scores (their mean reference score over that of the reference's picks; 100%:
as dynamic as the best picks).

    .venv/bin/python benchmarks/flow_selection.py [--davis ../shared/data/DAVIS] [--sequences ...]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from samic_vos.training.optical_flow import FlowConfig, motion_scores, select_dynamic_frames

REPO = Path(__file__).resolve().parents[1]
SETTINGS = {
    "reference: DIS medium, 854 px (full)": FlowConfig(working_size=100_000),
    "default: DIS medium, 320 px": FlowConfig(),
    "DIS medium, 480 px": FlowConfig(working_size=480),
    "DIS fast, 320 px": FlowConfig(dis_preset="fast"),
    "DIS ultrafast, 320 px": FlowConfig(dis_preset="ultrafast"),
    "DIS medium, 160 px": FlowConfig(working_size=160),
    "Farnebäck, 320 px": FlowConfig(method="farneback"),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--davis", type=Path, default=REPO.parent / "shared/data/DAVIS")
    parser.add_argument(
        "--sequences", nargs="+", default=["dog-agility", "rollerblade", "surf", "hockey"]
    )
    args = parser.parse_args()
    seconds = dict.fromkeys(SETTINGS, 0.0)
    shared = dict.fromkeys(SETTINGS, 0)
    motion = dict.fromkeys(SETTINGS, 0.0)
    total_picks = pairs = 0
    for seq in args.sequences:
        frames = sorted((args.davis / "JPEGImages/480p" / seq).glob("*.jpg"))
        masks = sorted((args.davis / "Annotations/480p" / seq).glob("*.png"))
        pairs += len(frames) - 1
        picks, scores = {}, {}
        for name, config in SETTINGS.items():
            start = time.perf_counter()
            scores[name] = motion_scores(frames, masks, config)
            seconds[name] += time.perf_counter() - start
            picks[name] = select_dynamic_frames(scores[name], config.top_k, config.min_gap)
        first = next(iter(SETTINGS))
        reference, truth = set(picks[first]), scores[first]
        total_picks += len(reference)
        for name in SETTINGS:
            shared[name] += len(set(picks[name]) & reference)
            # Summed over sequences, each weighted by its number of picks.
            motion[name] += truth[picks[name]].sum() / truth[picks[first]].mean()
    default = seconds["default: DIS medium, 320 px"]
    print(f"{len(args.sequences)} sequences ({', '.join(args.sequences)}), {pairs} frame pairs")
    print("| setting | time / default | ms per pair | picks shared | motion of picks |")
    print("| --- | --- | --- | --- | --- |")
    for name in SETTINGS:
        print(
            f"| {name} | {seconds[name] / default:.2f} | {1000 * seconds[name] / pairs:.1f} "
            f"| {shared[name] / total_picks:.0%} | {motion[name] / total_picks:.0%} |"
        )


if __name__ == "__main__":
    main()
