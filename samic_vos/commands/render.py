"""``samic-vos render VIDEO MASKS_DIR -o out.mp4``: an overlay video of masks over frames."""

from __future__ import annotations

import argparse
from pathlib import Path

DESCRIPTION = """\
Draw masks (DAVIS palette PNGs, one <frame name>.png per frame, as `samic-vos track` writes
them) over the frames of VIDEO and write an H.264 (yuv420p) mp4 that plays in a browser.
Each object is coloured with its palette colour, blended with weight --alpha and outlined;
--points also draws the prompt points of a track run's prompts.jsonl. VIDEO is a video file
or a folder of JPEG/PNG frames; video frames are named 00000, 00001, ... and folder frames
keep their file names. A frame without a mask, or a mask of the wrong size, is an error.
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    from samic_vos.frame_source import BACKENDS, DEFAULT_FOLDER_FPS

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
    parser.add_argument(
        "-o", "--output", type=Path, required=True, metavar="OUT.mp4", help="the video to write"
    )
    parser.add_argument(
        "--alpha", type=float, default=0.5, help="weight of the object colours, 0..1 (0.5)"
    )
    parser.add_argument(
        "--outline", type=int, default=2, help="outline width in pixels, 0 for none (2)"
    )
    parser.add_argument(
        "--points", type=Path, metavar="PROMPTS.jsonl", help="draw the prompt points of a track run"
    )
    parser.add_argument(
        "--backend",
        choices=BACKENDS,
        default="auto",
        help="frame decoder (auto: decord, else PyAV)",
    )
    parser.add_argument(
        "--fps",
        type=float,
        help=f"frame rate of the output (default: the video's; {DEFAULT_FOLDER_FPS:g} for folders)",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from samic_vos.errors import UserError
    from samic_vos.frame_source import open_frames
    from samic_vos.render import render_video

    with open_frames(args.video, backend=args.backend, fps=args.fps) as frames:
        if args.output.resolve() == frames.path.resolve():
            raise UserError(f"{args.output}: is the input video; choose another output name")
        count = render_video(
            frames,
            args.masks_dir,
            args.output,
            alpha=args.alpha,
            outline=args.outline,
            points_jsonl=args.points,
            progress=not args.quiet,
        )
    print(f"wrote {args.output} ({count} frames)")
    return 0
