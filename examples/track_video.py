"""Track the objects of a first-frame mask through a video with samic-vos's Python API.

    python examples/track_video.py VIDEO --first-mask MASK.png -o OUT [--samic SAMIC.pt]

VIDEO is a video file or a folder of frames. Writes OUT/<frame>.png (DAVIS palette, named as
`samic-vos track` names them) and prints each frame's prompt points, (x, y) pixels. Without
--samic, SAMIC is adapted on the first frame (on ResNet-50's weights from the cache, or
--backbone-weights FILE) and saved as OUT/samic_adapted.pt.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import samic_vos


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("video", type=Path, help="video file or folder of frames")
    parser.add_argument("--first-mask", type=Path, required=True, help="mask PNG of frame 0")
    parser.add_argument("-o", "--out", type=Path, required=True, help="output folder")
    parser.add_argument(
        "--sam-model",
        help="segmenter, as samic-vos --sam-model: vit_b ... (default: the checkpoint's)",
    )
    parser.add_argument("--sam-checkpoint", type=Path, help="SAM weights (default: the cache)")
    parser.add_argument("--samic", type=Path, help="trained SAMIC checkpoint")
    parser.add_argument(
        "--backbone-weights", type=Path, help="ResNet-50 weights, without --samic (default: cache)"
    )
    parser.add_argument("--device", default="auto", help="auto, cuda, cuda:N, mps or cpu")
    parser.add_argument("--precision", help="SAM encoder: auto, fp32, bf16 or fp16")
    args = parser.parse_args(argv)
    try:
        with samic_vos.open_frames(args.video) as frames:  # the frame names, checked first
            names = frames.names
        tracker = samic_vos.VideoTracker.load(
            args.sam_model,
            sam_checkpoint=args.sam_checkpoint,
            samic=args.samic,
            backbone_weights=args.backbone_weights,
            device=args.device,
            precision=args.precision,
            adaptation_dir=args.out,
            progress=True,
        )
        args.out.mkdir(parents=True, exist_ok=True)
        for index, ids, prompts in tracker.track(args.video, args.first_mask):
            samic_vos.write_mask(args.out / f"{names[index]}.png", ids)
            points = {k: found.points.round(1).tolist() for k, found in prompts.items()}
            print(names[index], points)
    except (samic_vos.UserError, ValueError) as err:
        parser.exit(2, f"error: {err}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
