"""``samic-vos bench fewshot``: one command from a few-shot dataset to the paper's table."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path
from typing import Any

from samic_vos.commands import common
from samic_vos.data.names import FOLD_KINDS, FSS_SPLITS, TEST_KINDS

log = logging.getLogger(__name__)

DESCRIPTION = """\
Segment every test episode of a few-shot dataset and score it as the reference toolkits do:
FSS-1000 as HSNet (every test image the query of one episode, its --shots supports drawn from
its class with seed 0; mIoU and FB-IoU), PASCAL-5i and COCO-20i as HSNet (one --fold per run,
1000 episodes drawn as HSNet draws them; mIoU and FB-IoU over the fold's classes), PerSeg as
PerSAM (reference 00 of each object, every other image a target; mIoU); plain folders and
SAMBOX folders as FSS-1000; Kvasir-SEG, NWPU VHR-10 and LabelMe folders per class, every test
image a query, supports drawn from the train list (Kvasir) or the other test images
(--supports; see docs/fewshot_datasets.md). Prints one table beside the published 1-shot
figures, with images per second and seconds per stage. Writes OUT/pred/<class>/<episode>.png
(palette PNGs, id 1 the class), OUT/prompts/<class>/<episode>.json, OUT/config.yaml,
OUT/scores.json (and OUT/report.html with --report). `samic-vos eval fewshot` scores any
method's prediction folder the same way.

--episodes prints the episode list as CSV (episode,class,query,supports; paths relative to
ROOT, supports joined by |) and exits, without a model or an image read. --combine RUN...
puts scored PASCAL-5i or COCO-20i fold runs side by side with their 4-fold mean.

SAMIC needs a trained network (--samic CKPT, e.g. from `samic-vos train --fewshot fss1000`);
--prompter persam is training-free. A rerun into the same OUT skips finished episodes.
"""

EPILOG = """\
examples:
  samic-vos bench fewshot --dataset fss1000 --root FSS-1000 --samic fss.pt -o runs/fss1
  samic-vos bench fewshot --config configs/fss1000.yaml --root FSS-1000 --samic fss.pt --shots 5
  samic-vos bench fewshot --config configs/perseg.yaml --root PerSeg --prompter persam
  samic-vos bench fewshot --dataset pascal5i --fold 0 --root VOCdevkit/VOC2012 --episodes
  samic-vos bench fewshot --config configs/pascal5i.yaml --fold 0 --root VOC2012 --samic f0.pt
  samic-vos bench fewshot --combine runs/p0 runs/p1 runs/p2 runs/p3
"""


def register(benchmarks: argparse._SubParsersAction) -> None:
    """Add ``fewshot`` to the ``bench`` subcommands."""
    parser = benchmarks.add_parser(
        "fewshot",
        help="segment, score and table a few-shot image set (FSS-1000, PASCAL-5i, Kvasir, ...)",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    group = parser.add_argument_group("data")
    add_episode_flags(group)
    common.config_flag(
        group,
        "--kshot",
        key="protocol.kshot",
        metavar="{average,vote}",
        help="K supports: SAMIC's heat-map average (default) or HSNet's mask vote",
    )
    group.add_argument(
        "--episodes",
        action="store_true",
        help="print the episodes as CSV (episode,class,query,supports) and exit",
    )
    common.add_out(parser, "output folder (default: runs/bench-fewshot-<dataset>-<K>shot)")
    common.add_prompter(parser, "segment.prompter", video=False)
    common.add_models(parser, prefix="segment.")
    common.add_device(parser, key="segment.device")
    common.add_encoder(parser, prefix="segment.")
    parser.add_argument("--force", action="store_true", help="start afresh over another run in OUT")
    common.add_shards(parser, "segment the episodes of")
    parser.add_argument("--json", action="store_true", help="print the scores as one JSON object")
    parser.add_argument(
        "--combine",
        nargs="+",
        type=Path,
        metavar="RUN",
        help="print scored PASCAL-5i/COCO-20i fold runs (OUT folders) beside their mean; exit",
    )
    parser.add_argument(
        "--report",
        action="store_true",
        help="also write OUT/report.html: tables, per-class IoU, best and worst examples",
    )
    common.add_common(parser)
    parser.set_defaults(func=run)


def add_episode_flags(group: argparse._ArgumentGroup) -> None:
    """The flags that choose a few-shot dataset and its episodes, as `bench fewshot` and `eval
    fewshot` share them (``--root`` and the keys ``dataset.*``, ``episodes.*`` and
    ``protocol.eval_size``)."""
    common.config_flag(
        group,
        "--dataset",
        key="dataset.kind",
        metavar="{" + ",".join(TEST_KINDS) + "}",
        help="the dataset's layout and protocol (default fss1000)",
    )
    group.add_argument("--root", type=Path, metavar="ROOT", help="the dataset's folder (required)")
    common.config_flag(
        group,
        "--split",
        key="dataset.split",
        metavar="{" + ",".join(FSS_SPLITS) + "}",
        help="FSS-1000's class split (default test)",
    )
    common.config_flag(
        group, "--fold", key="dataset.fold", metavar="F", help="PASCAL-5i/COCO-20i fold, 0..3 (0)"
    )
    common.config_flag(
        group, "--shots", key="episodes.shots", metavar="K", help="supports per episode (1)"
    )
    common.config_flag(
        group,
        "--supports",
        key="episodes.supports",
        metavar="{auto,train,test}",
        help="Kvasir/NWPU/LabelMe: the list supports come from (auto: Kvasir train, else test)",
    )
    common.config_flag(
        group,
        "--episode-count",
        key="episodes.count",
        metavar="N",
        help="only the first N episodes (quick runs; default: the protocol's)",
    )
    common.config_flag(
        group,
        "--eval-size",
        key="protocol.eval_size",
        metavar="{auto,original,N}",
        help="where areas are counted: auto (HSNet's 400x400 where HSNet uses it), original, NxN",
    )
    common.config_flag(
        group,
        "--classes",
        key="dataset.classes",
        nargs="+",
        metavar="CLASS",
        help="only these classes (quick runs; the published protocol uses all)",
    )


def check_episode_flags(args: argparse.Namespace, config: Any, command: str) -> None:
    """Refuse, in one line, what the flags of :func:`add_episode_flags` cannot mean together
    (``config``: the job's, with ``dataset`` and ``episodes``): no ``--root``, ``--split`` on
    another set than FSS-1000, ``--fold`` on a set without folds, ``--supports`` on a set
    without lists."""
    from samic_vos.data.fewshot_episodes import check_supports
    from samic_vos.runtime.errors import UserError

    kind = config.dataset.kind
    check_supports(kind, config.episodes)
    if args.root is None:
        raise UserError(f"{command} needs --root ROOT, the dataset's folder")
    if common.given(args, "--split") and kind != "fss1000":
        raise UserError(f"--split is FSS-1000's; {kind} has none: drop it")
    if common.given(args, "--fold") and kind not in FOLD_KINDS:
        raise UserError(f"--fold is PASCAL-5i's and COCO-20i's; {kind} has none")


def run(args: argparse.Namespace) -> int:
    from samic_vos.runtime.errors import UserError

    if args.combine:
        return combine(args)
    if args.root is None:
        raise UserError("bench fewshot needs --root ROOT, the dataset's folder")
    # The data exists: checked before torch is imported (a mistake costs no start-up).
    common.require_dataset_root(args.root)
    from samic_vos.pipelines.bench_fewshot import (
        BenchFewshotConfig,
        BenchFewshotInputs,
        run_bench_fewshot,
    )

    if common.given(args, "--random-backbone"):
        raise UserError("--random-backbone applies to a network made here; bench uses --samic")
    config = common.job_config(BenchFewshotConfig(), args)
    common.refuse_ignored_flags(args, config.segment.prompter, config.episodes.shots)
    check_episode_flags(args, config, "bench fewshot")
    if args.episodes:
        from samic_vos.pipelines.bench_fewshot import episode_list

        text = episode_list(args.root, config).rstrip("\n")
        try:
            common.stdout(text)
        except BrokenPipeError:  # `--episodes | head`: the reader has what it wanted
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    shots = config.episodes.shots
    out = args.out or Path("runs") / f"bench-fewshot-{config.dataset.kind}-{shots}shot"
    inputs = BenchFewshotInputs(
        root=args.root,
        out_dir=out,
        samic_checkpoint=args.samic,
        sam_checkpoint=args.sam_checkpoint,
        backbone_weights=args.backbone_weights,
        force=args.force,
        shard=args.shard,
        merge=args.merge,
        report=args.report,
    )
    result = run_bench_fewshot(inputs, config)
    if result.scores is None:
        log.info(
            "segmented %d episodes; %d of the set remain: run the other shards, then `--merge`",
            result.computed,
            result.remaining,
        )
        return 0
    if args.json:
        common.stdout(json.dumps(result.scores, indent=1))
    else:
        common.stdout(format_scores(result.scores))
    return 0


def format_scores(scores: dict[str, Any], label: str | None = None) -> str:
    """The benchmark's table: our scores (x 100) beside the published 1-shot mIoU; ``label``
    names our row (default: the run's prompter and SAM)."""
    from samic_vos.commands.common import format_table
    from samic_vos.reports.fewshot_report import dataset_title, run_label

    columns = list(scores["global"])
    rows = [[label or run_label(scores), *(f"{scores['global'][c]:.1f}" for c in columns)]]
    for name, value in scores["published"].items():
        rows.append([f"{name}, 1-shot", f"{value:.1f}", *[""] * (len(columns) - 1)])
    on = " on TSMU landslide" if scores["dataset"] == "labelme" else ""
    title = (
        f"{dataset_title(scores)}: {scores['episodes']} episodes, {scores['classes']} classes "
        f"({', '.join(columns)} x 100; published: 1-shot mIoU{on})"
    )
    lines = [title, format_table(["method", *columns], rows), ""]
    if scores.get("ips"):
        per_stage = ", ".join(f"{k} {v:.1f} s" for k, v in scores["seconds"].items())
        lines.append(f"{scores['images']} images at {scores['ips']:.2f} images/s; {per_stage}")
    return "\n".join(lines)


def combine(args: argparse.Namespace) -> int:
    """``--combine``: the scored fold runs side by side, with their mean."""
    from samic_vos.eval.fewshot_folds import combine_folds
    from samic_vos.runtime.errors import UserError

    runs = []
    for folder in args.combine:
        path = folder / "scores.json"
        try:
            runs.append((str(folder), json.loads(path.read_text(encoding="utf-8"))))
        except (OSError, ValueError) as err:
            raise UserError(f"{path}: cannot read a run's scores ({err})") from err
    table = combine_folds(runs)
    common.stdout(json.dumps(table, indent=1) if args.json else format_folds(table))
    return 0


def format_folds(table: dict[str, Any]) -> str:
    """The folds of :func:`combine_folds` beside their mean (x 100), one row per metric."""
    from samic_vos.commands.common import format_table
    from samic_vos.reports.fewshot_report import DATASET_NAMES

    folds = list(table["folds"])
    header = ["metric", *(f"fold {f}" for f in folds), "mean"]
    rows = [
        [
            metric,
            *(f"{table['folds'][f][metric]:.1f}" for f in folds),
            f"{table['mean'][metric]:.1f}",
        ]
        for metric in ("mIoU", "FB-IoU")
    ]
    name = DATASET_NAMES.get(table["dataset"], table["dataset"])
    note = "" if table["complete"] else " (incomplete: not every class of all 4 folds)"
    title = f"{name}, {table['shots']}-shot, {len(folds)} fold(s){note}"
    return "\n".join([title, format_table(header, rows)])
