"""``samic-vos render VIDEO MASKS_DIR -o out.mp4``: an overlay video of masks over frames."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from samic_vos.commands import common
from samic_vos.data.names import DEFAULT_FOLDER_FPS

log = logging.getLogger(__name__)

DESCRIPTION = """\
Draw masks (DAVIS palette PNGs, one <frame name>.png per frame, as `samic-vos track` writes
them) over the frames of VIDEO and write an H.264 (yuv420p) mp4 that plays in a browser.
Each object is coloured with its palette colour, blended with weight --alpha and outlined;
--points also draws the prompt points of a track run's prompts.jsonl. VIDEO is a video file
or a folder of JPEG/PNG frames; video frames are named 00000, 00001, ... and folder frames
keep their file names. A frame without a mask, or a mask of the wrong size, is an error.
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "render",
        help="write an overlay video (H.264 mp4) of masks over a video or frame folder",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("video", type=Path, metavar="VIDEO", help="video file or frame folder")
    parser.add_argument(
        "masks_dir", type=Path, metavar="MASKS_DIR", help="folder of <frame name>.png masks"
    )
    common.add_out(parser, "the video to write (.mp4)", required=True)
    parser.add_argument(
        "--points", type=Path, metavar="PROMPTS.jsonl", help="draw the prompt points of a track run"
    )
    common.config_flag(
        parser, "--alpha", key="overlay.alpha", metavar="A", help="weight of the colours, 0..1"
    )
    common.config_flag(
        parser, "--outline", key="overlay.outline", metavar="PX", help="outline width, 0: none"
    )
    common.config_flag(
        parser,
        "--fps",
        key="fps",
        metavar="FPS",
        help=f"frame rate of the output (default: the video's; {DEFAULT_FOLDER_FPS:g} for folders)",
    )
    common.add_backend(parser)
    common.add_common(parser)
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from samic_vos.data.frame_source import open_frames
    from samic_vos.reports.render import RenderConfig, render_video
    from samic_vos.runtime.errors import UserError

    config = common.job_config(RenderConfig(), args)
    with open_frames(args.video, backend=config.backend, fps=config.fps) as frames:
        if args.out.resolve() == frames.path.resolve():
            raise UserError(f"{args.out}: is the input video; choose another output name")
        count = render_video(
            frames,
            args.masks_dir,
            args.out,
            alpha=config.overlay.alpha,
            outline=config.overlay.outline,
            points_jsonl=args.points,
        )
    log.info("wrote %s (%d frames)", args.out, count)
    return 0
