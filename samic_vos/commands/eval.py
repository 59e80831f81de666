"""``samic-vos eval``: score results against a benchmark's ground truth.

``samic-vos eval davis RESULTS_DIR --davis-root ROOT`` gives the official DAVIS J&F numbers
(semi-supervised task) of a folder of result masks.
"""

from __future__ import annotations

import argparse
import json
import logging
from collections.abc import Sequence
from pathlib import Path

from samic_vos.commands import common

log = logging.getLogger(__name__)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "eval",
        help="score results against a benchmark's ground truth (DAVIS J&F)",
        description="Score results against a benchmark's ground truth.",
    )
    parser.set_defaults(func=lambda args: parser.print_help() or 2)
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


def format_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Right-aligned columns, like pandas' ``to_string(index=False)`` in the toolkit."""
    widths = [max(len(row[i]) for row in (header, *rows)) for i in range(len(header))]
    return "\n".join(
        " ".join(c.rjust(w) for c, w in zip(row, widths, strict=True)) for row in (header, *rows)
    )


def run_davis(args: argparse.Namespace) -> int:
    from samic_vos.eval.davis_eval import (
        GLOBAL_COLUMNS,
        SEQUENCE_COLUMNS,
        DavisEvalConfig,
        evaluate_davis,
        write_csvs,
    )
    from samic_vos.runtime.output_paths import check_writable_dir

    config = common.job_config(DavisEvalConfig(), args)
    if args.csv_dir is not None:
        check_writable_dir(args.csv_dir)
    dataset = config.davis.open(args.davis_root)
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
