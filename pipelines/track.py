"""`samic-vos track`: segment the objects of given masks through a video, causally.

Composition: frame source → :class:`~samic_vos.inference.tracker.CausalTracker` (SAMIC + SAM) →
palette PNGs, ``prompts.jsonl`` and an optional overlay video, all written as frames are produced.

Outputs in ``OUT``:
- ``masks/<frame name>.png``: DAVIS palette PNGs, object ids as in the given masks;
- ``prompts.jsonl``: one line per frame (:mod:`samic_vos.inference.prompts_log`);
- ``config.yaml``: the configuration that ran (the device used, the SAM architecture loaded,
  the SAMIC network's own config); ``run.json``: the run's manifest (:mod:`samic_vos.runtime.runs`);
  ``samic_adapted.pt`` when SAMIC was adapted on the first frame.

Every input, weight and output path is checked before anything is written. A rerun of the same
run into ``OUT`` continues from the first frame without a mask and a prompts line (the
tracker's state rebuilt from the recorded points, :meth:`CausalTracker.restore`), and ends with
the bytes an uninterrupted run writes; a finished run is not redone (``force`` redoes it).
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
from dataclasses import dataclass
from pathlib import Path

import torch

from samic_vos.data.frame_source import FrameSource, open_frames
from samic_vos.data.mask_io import object_ids, read_mask
from samic_vos.data.video_writer import VideoWriter, check_video_path
from samic_vos.inference.prompters import build_prompter
from samic_vos.inference.prompts_log import PROMPTS, complete_records
from samic_vos.inference.tracker import CausalTracker
from samic_vos.jobs.track import TrackConfig, track_sequence
from samic_vos.model.samic_net import SamicNet
from samic_vos.runtime.config import config_to_dict, save_config
from samic_vos.runtime.errors import UserError
from samic_vos.runtime.output_paths import check_writable_dir
from samic_vos.runtime.runs import RunManifest, RunState, fingerprint, open_run, write_manifest
from samic_vos.runtime.stage_threads import StageThreads
from samic_vos.runtime.version import __version__
from samic_vos.sam.models import SAM_ARCHS
from samic_vos.sam.run_ahead import run_ahead_enabled
from samic_vos.training.adapted import ADAPTATION_STATE, ADAPTED, adapt_samic, samic_network

log = logging.getLogger(__name__)

# What a track run writes in OUT (removed by `force`).
OUTPUTS = ("masks", PROMPTS, "config.yaml", ADAPTED, ADAPTATION_STATE)


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


@dataclass
class TrackSummary:
    """What a run did: ``frames`` written in all, ``computed`` by this call."""

    frames: int
    computed: int
    state: RunState
    out_dir: Path


def given_masks(inputs: TrackInputs, frames: FrameSource) -> dict[int, Path]:
    """Frame index → mask file of every given mask, each checked (ids, size) here.

    Raises:
        UserError: a mask that names no frame, is unreadable, has the wrong size or no
            object; no mask for the first frame; object ids that are not 1..K.
    """
    names = frames.names
    index = {name: i for i, name in enumerate(names)}
    found: dict[int, Path] = {}
    if inputs.masks_dir is not None:
        if not inputs.masks_dir.is_dir():
            raise UserError(f"{inputs.masks_dir}: mask folder not found (`masks_dir`)")
        for path in sorted(inputs.masks_dir.glob("*.png")):
            if path.stem not in index:
                raise UserError(
                    f"{path}: names no frame of {inputs.video} (frames are named "
                    f"{names[0]} ... {names[-1]}); name masks like the frames"
                )
            found[index[path.stem]] = path
    if inputs.first_mask is not None:
        if 0 in found and found[0].resolve() != inputs.first_mask.resolve():
            raise UserError(
                f"{inputs.first_mask}: the mask folder also has a mask of the first frame "
                f"({found[0]}); give one of them"
            )
        found[0] = inputs.first_mask
    if 0 not in found:
        raise UserError(
            f"{inputs.video}: no mask for the first frame ({names[0]}); pass `first_mask` or "
            f"put {names[0]}.png in the mask folder"
        )
    ids: set[int] = set()
    for frame, path in sorted(found.items()):
        mask = read_mask(path)
        if mask.shape != frames.size:
            raise UserError(
                f"{path}: mask is {mask.shape[1]}x{mask.shape[0]} but the video frames are "
                f"{frames.size[1]}x{frames.size[0]}; pass the mask of frame {names[frame]}"
            )
        present = object_ids(mask)
        if not present:
            raise UserError(f"{path}: the mask has no object (only background)")
        ids.update(present)
    if sorted(ids) != list(range(1, len(ids) + 1)):
        shown = ", ".join(map(str, sorted(ids)))
        raise UserError(
            f"{found[0]}: object ids are {shown}; masks must number objects 1..K without "
            f"gaps (as DAVIS does), so that they are tracked and scored as 1..{len(ids)}"
        )
    return dict(sorted(found.items()))


def check_inputs(inputs: TrackInputs) -> None:
    """The checks that need no decoding: files exist, flags agree, outputs are writable."""
    if inputs.first_mask is None and inputs.masks_dir is None:
        raise UserError("no mask given: pass `first_mask` (frame 0) and/or `masks_dir`")
    if inputs.first_mask is not None and not inputs.first_mask.is_file():
        raise UserError(f"{inputs.first_mask}: mask file not found (`first_mask`)")
    if inputs.samic_checkpoint is not None:
        if not inputs.samic_checkpoint.is_file():
            raise UserError(
                f"{inputs.samic_checkpoint}: SAMIC checkpoint not found (`samic_checkpoint`)"
            )
    check_writable_dir(inputs.out_dir)
    check_writable_dir(inputs.out_dir / "masks")
    if inputs.overlay is not None:
        check_video_path(inputs.overlay)


def run_track(inputs: TrackInputs, config: TrackConfig, progress: bool = True) -> TrackSummary:
    """Run (or continue) the whole job; see the module docstring."""
    from samic_vos.runtime.devices import select_device
    from samic_vos.sam.models import load_sam, sam_arch_name
    from samic_vos.sam.segmenter import SamSegmenter

    check_inputs(inputs)
    frames = open_frames(inputs.video, backend=config.backend)
    try:
        given = given_masks(inputs, frames)
        uses_samic = config.prompter == "samic"
        device = select_device(config.device)
        torch.manual_seed(0)
        sam = load_sam(config.sam_model, inputs.sam_checkpoint, device)
        net, samic_source = _samic(inputs, config, device) if uses_samic else (None, None)
        loaded = sam_arch_name(sam)
        ran = dataclasses.replace(
            config,
            device=str(device),
            sam_model=loaded if loaded in SAM_ARCHS else config.sam_model,
            network=net.config if net is not None else config.network,
        )
        manifest = RunManifest(
            command="track",
            inputs={
                "video": fingerprint(inputs.video),
                "masks": {frames.names[k]: fingerprint(p) for k, p in given.items()},
                "samic": fingerprint(inputs.samic_checkpoint),
                "sam": fingerprint(inputs.sam_checkpoint),
                "backbone_weights": fingerprint(inputs.backbone_weights),
            },
            config=config_to_dict(ran),
        )
        out = inputs.out_dir
        state = open_run(out, manifest, force=inputs.force, outputs=OUTPUTS)
        if state == "finished":
            count = len(complete_records(out / PROMPTS))
            log.info("%s: this run is finished (%d frames); pass `force` to redo it", out, count)
            return TrackSummary(count, 0, state, out)
        out.mkdir(parents=True, exist_ok=True)
        write_manifest(out, manifest)
        save_config(ran, out / "config.yaml", version=__version__, samic=samic_source)
        if net is not None:
            net = _adapt_if_needed(inputs, ran, net, frames, given, device, state, progress)
        (out / "masks").mkdir(exist_ok=True)
        segmenter = SamSegmenter(sam, device, ran.encoder, StageThreads.resolve(ran.threads))
        prompter = build_prompter(ran.prompter, segmenter, ran.tracker, net, device)
        tracker = CausalTracker(prompter, segmenter, ran.tracker)
        writer = VideoWriter(inputs.overlay, frames.fps, frames.size) if inputs.overlay else None
        with writer or contextlib.nullcontext():
            _, computed = track_sequence(
                frames,
                dict(given),
                tracker,
                out / "masks",
                out / PROMPTS,
                resume=state == "resume",
                writer=writer,
                overlay_config=ran.overlay,
                progress=progress,
                ahead=run_ahead_enabled(ran.encoder, device),
            )
        manifest.finished = True
        write_manifest(out, manifest)
        return TrackSummary(len(frames.names), computed, state, out)
    finally:
        frames.close()


def _samic(inputs: TrackInputs, config: TrackConfig, device: torch.device) -> tuple[SamicNet, str]:
    """The SAMIC network before any adaptation: the checkpoint's, or a fresh one."""
    return samic_network(
        inputs.samic_checkpoint,
        inputs.backbone_weights,
        config.network,
        device,
        f"adapted on frame 0, saved as {inputs.out_dir / ADAPTED}",
    )


def _adapt_if_needed(
    inputs: TrackInputs,
    config: TrackConfig,
    net: SamicNet,
    frames: FrameSource,
    given: dict[int, Path],
    device: torch.device,
    state: RunState,
    progress: bool,
) -> SamicNet:
    """Without a checkpoint: adapt ``net`` on the first frame (or reload an earlier run's)."""
    if inputs.samic_checkpoint is not None:
        return net
    return adapt_samic(
        net,
        inputs.out_dir,
        lambda: [(next(iter(frames)).rgb, read_mask(given[0]))],
        resume=state == "resume",
        job_config=config,
        adaptation=config.adaptation,
        heat_sigma=config.tracker.heat_sigma,
        device=device,
        backbone_weights=inputs.backbone_weights,
        progress=progress,
        what="frame 0",
        threads=StageThreads.resolve(config.threads).counts["adaptation"],
    )
