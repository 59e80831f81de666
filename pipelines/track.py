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
``format`` ``coco`` also writes ``OUT/coco.json`` (:mod:`samic_vos.data.exports`).

A collection (:func:`run_track_collection`: a manifest, or several videos with their first
masks, :mod:`samic_vos.jobs.video_manifest`) tracks each video into ``OUT/<name>/`` as one
run of its own (the outputs above, resumed per video), with the models loaded once. Shards
(:mod:`samic_vos.runtime.shards`) take the videos dealt by frame count; a video that fails (a
broken file, a mask of the wrong size) is reported in one line and the others go on. The
shard that finds every video finished (or ``merge``) writes the collection's summary,
``OUT/summary.json`` (each video's name and frames, in the collection's order), and with
``coco`` the collection's ``OUT/coco.json``, merged from the COCO records each video's shard
wrote into ``OUT/<name>/coco.jsonl`` as it finished that video.
"""

from __future__ import annotations

import contextlib
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

from samic_vos.api.models import Models, job_models
from samic_vos.api.video import VideoTracker, given_masks
from samic_vos.data.exports import OUTPUT_FORMATS
from samic_vos.data.exports.coco import (
    COCO_FILE,
    VIDEO_RECORDS,
    write_collection_coco,
    write_video_records,
)
from samic_vos.data.exports.sources import COLLECTION
from samic_vos.data.exports.writers import export_run
from samic_vos.data.frame_source import open_frames
from samic_vos.data.mask_io import read_mask
from samic_vos.data.video_writer import VideoWriter
from samic_vos.inference.prompts_log import PROMPTS, complete_records
from samic_vos.jobs.track import TrackConfig, track_sequence
from samic_vos.jobs.track_inputs import TrackInputs, check_inputs
from samic_vos.jobs.video_manifest import VideoItem
from samic_vos.runtime.atomic import atomic_write_text, remove_leftovers
from samic_vos.runtime.config import manifest_config, require_choice, save_config
from samic_vos.runtime.errors import UserError
from samic_vos.runtime.output_paths import check_writable_dir, removing_new_folders
from samic_vos.runtime.runs import (
    CONFIG_FILE,
    RunManifest,
    RunState,
    fingerprint,
    open_run,
    read_manifest,
    write_manifest,
)
from samic_vos.runtime.shards import resolve_shard
from samic_vos.runtime.version import __version__
from samic_vos.training.adapted import ADAPTATION_STATE, ADAPTED

log = logging.getLogger(__name__)

# What a track run writes in OUT (removed by `force`).
OUTPUTS = ("masks", PROMPTS, CONFIG_FILE, COCO_FILE, VIDEO_RECORDS, ADAPTED, ADAPTATION_STATE)
SUMMARY = "summary.json"  # a collection's summary


@dataclass
class TrackSummary:
    """What a run did: ``frames`` written in all, ``computed`` by this call."""

    frames: int
    computed: int
    state: RunState
    out_dir: Path


def run_track(
    inputs: TrackInputs,
    config: TrackConfig,
    progress: bool = True,
    loaded: tuple[Models, TrackConfig] | None = None,
) -> TrackSummary:
    """Run (or continue) the whole job; see the module docstring. ``loaded``: the models and
    the config as it runs (:func:`job_models`'), loaded once for a collection."""
    require_choice("format", inputs.format, OUTPUT_FORMATS)
    check_inputs(inputs)
    frames = open_frames(inputs.video, backend=config.backend)
    try:
        given = given_masks(frames, inputs.video, inputs.first_mask, inputs.masks_dir)
        models, ran = loaded or job_models(
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
            config=manifest_config(ran),
        )
        out = inputs.out_dir
        state = open_run(out, manifest, force=inputs.force, outputs=OUTPUTS)
        if state == "finished":
            count = len(complete_records(out / PROMPTS))
            log.info("%s: this run is finished (%d frames); pass `force` to redo it", out, count)
            _write_coco(out, inputs.format)
            return TrackSummary(count, 0, state, out)
        out.mkdir(parents=True, exist_ok=True)
        _remove_killed_writes(out, inputs.overlay)
        write_manifest(out, manifest)
        samic = models.samic_source(f"adapted on frame 0, saved as {out / ADAPTED}")
        save_config(ran, out / CONFIG_FILE, version=__version__, samic=samic)
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
        _write_coco(out, inputs.format)
        return TrackSummary(len(frames.names), computed, state, out)
    finally:
        frames.close()


def _remove_killed_writes(out: Path, overlay: Path | None) -> None:
    """The temporary files a process killed mid-write left in ``out``, ``out/masks`` and
    beside the ``overlay`` video (its own alone): this run is their one writer."""
    for folder in (out, out / "masks"):
        remove_leftovers(folder)
    if overlay is not None:
        remove_leftovers(overlay.parent, of=overlay.name)


def _write_coco(out: Path, format: str) -> None:
    """``format`` coco: OUT/coco.json from the finished run's masks."""
    if format == "coco":
        log.info("wrote %s", export_run(out, "coco", out))


@dataclass
class CollectionInputs:
    """A collection of videos (:mod:`samic_vos.jobs.video_manifest`) and the switches given."""

    items: list[VideoItem]
    out_dir: Path
    manifest: Path | None = None  # the manifest file, if the videos came from one
    samic_checkpoint: Path | None = None
    sam_checkpoint: Path | None = None
    backbone_weights: Path | None = None
    force: bool = False
    shard: str | None = None  # "I/N"; None: the launcher's (torchrun, Slurm), else every video
    merge: bool = False  # only write the summary of a collection whose shards have finished
    format: str = "png"


@dataclass
class CollectionSummary:
    """What this process did: its ``mine`` videos, ``computed`` frames, the videos that
    ``failed`` (name, one-line reason) and how many of the collection ``remaining``."""

    videos: int
    mine: list[str] = field(default_factory=list)
    computed: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)
    remaining: int = 0


