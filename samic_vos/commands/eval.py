"""``samic-vos eval``: score results against a benchmark's ground truth.

``samic-vos eval davis RESULTS_DIR --davis-root ROOT`` gives the official DAVIS J&F numbers
(semi-supervised task) of a folder of result masks; ``samic-vos eval fewshot PRED --dataset D
--root ROOT`` scores any method's few-shot predictions as `bench fewshot` scores its own.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from samic_vos.commands import common
from samic_vos.commands.common import format_table

log = logging.getLogger(__name__)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "eval",
        help="score results against a benchmark's ground truth (DAVIS J&F, few-shot mIoU)",
        description="Score results against a benchmark's ground truth.",
    )
    common.needs_action(parser)
    targets = parser.add_subparsers(dest="benchmark", metavar="BENCHMARK")
    davis = targets.add_parser(
        "davis",
        help="DAVIS J&F, identical to the official davis2017-evaluation toolkit",
        description=(
            "Score result masks with the DAVIS semi-supervised measures (region J, boundary "
            "F; Mean, Recall, Decay), with the exact numbers of the official "
            "davis2017-evaluation toolkit. RESULTS_DIR holds one folder per sequence with one "
            "PNG per annotated frame, named like the ground truth (00001.png, ...), with the "
            "object ids of the first ground-truth frame. The first and last frames are not "
            "scored. Prints the global and per-object tables, or one JSON object with --json."
        ),
    )
    davis.add_argument("results_dir", type=Path, metavar="RESULTS_DIR", help="folder of masks")
    common.add_davis(davis)
    davis.add_argument(
        "--json",
        action="store_true",
        help='print one JSON object {"global": {...}, "per_object": {"<seq>_<id>": {"J", "F"}}}',
    )
    davis.add_argument(
        "--csv-dir",
        type=Path,
        metavar="DIR",
        help="also write global_results-<set>.csv and per-sequence_results-<set>.csv here",
    )
    common.config_flag(
        davis,
        "--workers",
        key="workers",
        metavar="N",
        help="processes scoring sequences in parallel (default: one per CPU)",
    )
    common.add_common(davis)
    davis.set_defaults(func=run_davis)
    _register_fewshot(targets)


FEWSHOT_DESCRIPTION = """\
Score any method's few-shot predictions with the numbers `samic-vos bench fewshot` gives: the
same episodes (the same --dataset, --root, --fold, --shots, --supports, seed and count), the
same scoring (HSNet's mIoU and FB-IoU, PerSAM's mIoU for PerSeg), the same JSON. PRED holds one
mask PNG per episode, PRED/<class>/<episode>.png, as bench fewshot writes OUT/pred (episode:
the query's file name without its suffix; PASCAL-5i and COCO-20i: NNNN_<query>, NNNN the
episode's number; --episodes of bench fewshot lists them): a palette PNG, where every non-zero
id but 255 is the class, or a binary grayscale PNG (0/255 or 0/1). Nothing is written.
"""


def _register_fewshot(targets: argparse._SubParsersAction) -> None:
    from samic_vos.commands.bench_fewshot import add_episode_flags

    fewshot = targets.add_parser(
        "fewshot",
        help="few-shot mIoU / FB-IoU of a prediction folder, as bench fewshot scores it",
        description=FEWSHOT_DESCRIPTION,
        epilog=(
            "example:\n  samic-vos eval fewshot runs/kvasir/pred --dataset kvasir --root Kvasir-SEG"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    fewshot.add_argument("pred_dir", type=Path, metavar="PRED", help="folder of predictions")
    add_episode_flags(fewshot.add_argument_group("data"))
    fewshot.add_argument("--json", action="store_true", help="print the scores as one JSON object")
    common.add_common(fewshot)
    fewshot.set_defaults(func=run_fewshot)


def run_fewshot(args: argparse.Namespace) -> int:
    from samic_vos.commands.bench_fewshot import check_episode_flags, format_scores
    from samic_vos.pipelines.bench_fewshot import EvalFewshotConfig, evaluate_predictions

    config = common.job_config(EvalFewshotConfig(), args)
    check_episode_flags(args, config, "eval fewshot")
    scores = evaluate_predictions(args.pred_dir, args.root, config)
    if args.json:
        common.stdout(json.dumps(scores, indent=1))
    else:
        common.stdout(format_scores(scores, label=f"{args.pred_dir}"))
    return 0


def run_davis(args: argparse.Namespace) -> int:
    from samic_vos.eval.davis_eval import (
        GLOBAL_COLUMNS,
        SEQUENCE_COLUMNS,
        DavisEvalConfig,
        evaluate_davis,
        write_csvs,
    )
    from samic_vos.runtime.heap import keep_freed_memory
    from samic_vos.runtime.output_paths import check_writable_dir

    config = common.job_config(DavisEvalConfig(), args)
    if args.csv_dir is not None:
        check_writable_dir(args.csv_dir)
    dataset = config.davis.open(args.davis_root)
    keep_freed_memory()  # this process scores small sets itself
    evaluation = evaluate_davis(args.results_dir, dataset, config.davis.sequences, config.workers)
    if args.csv_dir is not None:
        for path in write_csvs(evaluation, args.csv_dir):
            log.info("wrote %s", path)
    if args.json:
        print(json.dumps(evaluation.to_json(), indent=2))
        return 0
    split = evaluation.split
    values = [f"{evaluation.global_scores[c]:.6f}" for c in GLOBAL_COLUMNS]
    objects = [[o.name, f"{o.J.mean:.6f}", f"{o.F.mean:.6f}"] for o in evaluation.objects]
    print(f"{'-' * 27} Global results for {split} {'-' * 27}")
    print(format_table(GLOBAL_COLUMNS, [values]))
    print(f"\n{'-' * 10} Per sequence results for {split} {'-' * 10}")
    print(format_table(SEQUENCE_COLUMNS, objects))
    return 0
