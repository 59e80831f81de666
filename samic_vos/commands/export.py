"""`samic-vos export --format coco|yolo|labelme|voc SRC -o OUT`: masks in formats people load."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from samic_vos.commands import common

log = logging.getLogger(__name__)

DESCRIPTION = """\
Export the masks of a finished `segment` or `track` output folder (a track collection too), or
of a SAMBOX annotation folder, in a format other tools load:

  coco     OUT/coco.json: COCO instances with RLE masks (pycocotools), or polygons with
           --coco-masks polygons (one per part, holes filled; pycocotools draws the pixels
           back); SAM's score per object; video frames carry their video and frame_index
  yolo     OUT/labels/<name>.txt (YOLO-seg polygons through the boundary pixels' centres,
           normalised), OUT/images/ (the images) and OUT/data.yaml (train, val, names)
  labelme  OUT/<name>.json, one LabelMe file per image (polygons, group_id = the object;
           a video file's frames beside them as <name>.png)
  voc      OUT/JPEGImages/ (the images as .jpg), SegmentationClass/, SegmentationObject/
           (palette PNGs), Annotations/ (XML boxes), ImageSets/Segmentation/trainval.txt,
           labelmap.txt

Images are copied as they are (VOC's non-JPEG ones encoded as JPEG); a video file's frames
are decoded where the video is still in place and unchanged; images no longer there are named
in one warning, their labels written all the same.

Categories: segment's reference classes ("class k"), track's objects ("object k"), SAMBOX's
labels. Video frames are named <video>__<frame>. Every file is written whole (atomically).
An OUT that holds a yolo, labelme or voc export of other images is refused (the two would mix);
the same images are exported again in place.
"""

EPILOG = """\
examples:
  samic-vos export --format coco runs/photos -o runs/photos
  samic-vos export --format coco --coco-masks polygons frames_sambox/ -o exports/coco
  samic-vos export --format yolo runs/videos -o exports/videos-yolo
  samic-vos export --format labelme frames_sambox/ -o exports/labelme
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    from samic_vos.data.exports import COCO_MASKS, EXPORT_FORMATS

    parser = subparsers.add_parser(
        "export",
        help="export masks of segment/track outputs or SAMBOX folders (COCO, YOLO, LabelMe, VOC)",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("source", type=Path, metavar="SRC", help="output or SAMBOX folder")
    parser.add_argument(
        "--format", choices=EXPORT_FORMATS, required=True, help="the format to write"
    )
    parser.add_argument(
        "--coco-masks",
        choices=COCO_MASKS,
        help="with --format coco: masks as compressed RLE (default) or polygons",
    )
    common.add_out(parser, "the folder to write into", required=True)
    common.add_common(parser, config=False)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from samic_vos.data.exports.sources import open_source
    from samic_vos.data.exports.writers import check_no_other_export, write_export
    from samic_vos.runtime.errors import UserError
    from samic_vos.runtime.output_paths import check_writable_dir, removing_new_folders

    if args.coco_masks is not None and args.format != "coco":
        raise UserError(f"--coco-masks is for --format coco, not {args.format}; leave it out")
    source = open_source(args.source)  # checked before anything is written
    check_writable_dir(args.out)
    check_no_other_export(source, args.format, args.out)
    with removing_new_folders(args.out):
        args.out.mkdir(parents=True, exist_ok=True)
        written = write_export(source, args.format, args.out, args.coco_masks or "rle")
    log.info("wrote %s", written)
    return 0
