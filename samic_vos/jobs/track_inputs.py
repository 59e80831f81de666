"""What `samic-vos track` is given (paths and switches) and the checks of it that need neither
decoding nor torch, so that a mistake is reported before the models are imported."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from samic_vos.data.names import VIDEO_INPUT
from samic_vos.data.video_writer import check_video_path
from samic_vos.runtime.errors import UserError
from samic_vos.runtime.input_paths import require_input
from samic_vos.runtime.output_paths import check_writable_dir


@dataclass
class TrackInputs:
    """Paths and switches given on the command line (None: not given)."""

    video: Path
    out_dir: Path
    first_mask: Path | None = None
    masks_dir: Path | None = None  # masks named like frames: objects added or restarted there
    overlay: Path | None = None
    samic_checkpoint: Path | None = None
    sam_checkpoint: Path | None = None
    backbone_weights: Path | None = None
    force: bool = False  # redo a finished run, or replace another run in out_dir
    format: str = "png"  # png | coco (also OUT/coco.json)


def check_inputs(inputs: TrackInputs) -> None:
    """The checks that need no decoding (nor torch): files exist, flags agree, outputs are
    writable. :func:`~samic_vos.pipelines.track.run_track` runs them first; the command runs them
    before it imports the models."""
    if inputs.first_mask is None and inputs.masks_dir is None:
        raise UserError("no mask given: pass `first_mask` (frame 0) and/or `masks_dir`")
    require_input(inputs.video, VIDEO_INPUT, kind="any")
    require_input(inputs.first_mask, "mask file", detail=" (`first_mask`)")
    require_input(inputs.samic_checkpoint, "SAMIC checkpoint", detail=" (`samic_checkpoint`)")
    check_writable_dir(inputs.out_dir)
    check_writable_dir(inputs.out_dir / "masks")
    if inputs.overlay is not None:
        check_video_path(inputs.overlay, made=inputs.out_dir)  # OUT is made before it
