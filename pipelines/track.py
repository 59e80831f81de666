"""`samic-vos track`: segment the objects of a first-frame mask through a video, causally.

Composition: frame source → :class:`~samic_vos.tracker.CausalTracker` (SAMIC + SAM) → palette
PNGs, ``prompts.jsonl`` and an optional overlay video, all written as frames are produced.

Outputs in ``OUT``:
- ``masks/<frame name>.png``: DAVIS palette PNGs, object ids as in the first mask;
- ``prompts.jsonl``: one line per frame, ``{"frame": name, "objects": {"<id>": {"points":
  [[x, y], ...], "scores": [...], "confidence": c}}}``;
- ``config.yaml``: the resolved configuration; ``samic_adapted.pt`` when SAMIC was adapted
  on the first frame.
Every file is complete: masks are written atomically, one prompts line per finished frame, and
the overlay appears only once the video is finished.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from samic_vos import __version__
from samic_vos.atomic import JsonLinesWriter
from samic_vos.config import save_config
from samic_vos.errors import UserError
from samic_vos.first_frame_adaptation import AdaptationConfig
from samic_vos.frame_source import FrameSource, open_frames
from samic_vos.mask_io import object_ids, read_mask, write_mask
from samic_vos.output_paths import check_output_file, check_output_folder
from samic_vos.render import overlay
from samic_vos.samic_net import SamicNet, SamicNetConfig
from samic_vos.tracker import CausalTracker, FrameResult, TrackerConfig
from samic_vos.video_writer import VideoWriter

log = logging.getLogger(__name__)


@dataclass
class TrackConfig:
    """Everything `samic-vos track` can be told (defaults; a YAML file only overrides)."""

    sam_model: str = "vit_b"  # vit_b | vit_l | vit_h (the official checkpoints)
    device: str = "auto"  # auto | cuda | mps | cpu
    backend: str = "auto"  # frame decoding: auto | decord | pyav | folder
    overlay_alpha: float = 0.5
    tracker: TrackerConfig = field(default_factory=TrackerConfig)
    # Used only without --samic: the network built fresh and adapted on frame 0.
    network: SamicNetConfig = field(default_factory=SamicNetConfig)
    adaptation: AdaptationConfig = field(default_factory=AdaptationConfig)


@dataclass
class TrackInputs:
    """Paths given on the command line (None: not given)."""

    video: Path
    first_mask: Path
    out_dir: Path
    overlay: Path | None = None
    samic_checkpoint: Path | None = None
    sam_checkpoint: Path | None = None
    backbone_weights: Path | None = None
    random_backbone: bool = False


def check_inputs(inputs: TrackInputs, config: TrackConfig) -> tuple[FrameSource, np.ndarray]:
    """Validate everything before any output is made; returns the opened frames and first mask.

    Raises :class:`UserError` with the fix for each user mistake.
    """
    frames = open_frames(inputs.video, backend=config.backend)
    try:
        first_mask = read_mask(inputs.first_mask)
        if first_mask.shape != frames.size:
            raise UserError(
                f"{inputs.first_mask}: mask is {first_mask.shape[1]}x{first_mask.shape[0]} but the "
                f"video frames are {frames.size[1]}x{frames.size[0]}; pass the mask of frame 0"
            )
        if not object_ids(first_mask):
            raise UserError(f"{inputs.first_mask}: the first mask has no object (only background)")
        if inputs.samic_checkpoint is not None and not inputs.samic_checkpoint.is_file():
            raise UserError(f"{inputs.samic_checkpoint}: SAMIC checkpoint not found (--samic)")
        if inputs.overlay is not None and inputs.overlay.suffix.lower() != ".mp4":
            raise UserError(f"{inputs.overlay}: overlay videos are mp4; give a name ending in .mp4")
        check_output_folder(inputs.out_dir)
        if inputs.overlay is not None:
            check_output_file(inputs.overlay)
    except BaseException:
        frames.close()
        raise
    return frames, first_mask


def run_track(inputs: TrackInputs, config: TrackConfig, progress: bool = True) -> int:
    """Run the whole job; returns the number of frames written."""
    from samic_vos.devices import select_device
    from samic_vos.sam_models import load_sam
    from samic_vos.segmenter import SamSegmenter

    frames, first_mask = check_inputs(inputs, config)
    if inputs.random_backbone:  # resolved here so that config.yaml says so
        config = dataclasses.replace(
            config, network=dataclasses.replace(config.network, backbone="random")
        )
    device = select_device(config.device)
    torch.manual_seed(0)
    segmenter = SamSegmenter(load_sam(config.sam_model, inputs.sam_checkpoint, device), device)
    out = inputs.out_dir
    (out / "masks").mkdir(parents=True, exist_ok=True)
    if inputs.overlay is not None:
        inputs.overlay.parent.mkdir(parents=True, exist_ok=True)
    net, samic_source = _samic(inputs, config, frames, first_mask, device, progress)
    save_config(
        config,
        out / "config.yaml",
        version=__version__,
        inputs={k: (str(v) if isinstance(v, Path) else v) for k, v in vars(inputs).items()},
        samic=samic_source,
    )
    tracker = CausalTracker(net, segmenter, config.tracker, device)
    writer = VideoWriter(inputs.overlay, frames.fps, frames.size) if inputs.overlay else None
    count = 0
    with (
        frames,
        writer or contextlib.nullcontext(),
        JsonLinesWriter(out / "prompts.jsonl") as prompts,
    ):
        bar = tqdm(
            frames, total=frames.num_frames, desc="track", unit="frame", disable=not progress
        )
        for frame in bar:
            result = tracker.step(frame.rgb, first_mask if frame.index == 0 else None)
            write_mask(out / "masks" / f"{frame.name}.png", result.ids)
            prompts.write(_prompt_record(frame.name, result))
            if writer is not None:
                points = {k: obj.points for k, obj in result.objects.items()}
                writer.write(overlay(frame.rgb, result.ids, config.overlay_alpha, points=points))
            count += 1
    return count


def _samic(
    inputs: TrackInputs,
    config: TrackConfig,
    frames: FrameSource,
    first_mask: np.ndarray,
    device: torch.device,
    progress: bool,
) -> tuple[SamicNet, str]:
    """The SAMIC network: the given checkpoint, or a fresh one adapted on frame 0 and saved.

    Returns the network on ``device`` and where it came from (for config.yaml).
    """
    from samic_vos.first_frame_adaptation import adapt_on_first_frame
    from samic_vos.samic_checkpoint import load_samic, save_samic
    from samic_vos.samic_net import build_samic

    if inputs.samic_checkpoint is not None:
        net, _ = load_samic(inputs.samic_checkpoint, device, inputs.backbone_weights)
        return net, str(inputs.samic_checkpoint)
    net = build_samic(config.network, inputs.backbone_weights).to(device)
    log.warning(
        "no SAMIC checkpoint given (--samic): adapting a fresh network on frame 0 "
        "(%d steps); pass a trained checkpoint for the paper's setting",
        config.adaptation.steps,
    )
    first = next(iter(frames)).rgb
    metrics = adapt_on_first_frame(
        net,
        first,
        first_mask,
        config.adaptation,
        heat_sigma=config.tracker.heat_sigma,
        device=device,
        progress=progress,
    )
    path = inputs.out_dir / "samic_adapted.pt"
    save_samic(path, net, config=config, metrics=metrics)
    return net, f"adapted on frame 0, saved as {path}"


def _prompt_record(name: str, result: FrameResult) -> dict:
    """One prompts.jsonl line (see the module docstring)."""
    return {
        "frame": name,
        "objects": {
            str(obj_id): {
                "points": np.round(obj.points.astype(float), 2).tolist(),
                "scores": [round(float(s), 4) for s in obj.peak_scores],
                "confidence": round(float(obj.confidence), 4),
            }
            for obj_id, obj in result.objects.items()
        },
    }
