"""`samic-vos annotate IMAGES_DIR [-o ANNOTATIONS_DIR]`: SAMBOX, the annotation tool."""

from __future__ import annotations

import argparse
import dataclasses
import signal
from pathlib import Path

from samic_vos.commands import common
from samic_vos.runtime.errors import UserError

DESCRIPTION = """\
SAMBOX: a local web page where you click points on each image and see SAM's mask and its
confidence (SAM's predicted IoU) at once. Left click: positive point; right click or
Shift+click: negative point; drag: box; Alt+click: delete a point; N: new instance;
C: new object; 1-9: class (--classes); B / X: brush / eraser on the object's mask (the
prompts stay as clicked; the saved mask is the corrected one); Ctrl+Z: undo; S: save;
E: nothing here; A/D: previous/next image; ?: every key.

IMAGES_DIR holds the images (JPEG, PNG, BMP, TIFF). Saved in ANNOTATIONS_DIR (default:
IMAGES_DIR): <image>.sambox.json (prompts, SAMBOX format version 2, 3 with brush edits; see
docs/sambox_format.md) and masks/<image>.<hash>.png (palette PNG, pixel = object id; the JSON
names it); .sambox/ keeps the sessions (every click and the undo history) and SAM's image
embeddings. Only images you worked on are saved; E marks an image "done, nothing here". The
page's export button writes every saved image as COCO, YOLO-seg, LabelMe or VOC into
ANNOTATIONS_DIR/exports/ (the writers of `samic-vos export`).

The server listens on 127.0.0.1 only and answers only the page opened with the URL it prints,
http://127.0.0.1:PORT/?token=... (a new secret token at every start; the browser keeps it in a
cookie; the browser is started on ANNOTATIONS_DIR/.sambox/open.html, a page of yours only that
moves on to it). One server per ANNOTATIONS_DIR: a second one is refused.
Train SAMIC on the result with `samic-vos train --sambox ANNOTATIONS_DIR`.

SAMIC suggests the prompts (--samic CKPT, a trained network; or --suggest, a fresh network
adapted in the background on the images saved so far, again after each save): G or the
"suggest" button places its points on the image, Enter accepts them (one undoable step), Esc
drops them; "auto" suggests on every image not yet annotated. The page shows SAMIC's progress
and the clicks per image with and without suggestions.
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    from samic_vos.annotate import IMPORT_AS

    parser = subparsers.add_parser(
        "annotate",
        help="SAMBOX: click point prompts on images, see SAM's mask live, save them",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("images", type=Path, metavar="IMAGES_DIR", help="folder of images")
    common.add_out(parser, "folder of the annotations (default: IMAGES_DIR)")
    parser.add_argument(
        "--import-masks",
        type=Path,
        metavar="DIR",
        help="masks <image name>.png for images not yet annotated (see --import-as)",
    )
    parser.add_argument(
        "--import-as",
        choices=IMPORT_AS,
        help="what --import-masks makes of a mask: point prompts for SAM (clicks, the "
        "default) or the objects' masks themselves (masks: no prompts, brush to fix them)",
    )
    common.add_models(parser)
    common.config_flag(
        parser,
        "--suggest",
        key="suggest",
        switch=True,
        help="SAMIC suggests the prompts, adapted on the saved annotations (on with --samic)",
    )
    common.add_device(parser)
    common.add_encoder(parser)
    common.config_flag(
        parser, "--port", key="port", metavar="PORT", help="port on 127.0.0.1 (default 8765)"
    )
    common.config_flag(
        parser,
        "--classes",
        key="classes",
        nargs="+",
        metavar="NAME[=#RRGGBB]",
        help="the class list of the page (number keys 1-9 label an object)",
    )
    parser.add_argument(
        "--classes-file",
        type=Path,
        metavar="FILE",
        help="the class list from a labels file: one NAME[=#RRGGBB] per line",
    )
    parser.add_argument("--no-browser", action="store_true", help="do not open a browser")
    common.add_common(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from samic_vos.annotate.access import new_token
    from samic_vos.annotate.classes import parse_classes, read_classes_file
    from samic_vos.annotate.folder_lock import check_folder_free
    from samic_vos.annotate.image_folder import list_images
    from samic_vos.annotate.server import (
        AnnotateConfig,
        check_port_free,
        create_app,
        page_url,
        serve,
        write_opener,
    )
    from samic_vos.commands.cli import Terminated
    from samic_vos.runtime.input_paths import require_input
    from samic_vos.runtime.output_paths import check_writable_dir

    config = common.job_config(AnnotateConfig(), args)
    if args.classes_file is not None:
        if config.classes:
            raise UserError("give the classes with --classes or --classes-file, not both")
        entries = read_classes_file(args.classes_file)
        parse_classes(entries, str(args.classes_file))  # errors name the file
        config = dataclasses.replace(config, classes=entries)
    # Input checks first: nothing is loaded or written before they pass.
    suggesting = config.suggest or args.samic is not None
    if args.backbone_weights is not None and not suggesting:
        raise UserError("--backbone-weights is ignored without --suggest or --samic: drop it")
    list_images(args.images)
    if args.import_masks is not None and not args.import_masks.is_dir():
        raise UserError(f"{args.import_masks}: --import-masks folder not found")
    if args.import_as is not None and args.import_masks is None:
        raise UserError("--import-as says how to import --import-masks DIR: pass that folder too")
    out = args.out or args.images
    if out.exists() and not out.is_dir():
        raise UserError(f"{out}: is a file; pass a folder with -o")
    # Annotations are saved into `out` (the image folder by default): it must take them.
    check_writable_dir(out, fix="pass a writable folder with -o")
    check_folder_free(out)
    check_port_free(config.port)
    require_input(args.samic, "SAMIC checkpoint", detail=" (`samic_checkpoint`)")
    require_input(args.backbone_weights, "ResNet-50 weights", detail=" (--backbone-weights)")

    from samic_vos.annotate.suggest import SuggestSetup
    from samic_vos.api.models import load_models, load_segmenter
    from samic_vos.runtime.stage_threads import STAGES, StageThreads, ThreadsConfig

    suggest = None
    if suggesting:
        # A person waits on each decode: every stage takes the process's threads, but the
        # adaptation, which runs beside the clicks in a thread of its own.
        threads = ThreadsConfig(**{**dict.fromkeys(STAGES, "all"), "adaptation": 1})
        models = load_models(
            config.sam_model,
            sam_checkpoint=args.sam_checkpoint,
            samic=args.samic,
            backbone_weights=args.backbone_weights,
            device=config.device,
            encoder=config.encoder,
            threads=threads,
            network=config.network,
        )
        segmenter = models.segmenter
        suggest = SuggestSetup(models, config.tracker, config.adaptation, config.suggest_references)
    else:
        segmenter = load_segmenter(
            config.sam_model,
            args.sam_checkpoint,
            device=config.device,
            encoder=config.encoder,
            threads=StageThreads.interactive(),
        )
    token = new_token()
    classes = parse_classes(config.classes)
    import_as = args.import_as or "clicks"
    app = create_app(
        args.images, out, segmenter, args.import_masks, token, classes, import_as, suggest
    )
    url = page_url(config.port, token)
    common.stdout(f"SAMBOX: {url} (annotations in {out}; Ctrl+C stops)")
    opener = None
    if not args.no_browser:
        import webbrowser

        opener = write_opener(out, url)  # the browser's command line names it, not the token
        webbrowser.open(opener.as_uri())
    try:
        stopped_by = serve(app, config.port)
    finally:
        if opener is not None:
            opener.unlink(missing_ok=True)
    if stopped_by == signal.SIGTERM:
        raise Terminated
    if stopped_by is not None:
        raise KeyboardInterrupt
    return 0
