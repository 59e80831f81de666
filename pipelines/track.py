"""`samic-vos track`: segment the objects of given masks through a video, causally.

Composition: frame source → :class:`~samic_vos.tracker.CausalTracker` (SAMIC + SAM) → palette
PNGs, ``prompts.jsonl`` and an optional overlay video, all written as frames are produced.

Outputs in ``OUT``:
- ``masks/<frame name>.png``: DAVIS palette PNGs, object ids as in the given masks;
- ``prompts.jsonl``: one line per frame (:mod:`samic_vos.prompts_log`);
- ``config.yaml``: the configuration that ran (the device used, the SAM architecture loaded,
  the SAMIC network's own config); ``run.json``: the run's manifest (:mod:`samic_vos.runs`);
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
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from samic_vos import __version__
from samic_vos.atomic import JsonLinesWriter
from samic_vos.background_jobs import BackgroundJobs
from samic_vos.config import config_to_dict, require_choice, save_config
from samic_vos.console import bar
from samic_vos.devices import require_models
from samic_vos.errors import UserError
from samic_vos.first_frame_adaptation import AdaptationConfig
from samic_vos.frame_source import BACKENDS, Frame, FrameSource, open_frames
from samic_vos.mask_io import object_ids, read_mask, write_mask
from samic_vos.output_paths import check_writable_dir, check_writable_file
from samic_vos.prompter import PROMPTERS, build_prompter
from samic_vos.prompts_log import complete_records, frame_record, keep_first
from samic_vos.render import OverlayConfig, overlay
from samic_vos.run_ahead import run_ahead, run_ahead_enabled
from samic_vos.runs import RunManifest, RunState, fingerprint, open_run, write_manifest
from samic_vos.sam_encoder import EncoderConfig
from samic_vos.sam_models import SAM_ARCHS
from samic_vos.samic_net import SamicNet, SamicNetConfig
from samic_vos.stage_threads import StageThreads, ThreadsConfig
from samic_vos.track_resume import plan_restore, restore_tracker
from samic_vos.tracker import CausalTracker, TrackerConfig
from samic_vos.video_writer import VideoWriter

if TYPE_CHECKING:
    from samic_vos.segmenter import ImageEmbedding

log = logging.getLogger(__name__)

ADAPTED = "samic_adapted.pt"
ADAPTATION_STATE = "adaptation_state.pt"  # an unfinished first-frame adaptation
PROMPTS = "prompts.jsonl"
# What a track run writes in OUT (removed by `force`).
OUTPUTS = ("masks", PROMPTS, "config.yaml", ADAPTED, ADAPTATION_STATE)


@dataclass
class TrackConfig:
    """Everything `samic-vos track` can be told (defaults; YAML and flags override)."""

    # vit_b | vit_l | vit_h (tiny: tests); None: the SAM checkpoint's own (vit_b to download).
    sam_model: str | None = None
    device: str = "auto"  # auto | cuda | cuda:N | mps | cpu
    prompter: str = "samic"  # samic | previous-mask | persam (training-free baselines)
    backend: str = "auto"  # frame decoding: auto | decord | pyav | folder
    overlay: OverlayConfig = field(default_factory=OverlayConfig)
    tracker: TrackerConfig = field(default_factory=TrackerConfig)
    encoder: EncoderConfig = field(default_factory=EncoderConfig)  # how SAM's encoder runs
    # The network built and adapted on the first frame without a SAMIC checkpoint; with one,
    # config.yaml records the checkpoint's own network config here.
    network: SamicNetConfig = field(default_factory=SamicNetConfig)
    adaptation: AdaptationConfig = field(default_factory=AdaptationConfig)
    threads: ThreadsConfig = field(default_factory=ThreadsConfig)  # torch threads per stage

    def __post_init__(self) -> None:
        require_models(self.sam_model, self.device)
        require_choice("backend", self.backend, BACKENDS)
        require_choice("prompter", self.prompter, PROMPTERS)


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
        if inputs.overlay.suffix.lower() != ".mp4":
            raise UserError(f"{inputs.overlay}: overlay videos are mp4; give a name ending in .mp4")
        check_writable_file(inputs.overlay)


def run_track(inputs: TrackInputs, config: TrackConfig, progress: bool = True) -> TrackSummary:
    """Run (or continue) the whole job; see the module docstring."""
    from samic_vos.devices import select_device
    from samic_vos.sam_models import load_sam, sam_arch_name
    from samic_vos.segmenter import SamSegmenter

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


def track_sequence(
    frames: FrameSource,
    given: dict[int, Path | np.ndarray],
    tracker: CausalTracker,
    masks_dir: Path,
    prompts_path: Path,
    *,
    resume: bool,
    writer: VideoWriter | None = None,
    overlay_config: OverlayConfig | None = None,
    progress: bool = True,
    desc: str = "track",
    ahead: bool = False,
) -> tuple[int, int]:
    """Track one video into ``masks_dir/<frame>.png`` and ``prompts_path``; the one loop that
    ``track`` and ``bench davis`` run.

    ``given``: frame index → mask (a file or a (H, W) uint8 id map). With ``resume``, the frames
    an earlier call finished (a prompts line and a mask each) are not computed again: the
    tracker's state is rebuilt from them (:mod:`samic_vos.track_resume`). ``writer`` also
    receives every frame's overlay. Frame t+1 is decoded in a worker thread while frame t is
    tracked, and with ``ahead`` SAM's encoder runs there too (:mod:`samic_vos.run_ahead`); frame
    t's outputs are written by another while frame t+1 is (:mod:`samic_vos.background_jobs`),
    in the order an in-order loop writes them. Returns ``(frames finished before, frames
    computed now)``.
    """
    records = complete_records(prompts_path) if resume else []
    done = 0
    while done < len(records) and (masks_dir / f"{records[done]['frame']}.png").is_file():
        done += 1
    records = records[:done]
    if resume and prompts_path.is_file():
        keep_first(prompts_path, done)
        if done:
            log.info("%s: continuing after its %d finished frames", prompts_path.parent, done)
    plan = plan_restore(records)
    kept: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    style = overlay_config or OverlayConfig()
    computed = 0
    # Frame t+1 is decoded in a worker thread while frame t is tracked (and, with ``ahead``,
    # encoded there too); frames finished by an earlier run are not encoded. The run-ahead is
    # closed (its worker finished) before the caller closes the frame source.
    segmenter = tracker.segmenter

    def prepare(frame: Frame) -> ImageEmbedding | None:
        return segmenter.embed(frame.rgb) if ahead and frame.index >= done else None

    encoded = run_ahead(frames, prepare, enabled=True, device=segmenter.device if ahead else "cpu")
    # Whole lines only, even on a full disk; each frame's mask, then its line, then its overlay
    # frame, written in order by one worker thread while the next frame is tracked.
    with (
        JsonLinesWriter(prompts_path, append=done > 0) as prompts,
        contextlib.closing(encoded),
        BackgroundJobs() as outputs,
    ):
        frames_bar = bar(
            encoded, total=frames.num_frames, desc=desc, unit="frame", disable=not progress
        )
        for frame, embedding in frames_bar:
            if frame.index < done:  # finished by an earlier run: its state is rebuilt
                if frame.index in plan.frames or writer is not None:
                    ids = read_mask(masks_dir / f"{frame.name}.png")
                if frame.index in plan.frames:
                    kept[frame.index] = (frame.rgb.copy(), ids)
                if frame.index == done - 1:
                    restore_tracker(tracker, plan, kept, records, frames.size)
                    kept.clear()
                if writer is not None:
                    outputs.submit(
                        _overlay_job(writer, frame.rgb, ids, records[frame.index], style)
                    )
                continue
            mask = given.get(frame.index)
            if isinstance(mask, Path):
                mask = read_mask(mask)
            if embedding is None:
                embedding = segmenter.embed(frame.rgb)
            result = tracker.step(frame.rgb, mask, embedding=embedding)
            record = frame_record(frame.name, result)
            outputs.submit(
                _frame_job(
                    masks_dir / f"{frame.name}.png",
                    result.ids,
                    record,
                    prompts,
                    _overlay_job(writer, frame.rgb, result.ids, record, style) if writer else None,
                )
            )
            computed += 1
    return done, computed


def _frame_job(
    mask_path: Path,
    ids: np.ndarray,
    record: dict,
    prompts: JsonLinesWriter,
    overlay_job: Callable[[], None] | None,
) -> Callable[[], None]:
    """One computed frame's writes, in the order resume relies on: mask, line, overlay."""

    def job() -> None:
        write_mask(mask_path, ids)
        prompts.write(record)
        if overlay_job is not None:
            overlay_job()

    return job