def run_track_collection(
    inputs: CollectionInputs, config: TrackConfig, progress: bool = True
) -> CollectionSummary:
    """Track this process's share of the collection (see the module docstring)."""
    require_choice("format", inputs.format, OUTPUT_FORMATS)
    out = inputs.out_dir
    names = [item.name for item in inputs.items]
    check_writable_dir(out)
    for name in names:
        check_writable_dir(out / name)
    if inputs.merge:
        return _merge_collection(inputs)
    shard = resolve_shard(inputs.shard)
    models, ran = job_models(
        config,
        inputs.sam_checkpoint,
        inputs.samic_checkpoint,
        inputs.backbone_weights,
        shard.local_rank,
    )
    manifest = RunManifest(
        command=COLLECTION,
        inputs={
            "manifest": fingerprint(inputs.manifest),
            "videos": names,
            "samic": fingerprint(inputs.samic_checkpoint),
            "sam": fingerprint(inputs.sam_checkpoint),
            "backbone_weights": fingerprint(inputs.backbone_weights),
        },
        config=manifest_config(ran),
    )
    state = open_run(
        out,
        manifest,
        force=inputs.force,
        outputs=(*names, SUMMARY, COCO_FILE),
        shards=shard.count,
    )
    summary = CollectionSummary(len(names))
    if state == "finished":
        log.info("%s: this collection is finished (%d videos)", out, len(names))
        _write_collection_coco(out, names, inputs.format)
        return summary
    with removing_new_folders(out):
        out.mkdir(parents=True, exist_ok=True)
        write_manifest(out, manifest)
    owners = [0] * len(names)
    if shard.count > 1:
        owners = shard.owners([_frame_count(item, config.backend) for item in inputs.items])
    for item, owner in zip(inputs.items, owners, strict=True):
        if owner != shard.index:
            continue
        summary.mine.append(item.name)
        video = TrackInputs(
            item.video,
            out / item.name,
            item.first_mask,
            item.masks,
            samic_checkpoint=inputs.samic_checkpoint,
            sam_checkpoint=inputs.sam_checkpoint,
            backbone_weights=inputs.backbone_weights,
        )
        try:
            with removing_new_folders(video.out_dir):
                summary.computed += run_track(video, config, progress, (models, ran)).computed
            if inputs.format == "coco" and not (video.out_dir / VIDEO_RECORDS).is_file():
                write_video_records(video.out_dir)  # its part of coco.json, as it finishes
        except UserError as err:
            summary.failed.append((item.name, str(err)))
            log.error("video '%s': %s", item.name, err)
    summary.remaining = sum(not _finished(out / name) for name in names)
    if not summary.remaining:
        _summarize(out, manifest, names, inputs.format)
    return summary


def _frame_count(item: VideoItem, backend: str) -> int:
    """A video's frames (its share's weight); 0 if it cannot be opened (it fails in its turn).
    Counted from its packets where the container declares no count (.mkv, .webm, .ts)."""
    try:
        with open_frames(item.video, backend=backend) as frames:
            return len(frames.names)
    except UserError:
        return 0


def _finished(folder: Path) -> bool:
    manifest = read_manifest(folder)
    return manifest is not None and manifest.finished


def _summarize(out: Path, manifest: RunManifest, names: list[str], format: str) -> None:
    """The complete collection's summary.json (and coco.json), then the manifest marked
    finished: a process killed in between leaves the collection unfinished, and a rerun
    writes them again (a finished one is not summarized again)."""
    videos = [
        {"name": name, "frames": len(complete_records(out / name / PROMPTS))} for name in names
    ]
    atomic_write_text(out / SUMMARY, json.dumps({"videos": videos}, indent=1) + "\n")
    _write_collection_coco(out, names, format)
    manifest.finished = True
    write_manifest(out, manifest)


def _write_collection_coco(out: Path, names: list[str], format: str) -> None:
    """``format`` coco: OUT/coco.json from the videos' records (``<name>/coco.jsonl``)."""
    if format == "coco":
        write_collection_coco([out / name for name in names], out / COCO_FILE)
        log.info("wrote %s", out / COCO_FILE)


def _merge_collection(inputs: CollectionInputs) -> CollectionSummary:
    """``merge``: the summary of a collection whose shards have all finished."""
    out = inputs.out_dir
    manifest = read_manifest(out)
    if manifest is None or manifest.command != COLLECTION:
        raise UserError(f"{out}: holds no `track` collection to merge; pass its `out_dir`")
    names = [item.name for item in inputs.items]
    remaining = [name for name in names if not _finished(out / name)]
    if remaining:
        shown = ", ".join(remaining[:5]) + (" ..." if len(remaining) > 5 else "")
        raise UserError(
            f"{out}: {len(remaining)} of {len(names)} videos are not finished ({shown}); run "
            "their shards first"
        )
    _summarize(out, manifest, names, inputs.format)
    return CollectionSummary(len(names))
