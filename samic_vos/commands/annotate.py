"""`samic-vos annotate IMAGES_DIR [-o ANNOTATIONS_DIR]`: SAMBOX, the annotation tool."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from samic_vos.errors import UserError

DESCRIPTION = """\
SAMBOX: a local web page where you click points on each image and see SAM's mask and its
confidence (SAM's predicted IoU) at once. Left click: positive point; right click or
Shift+click: negative point; drag: box; N: new instance; C: new object; Ctrl+Z: undo;
S: save; A/D: previous/next image; ?: every key.

IMAGES_DIR holds the images (JPEG, PNG, BMP, TIFF). Saved in ANNOTATIONS_DIR (default:
IMAGES_DIR): <image>.sambox.json (prompts, SAMBOX format version 2, see docs/sambox_format.md)
and masks/<image>.png (palette PNG, pixel = object id); .sambox/ keeps the sessions (every
click and the undo history) and SAM's image embeddings. The server listens on 127.0.0.1 only.
Train SAMIC on the result with `samic-vos train --sambox ANNOTATIONS_DIR`.
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "annotate",
        help="SAMBOX: click point prompts on images, see SAM's mask live, save them",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("images", type=Path, metavar="IMAGES_DIR", help="folder of images")
    parser.add_argument(
        "-o",
        "--out",
        type=Path,
        metavar="ANNOTATIONS_DIR",
        help="annotations (default: IMAGES_DIR)",
    )
    parser.add_argument(
        "--import-masks",
        type=Path,
        metavar="DIR",
        help="masks <image name>.png turned into point prompts for images not yet annotated",
    )
    parser.add_argument(
        "--sam-model", choices=("vit_b", "vit_l", "vit_h"), help="SAM model (default vit_b)"
    )
    parser.add_argument("--sam-checkpoint", type=Path, help="local SAM checkpoint file")
    parser.add_argument("--device", help="auto | cuda | cuda:N | mps | cpu (default auto)")
    parser.add_argument("--port", type=int, help="port on 127.0.0.1 (default 8765)")
    parser.add_argument("--no-browser", action="store_true", help="do not open a browser")
    parser.add_argument("--config", type=Path, metavar="YAML", help="settings overriding defaults")
    verbosity = parser.add_mutually_exclusive_group()
    verbosity.add_argument("-v", "--verbose", action="store_true", help="say more")
    verbosity.add_argument("-q", "--quiet", action="store_true", help="errors only")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from samic_vos.annotate.image_folder import list_images
    from samic_vos.annotate.server import (
        AnnotateConfig,
        check_port_free,
        create_app,
        serve,
    )
    from samic_vos.config import apply_overrides, load_config

    level = logging.DEBUG if args.verbose else logging.ERROR if args.quiet else logging.INFO
    logging.basicConfig(format="samic-vos: %(message)s")
    logging.getLogger("samic_vos").setLevel(level)
    config = load_config(AnnotateConfig(), args.config)
    flags = {k: getattr(args, k) for k in ("sam_model", "device", "port")}
    config = apply_overrides(config, {k: v for k, v in flags.items() if v is not None}, "flags")
    # Input checks first: nothing is loaded or written before they pass.
    list_images(args.images)
    if args.import_masks is not None and not args.import_masks.is_dir():
        raise UserError(f"{args.import_masks}: --import-masks folder not found")
    out = args.out or args.images
    if out.exists() and not out.is_dir():
        raise UserError(f"{out}: is a file; pass a folder with -o")
    check_port_free(config.port)

    from samic_vos.devices import select_device
    from samic_vos.sam_models import load_sam
    from samic_vos.segmenter import SamSegmenter

    device = select_device(config.device)
    sam = load_sam(config.sam_model, args.sam_checkpoint, device)
    app = create_app(args.images, out, SamSegmenter(sam, device), args.import_masks)
    url = f"http://127.0.0.1:{config.port}/"
    print(f"SAMBOX: {url} (annotations in {out}; Ctrl+C stops)", flush=True)
    if not args.no_browser:
        import webbrowser

        webbrowser.open(url)
    serve(app, config.port)
    return 0
