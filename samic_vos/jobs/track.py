"""The tracking job's settings (:class:`TrackConfig`) and the one loop that tracks a video into
files (:func:`track_sequence`), which ``track`` and ``bench davis`` both run.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from samic_vos.data.frame_source import FrameSource
from samic_vos.data.mask_io import read_mask, write_mask
from samic_vos.data.names import BACKENDS
from samic_vos.data.video_writer import VideoWriter
from samic_vos.inference.names import PROMPTERS
from samic_vos.inference.prompter import TrackerConfig
from samic_vos.inference.prompts_log import complete_records, frame_record, keep_first
from samic_vos.inference.track_resume import plan_restore, restore_tracker
from samic_vos.inference.tracker import CausalTracker
from samic_vos.model.samic_net import SamicNetConfig
from samic_vos.reports.render import OverlayConfig, overlay
from samic_vos.runtime.atomic import JsonLinesWriter
from samic_vos.runtime.background_jobs import BackgroundJobs
from samic_vos.runtime.config import require_choice
from samic_vos.runtime.console import bar
from samic_vos.runtime.stage_threads import ThreadsConfig
from samic_vos.sam.encoder import EncoderConfig
from samic_vos.sam.models import require_models
from samic_vos.sam.run_ahead import embedded_frames
from samic_vos.training.first_frame_adaptation import AdaptationConfig

log = logging.getLogger(__name__)


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
    tracker's state is rebuilt from them (:mod:`samic_vos.inference.track_resume`). ``writer`` also
    receives every frame's overlay. Frame t+1 is decoded in a worker thread while frame t is
    tracked, and with ``ahead`` SAM's encoder runs there too (:mod:`samic_vos.sam.run_ahead`); frame
    t's outputs are written by another while frame t+1 is
    (:mod:`samic_vos.runtime.background_jobs`), in the order an in-order loop writes them. Returns
    ``(frames finished before, frames computed now)``.
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
    encoded = embedded_frames(frames, segmenter, ahead=ahead, start=done)
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
