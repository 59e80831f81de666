"""``samic-vos data list | download NAME | prepare NAME``: benchmark datasets, downloaded,
checked and prepared."""

from __future__ import annotations

import argparse
from pathlib import Path

from samic_vos.commands import common

DESCRIPTION = """\
Benchmark datasets from their official archives. `download` fetches the archive into
$SAMIC_VOS_HOME/downloads (resumable: run it again after a cut), verifies it (size and SHA-256
where published), unpacks it atomically into its folder under ROOT (default ROOT:
$SAMIC_VOS_HOME/datasets; DAVIS: ROOT/NAME, VOC2012, SBD, COCO2014/..., Kvasir-SEG), checks
the tree, and prints the dataset's folder. `prepare pascal5i` builds VOC2012/SegmentationClassAug
from VOC2012 and SBD; `prepare coco20i` builds COCO-20i's label maps from COCO's instances JSON.
Archives only on Google Drive or OneDrive (HSNet's copies, FSS-1000, PerSeg, NWPU VHR-10) are
not downloaded: docs/fewshot_datasets.md says where to put them.
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "data",
        help="download, check and prepare benchmark datasets",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    actions = parser.add_subparsers(dest="data_action", metavar="ACTION")
    common.needs_action(parser)

    listing = actions.add_parser("list", help="the known datasets and where they are installed")
    _add_root(listing)
    common.add_common(listing, config=False)
    listing.set_defaults(func=_list)

    fetch = actions.add_parser(
        "download",
        help="download, unpack and check a dataset; prints its folder",
        description="Download NAME's archive (resuming a partial download), verify its size and "
        "SHA-256 where published, unpack it atomically into its folder under ROOT (`samic-vos "
        "data list --root ROOT` names it: DAVIS ROOT/NAME, VOC2012, SBD, COCO2014/..., "
        "Kvasir-SEG), check its tree (DAVIS: every sequence of its ImageSets lists), and print "
        "the folder. A complete folder already there is only checked.",
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

    from samic_vos.data.names import PREPARED_KINDS

    prepare = actions.add_parser(
        "prepare",
        help="build the masks a benchmark reads from downloaded archives; prints the folders",
        description="pascal5i: ROOT/VOC2012/SegmentationClassAug from ROOT/VOC2012 and ROOT/SBD; "
        "coco20i: ROOT/COCO2014/annotations/{val,train}2014/*.png from COCO's instances JSON. "
        "Resumable (a rerun keeps the masks written); the folder appears complete or not at all.",
    )
    prepare.add_argument(
        "name", metavar="NAME", choices=PREPARED_KINDS, help=" | ".join(PREPARED_KINDS)
    )
    _add_root(prepare)
    common.add_common(prepare, config=False)
    prepare.set_defaults(func=_prepare)


def _add_root(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--root",
        type=Path,
        metavar="DIR",
        help="folder holding the datasets (default: $SAMIC_VOS_HOME/datasets)",
    )


def _list(args: argparse.Namespace) -> int:
    from samic_vos.hub.datasets import ARCHIVES, dataset_dir, require_root

    if args.root is not None:  # the default folder may not exist yet: nothing installed
        require_root(args.root)
    for entry in ARCHIVES.values():
        folder = dataset_dir(entry.name, args.root)
        where = str(folder) if folder.is_dir() else "not installed"
        common.stdout(f"{entry.name}  {where}\n    {entry.description}")
    return 0


def _download(args: argparse.Namespace) -> int:
    from samic_vos.hub.datasets import ensure_dataset

    common.stdout(str(ensure_dataset(args.name, args.root, keep_archive=args.keep_archive)))
    return 0


def _prepare(args: argparse.Namespace) -> int:
    from samic_vos.hub.datasets import default_root
    from samic_vos.hub.prepare import prepare_dataset

    for folder in prepare_dataset(args.name, args.root or default_root()):
        common.stdout(str(folder))
    return 0
