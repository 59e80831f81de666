"""``samic-vos eval``: score results against a benchmark's ground truth.

``samic-vos eval davis RESULTS_DIR --davis-root ROOT`` gives the official DAVIS J&F numbers
(semi-supervised task) of a folder of result masks.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


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
    davis.add_argument("results_dir", metavar="RESULTS_DIR", help="folder of result masks")
    davis.add_argument(
        "--davis-root",
        required=True,
        metavar="ROOT",
        help="DAVIS folder holding JPEGImages/, Annotations/ and ImageSets/",
    )
    davis.add_argument(
        "--year",
        choices=("2016", "2017"),
        default="2017",
        help="2017: objects 1..K of the first frame (default); 2016: one object, masks "
        "binarised (value > 0 is the object)",
    )
    davis.add_argument(
        "--set", dest="split", default="val", help="ImageSets split to score (default: val)"
    )
    davis.add_argument("--resolution", default="480p", help="480p (default) or Full-Resolution")
    davis.add_argument(
        "--sequences", nargs="+", metavar="SEQ", help="score only these sequences of the split"
    )
    davis.add_argument(
        "--json",
        action="store_true",
        help='print one JSON object {"global": {...}, "per_object": {"<seq>_<id>": {"J", "F"}}}',
    )
    davis.add_argument(
        "--csv-dir",
        metavar="DIR",
        help="also write global_results-<set>.csv and per-sequence_results-<set>.csv here",
    )
    davis.add_argument(
        "--workers",
        type=_positive_int,
        metavar="N",
        help="processes scoring sequences in parallel (default: one per CPU)",
    )
    davis.set_defaults(func=run_davis)


def format_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Right-aligned columns, like pandas' ``to_string(index=False)`` in the toolkit."""
    widths = [max(len(row[i]) for row in (header, *rows)) for i in range(len(header))]
    return "\n".join(
        " ".join(c.rjust(w) for c, w in zip(row, widths, strict=True)) for row in (header, *rows)
    )


def run_davis(args: argparse.Namespace) -> int:
    from samic_vos.davis import DavisDataset
    from samic_vos.eval.davis_eval import (
        GLOBAL_COLUMNS,
        SEQUENCE_COLUMNS,
        evaluate_davis,
        write_csvs,
    )
    from samic_vos.output_paths import check_output_folder

    if args.csv_dir is not None:  # refused before scoring, not after
        check_output_folder(args.csv_dir)
    dataset = DavisDataset(args.davis_root, args.year, args.split, args.resolution)
    evaluation = evaluate_davis(args.results_dir, dataset, args.sequences, args.workers)
    if args.csv_dir is not None:
        for path in write_csvs(evaluation, args.csv_dir):
            print(f"samic-vos: wrote {path}", file=sys.stderr)
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
