"""Expected runtime of `samic-vos bench paper` from per-stage times measured elsewhere.

Counts the work of each Table 1 column, then multiplies by seconds per stage:

- few-shot columns: images through SAM's image encoder (`bench fewshot` embeds each image once per
  class, whatever the episodes it serves in: the distinct query and support images of each class)
  and episodes (one SAMIC prediction and one SAM prompt decoding each, 1-shot). PASCAL-5i and
  COCO-20i: HSNet's 1000 episodes per fold drawn from the shipped lists (no image needed: a
  skeleton root is made in a temporary folder); FSS-1000: 240 test classes x 10 images;
- DAVIS columns: frames (one encoding and one SAMIC backbone pass each) and objects per frame
  (two SAMIC head passes and one SAM decoding each), from the val sets' published sizes.

Usage: python benchmarks/bench_paper_runtime.py [--encoder S --backbone S --head S --decoder S]
(defaults: the idle-machine CPU figures of BENCHMARKS.md, SAM ViT-B, "`samic-vos segment`").
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from samic_vos.data.fewshot_episodes import EpisodeConfig, FewShotSelection, protocol_episodes
from samic_vos.data.fold_sets import FOLDS

FSS_TEST_IMAGES = 240 * 10  # HSNet's 240 test classes, 10 images each
# DAVIS val: (frames, objects per frame): DAVIS-2016 one object per sequence; DAVIS-2017 about 2
# (README, "Benchmarks: DAVIS in one command").
DAVIS = {"DAVIS-16": (1376, 1.0), "DAVIS-17": (1999, 2.0)}


def fold_work(kind: str) -> tuple[int, int]:
    """(images encoded, episodes) of the 4 folds of ``kind``, from the shipped lists."""
    images = episodes = 0
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for folder in ("VOC2012/JPEGImages", "VOC2012/SegmentationClassAug"):
            (root / folder).mkdir(parents=True)
        for folder in ("COCO2014/val2014", "COCO2014/annotations/val2014"):
            (root / folder).mkdir(parents=True)
        for fold in FOLDS:
            dataset = FewShotSelection(kind=kind, fold=fold).open(root)
            found = protocol_episodes(dataset, EpisodeConfig())
            per_class: dict[str, set[Path]] = {}
            for episode in found:
                seen = per_class.setdefault(episode.class_name, set())
                seen.update(item.image for item in (episode.query, *episode.supports))
            images += sum(len(s) for s in per_class.values())
            episodes += len(found)
    return images, episodes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--encoder", type=float, default=9.649, help="s per SAM encoding")
    parser.add_argument("--backbone", type=float, default=0.127, help="s per SAMIC backbone pass")
    parser.add_argument("--head", type=float, default=0.134, help="s per SAMIC head pass")
    parser.add_argument("--decoder", type=float, default=0.124, help="s per SAM prompt decoding")
    args = parser.parse_args()
    rows = []
    for name, kind in (("COCO-20i", "coco20i"), ("Pascal-5i", "pascal5i")):
        images, episodes = fold_work(kind)
        rows.append((name, images, episodes))
    rows.append(("FSS-1000", FSS_TEST_IMAGES, FSS_TEST_IMAGES))
    total = 0.0
    print("| column | images encoded | episodes / frames | hours |")
    print("| --- | --- | --- | --- |")
    for name, images, units in rows:
        # 1-shot: per episode one support's backbone pass (cached when supports repeat) and
        # the query's, one head pass, one decoding.
        seconds = images * args.encoder + units * (2 * args.backbone + args.head + args.decoder)
        total += seconds
        print(f"| {name} | {images} | {units} | {seconds / 3600:.1f} |")
    for name, (frames, objects) in DAVIS.items():
        seconds = frames * (args.encoder + args.backbone + objects * (2 * args.head + args.decoder))
        total += seconds
        print(f"| {name} | {frames} | {frames} | {seconds / 3600:.1f} |")
    print(f"| **total (counted columns)** | | | **{total / 3600:.1f}** |")


if __name__ == "__main__":
    main()