def _overlay_job(
    writer: VideoWriter, rgb: np.ndarray, ids: np.ndarray, record: dict, style: OverlayConfig
) -> Callable[[], None]:
    """Draw one record's overlay frame and hand it to ``writer``."""

    def job() -> None:
        points = {
            int(k): np.asarray(v["points"], dtype=np.float32).reshape(-1, 2)
            for k, v in record["objects"].items()
        }
        writer.write(overlay(rgb, ids, style.alpha, style.outline, points=points))

    return job


def _samic(inputs: TrackInputs, config: TrackConfig, device: torch.device) -> tuple[SamicNet, str]:
    """The SAMIC network before any adaptation: the checkpoint's, or a fresh one."""
    return samic_network(
        inputs.samic_checkpoint,
        inputs.backbone_weights,
        config.network,
        device,
        f"adapted on frame 0, saved as {inputs.out_dir / ADAPTED}",
    )


def samic_network(
    checkpoint: Path | None,
    backbone_weights: Path | None,
    network: SamicNetConfig,
    device: torch.device,
    adapted_note: str,
) -> tuple[SamicNet, str]:
    """The SAMIC network before any adaptation: the ``checkpoint``'s, or a fresh one of
    ``network``. Returns it on ``device`` and where it came from (for config.yaml: the
    checkpoint's path, or ``adapted_note``)."""
    from samic_vos.samic_checkpoint import load_samic
    from samic_vos.samic_net import build_samic

    if checkpoint is not None:
        net, _ = load_samic(checkpoint, device, backbone_weights)
        return net, str(checkpoint)
    return build_samic(network, backbone_weights).to(device), adapted_note


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


