"""`samic-vos track`: segment the objects of given masks through a video, causally.

Composition: frame source → the Python API's models and tracker
(:func:`~samic_vos.api.models.job_models`, :class:`~samic_vos.api.video.VideoTracker`: SAMIC +
SAM, its mask checks) → :func:`~samic_vos.jobs.track.track_sequence`, which writes palette PNGs,
``prompts.jsonl`` and an optional overlay video as frames are produced.

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
import logging
from dataclasses import dataclass
from pathlib import Path

from samic_vos.api.models import job_models
from samic_vos.api.video import VideoTracker, given_masks
from samic_vos.data.frame_source import open_frames
from samic_vos.data.mask_io import read_mask
from samic_vos.data.video_writer import VideoWriter
from samic_vos.inference.prompts_log import PROMPTS, complete_records
from samic_vos.jobs.track import TrackConfig, track_sequence
from samic_vos.jobs.track_inputs import TrackInputs, check_inputs
from samic_vos.runtime.config import config_to_dict, save_config
from samic_vos.runtime.runs import RunManifest, RunState, fingerprint, open_run, write_manifest
from samic_vos.runtime.version import __version__
from samic_vos.training.adapted import ADAPTATION_STATE, ADAPTED

log = logging.getLogger(__name__)

# What a track run writes in OUT (removed by `force`).
OUTPUTS = ("masks", PROMPTS, "config.yaml", ADAPTED, ADAPTATION_STATE)


@dataclass
class TrackSummary:
    """What a run did: ``frames`` written in all, ``computed`` by this call."""

    frames: int
    computed: int
    state: RunState
    out_dir: Path


def run_track(inputs: TrackInputs, config: TrackConfig, progress: bool = True) -> TrackSummary:
    """Run (or continue) the whole job; see the module docstring."""
    check_inputs(inputs)
    frames = open_frames(inputs.video, backend=config.backend)
    try:
        given = given_masks(frames, inputs.video, inputs.first_mask, inputs.masks_dir)
        models, ran = job_models(
            config, inputs.sam_checkpoint, inputs.samic_checkpoint, inputs.backbone_weights
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
        samic = models.samic_source(f"adapted on frame 0, saved as {out / ADAPTED}")
        save_config(ran, out / "config.yaml", version=__version__, samic=samic)
        video = VideoTracker(
            models, ran.tracker, adaptation=ran.adaptation, adaptation_dir=out, progress=progress
        )
        if models.adapts:
            first = read_mask(given[0])
            video.adapt(next(iter(frames)).rgb, first, resume=state == "resume", record=ran)
        (out / "masks").mkdir(exist_ok=True)
        writer = VideoWriter(inputs.overlay, frames.fps, frames.size) if inputs.overlay else None
        with writer or contextlib.nullcontext():
            _, computed = track_sequence(
                frames,
                dict(given),
                video.tracker,
                out / "masks",
                out / PROMPTS,
                resume=state == "resume",
                writer=writer,
                overlay_config=ran.overlay,
                progress=progress,
                ahead=models.run_ahead,
            )
        manifest.finished = True
        write_manifest(out, manifest)
        return TrackSummary(len(frames.names), computed, state, out)
    finally:
        frames.close()
