"""``samic-vos data list | download NAME``: benchmark datasets, downloaded and checked."""

from __future__ import annotations

import argparse
from pathlib import Path

from samic_vos.commands import common

DESCRIPTION = """\
Benchmark datasets from their official archives. `download` fetches the archive into
$SAMIC_VOS_HOME/downloads (resumable: run it again after a cut), verifies it, unpacks it
atomically into ROOT/NAME (default ROOT: $SAMIC_VOS_HOME/datasets), checks that every listed
sequence has frames and annotations, and prints the dataset's folder: pass it as --davis-root.
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "data",
        help="download and check benchmark datasets (DAVIS)",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    actions = parser.add_subparsers(dest="data_action", metavar="ACTION")
    parser.set_defaults(func=lambda args: _usage(parser))

    listing = actions.add_parser("list", help="the known datasets and where they are installed")
    _add_root(listing)
    common.add_common(listing, config=False)
    listing.set_defaults(func=_list)

    fetch = actions.add_parser(
        "download",
        help="download, unpack and check a dataset; prints its folder",
        description="Download NAME's archive (resuming a partial download), verify its size and "
        "SHA-256 where published, unpack it atomically into ROOT/NAME, check every sequence of "
        "its ImageSets lists, and print ROOT/NAME. A complete folder already there is only "
        "checked.",
    )
    fetch.add_argument("name", metavar="NAME", help="dataset name, see `samic-vos data list`")
    _add_root(fetch)
    fetch.add_argument(
        "--keep-archive",
        action="store_true",
        help="keep the downloaded archive (default: deleted once the dataset is unpacked)",
    )
    common.add_common(fetch, config=False)
    fetch.set_defaults(func=_download)


def _add_root(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--root",
        type=Path,
        metavar="DIR",
        help="folder holding the datasets (default: $SAMIC_VOS_HOME/datasets)",
    )


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return 2


def _list(args: argparse.Namespace) -> int:
    from samic_vos.hub.datasets import ARCHIVES, dataset_dir

    for entry in ARCHIVES.values():
        folder = dataset_dir(entry.name, args.root)
        where = str(folder) if folder.is_dir() else "not installed"
        common.stdout(f"{entry.name}  {where}\n    {entry.description}")
    return 0


def _download(args: argparse.Namespace) -> int:
    from samic_vos.hub.datasets import ensure_dataset

    common.stdout(str(ensure_dataset(args.name, args.root, keep_archive=args.keep_archive)))
    return 0