def adapt_samic(
    net: SamicNet,
    out_dir: Path,
    references: Callable[[], list[tuple[np.ndarray, np.ndarray]]],
    *,
    resume: bool,
    job_config: Any,
    adaptation: AdaptationConfig,
    heat_sigma: float,
    device: torch.device,
    backbone_weights: Path | None,
    progress: bool,
    what: str,
    threads: int | None = None,
) -> SamicNet:
    """A run without a SAMIC checkpoint: adapt ``net`` in place on ``references()`` ((rgb, ids)
    pairs, read only when needed), saved as ``out_dir/ADAPTED`` with ``job_config``; a resumed
    run reloads the network it saved (returned instead), or continues an interrupted
    adaptation from ``out_dir/ADAPTATION_STATE``. ``what`` names the images in the log;
    ``threads``: torch threads of the adaptation (the job's ``threads.adaptation``)."""
    from samic_vos.first_frame_adaptation import adapt_on_references
    from samic_vos.samic_checkpoint import load_samic, save_samic

    path = out_dir / ADAPTED
    if resume and path.is_file():
        adapted, _ = load_samic(path, device, backbone_weights)
        log.info("%s: using the network this run adapted on %s", path, what)
        return adapted
    log.warning(
        "no SAMIC checkpoint given (`samic_checkpoint`): adapting a fresh network on %s "
        "(%d steps); pass a trained checkpoint for the paper's setting",
        what,
        adaptation.steps,
    )
    metrics = adapt_on_references(
        net,
        references(),
        adaptation,
        heat_sigma=heat_sigma,
        device=device,
        progress=progress,
        state_path=out_dir / ADAPTATION_STATE,
        what=what,
        threads=threads,
    )
    save_samic(path, net, config=job_config, metrics=metrics)
    (out_dir / ADAPTATION_STATE).unlink(missing_ok=True)
    return net
