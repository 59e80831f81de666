"""``samic-vos weights list | download NAME... | path NAME``: the model weights cache."""

from __future__ import annotations

import argparse

from samic_vos.commands import common

DESCRIPTION = """\
Official checkpoints the tool loads (SAM, SAM 2.1, HQ-SAM, MedSAM, the ResNet-50 backbone), kept
in a cache folder: $SAMIC_VOS_HOME/weights, else $XDG_CACHE_HOME/samic-vos/weights or
~/.cache/samic-vos/weights. Commands that need SAM's or ResNet-50's checkpoint download it on
first use; `download` fetches it ahead of time (resumable, SHA-256 verified). SAM 2.1, HQ-SAM
and MedSAM publish no SHA-256: they are listed with their URLs but not downloaded; copy the file
into the cache or pass it with --sam-checkpoint. Offline, download the file yourself and pass it
with the command's flag (--sam-checkpoint, --backbone-weights).
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "weights",
        help="list, download and locate model weights (SAM and its families, ResNet-50)",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    actions = parser.add_subparsers(dest="weights_action", metavar="ACTION")
    common.needs_action(parser)

    listing = actions.add_parser(
        "list", help="the known weights, their size and whether they are cached"
    )
    common.add_common(listing, config=False)
    listing.set_defaults(func=_list)

    fetch = actions.add_parser(
        "download",
        help="download weights into the cache (progress on stderr; prints the paths)",
        description="Download into the cache, resuming a partial download, and verify the "
        "SHA-256. Prints each file's path. A verified cached copy is not downloaded again.",
    )
    fetch.add_argument(
        "names",
        nargs="+",
        metavar="NAME",
        help="registry name(s), see `list`, or --sam-model name(s) (vit_b ...)",
    )
    fetch.add_argument(
        "--force", action="store_true", help="discard the cached copy and download it again"
    )
    common.add_common(fetch, config=False)
    fetch.set_defaults(func=_download)

    where = actions.add_parser(
        "path",
        help="print the cached file's path (exit status 2 when it is not cached)",
        description="Print the path of NAME's verified file in the cache; nothing is "
        "downloaded. Exit status 2 when it is not cached.",
    )
    where.add_argument(
        "name", metavar="NAME", help="registry name, see `list`, or a --sam-model name (vit_b ...)"
    )
    common.add_common(where, config=False)
    where.set_defaults(func=_path)


def _size(n_bytes: int | None) -> str:
    if n_bytes is None:
        return "?"
    if n_bytes >= 1 << 30:
        return f"{n_bytes / (1 << 30):.1f} GiB"
    return f"{n_bytes / (1 << 20):.0f} MiB"


def _list(args: argparse.Namespace) -> int:
    from samic_vos.hub.weights import REGISTRY, cache_dir, cache_state

    header = ("NAME", "FILE", "SIZE", "CACHED", "DESCRIPTION")
    rows = [header] + [
        (e.name, e.filename, _size(e.size), cache_state(e.name), e.description)
        for e in REGISTRY.values()
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(len(header) - 1)]
    for row in rows:
        cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=False)]
        print("  ".join([*cells, row[-1]]))
    by_hand = [e for e in REGISTRY.values() if e.sha256 is None]
    if by_hand:  # never downloaded by us (unverifiable): where the user gets them
        print(
            "\nno published SHA-256, so never downloaded: download by hand into the cache "
            "folder, or pass the file with --sam-checkpoint"
        )
        width = max(len(e.name) for e in by_hand)
        for e in by_hand:
            print(f"{e.name.ljust(width)}  {e.url}")
    print(f"\ncache folder: {cache_dir()}")
    return 0


def registry_name(name: str) -> str:
    """``name`` as the weights registry names it: a registry name as is, a ``--sam-model``
    name (``vit_b``, ``sam2.1_hiera_tiny``, ``hq_vit_b`` ...) as the entry of its weights."""
    from samic_vos.sam.names import SAM_MODELS

    model = SAM_MODELS.get(name)
    return model.weights if model is not None and model.weights is not None else name


def _download(args: argparse.Namespace) -> int:
    from samic_vos.hub.weights import download, get_entry

    names = [registry_name(name) for name in args.names]
    for name in names:  # check every name before the first (long) download
        get_entry(name)
    for name in names:
        print(download(name, force=args.force), flush=True)
    return 0


def _path(args: argparse.Namespace) -> int:
    from samic_vos.hub.weights import resolve

    print(resolve(registry_name(args.name), flag=None, download=False))
    return 0
