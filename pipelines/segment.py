"""`samic-vos segment`: segment the classes of K labelled reference images in new images.

Composition: references (:mod:`samic_vos.jobs.segment_inputs`) → the few-shot engine
(:class:`~samic_vos.inference.fewshot_engine.FewShotSegmenter`: SAMIC or PerSAM, then SAM) over the
targets in batches → palette PNGs, ``prompts.jsonl`` and optional overlays, written as targets
finish.

Outputs in ``OUT``:
- ``masks/<name>.png``: palette PNGs, ids as the references' classes (``instances``: one id
  per instance, 1..M in class order); names as
  :func:`~samic_vos.jobs.segment_inputs.target_names` gives them;
- ``prompts.jsonl``: one line per finished target (:func:`image_record`);
- ``overlays/<name>.jpg`` (``overlays``): the masks and points drawn on the target;
- ``config.yaml`` (what ran), ``run.json`` (the manifest: references' fingerprints, the
  targets' paths, the config), ``samic_adapted.pt`` when SAMIC was adapted on the references.

Every input is checked, and the references read and encoded, before anything is written. A
rerun of the same run into ``OUT`` skips the targets it finished (a prompts line and a mask
each) and ends with the bytes of an uninterrupted run; a finished run is not redone
(``force`` redoes it). Unreadable targets are reported one line each at the end, counted in
:attr:`SegmentSummary.unreadable` (the command exits with status 2), and retried by a rerun.

Shards (:mod:`samic_vos.runtime.shards`: ``shard`` I/N, torchrun's RANK/WORLD_SIZE, a Slurm
array): the targets' batches (``tracker.batch_size`` consecutive targets, the unit a run decodes
together) are dealt to the shards by their pixels; each shard writes its targets' masks into
``OUT/masks`` and their prompts lines into ``OUT/parts/<I>-of-<N>.jsonl``, and resumes from
them. The shard that finds the collection complete (or ``merge``) writes ``prompts.jsonl``, the
parts in the collection's order: the bytes of one unsharded run. ``format`` ``coco``: each
shard also writes every target's COCO record (:func:`~samic_vos.data.exports.coco.coco_record`:
its image entry and RLE annotations) into ``OUT/parts/<I>-of-<N>.coco.jsonl`` as it finishes
it (a whole run: ``parts/0-of-1.coco.jsonl``), and the summary merges them into
``OUT/coco.json`` (ids in the collection's order): the bytes ``samic-vos export --format
coco`` writes from the finished run.
"""

from __future__ import annotations

import contextlib
import json
import logging
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from samic_vos.api.images import ImageSegmenter
from samic_vos.api.models import job_models
from samic_vos.data.davis import read_image
from samic_vos.data.exports import OUTPUT_FORMATS
from samic_vos.data.exports.coco import COCO_FILE, coco_record, write_coco_records
from samic_vos.data.exports.sources import segment_categories, segment_item
from samic_vos.data.mask_io import VOID_ID, write_mask
from samic_vos.inference.fewshot_engine import ImageResult
from samic_vos.inference.prompts_log import (
    IMAGE_KEYS,
    PROMPTS,
    image_record,
    iter_records,
    keep_first,
)
from samic_vos.jobs.segment import SegmentConfig
from samic_vos.jobs.segment_inputs import (
    ReferenceFile,
    checked_inputs,
    engine_references,
    image_pixels,
    load_mask_reference,
    reference_fingerprint,
    target_names,
)
from samic_vos.jobs.shard_parts import (
    PARTS,
    complete_lines,
    merge_parts,
    missing_records,
    part_count,
    part_lines,
    part_path,
)
from samic_vos.reports.render import overlay
from samic_vos.runtime.atomic import JsonLinesWriter, atomic_path, remove_leftovers
from samic_vos.runtime.config import manifest_config, require_choice, save_config
from samic_vos.runtime.console import bar
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
from samic_vos.runtime.shards import Shard, resolve_shard
from samic_vos.runtime.version import __version__
from samic_vos.training.adapted import ADAPTATION_STATE, ADAPTED

log = logging.getLogger(__name__)

MASKS, OVERLAYS = "masks", "overlays"
COCO_PART = ".coco.jsonl"  # a shard's COCO records, one per target, beside its prompts part
# What a segment run writes in OUT (removed by `force`).
OUTPUTS = (MASKS, OVERLAYS, PROMPTS, PARTS, COCO_FILE, CONFIG_FILE, ADAPTED, ADAPTATION_STATE)
OVERLAY_QUALITY = 90  # JPEG quality of the overlays


@dataclass
class SegmentInputs:
    """Paths and switches given on the command line."""

    targets: list[str]
    out_dir: Path
    ref_images: list[Path] = field(default_factory=list)
    ref_masks: list[Path] = field(default_factory=list)
    ref_sambox: list[Path] = field(default_factory=list)
    samic_checkpoint: Path | None = None
    sam_checkpoint: Path | None = None
    backbone_weights: Path | None = None
    force: bool = False  # redo a finished run, or replace another run in out_dir
    shard: str | None = None  # "I/N"; None: the launcher's (torchrun, Slurm), else the whole set
    merge: bool = False  # only write the summary of a complete sharded run
    format: str = "png"  # png | coco (also OUT/coco.json)


@dataclass
class SegmentSummary:
    """What a run did: ``targets`` in all, ``written`` (finished, all calls), ``computed`` by
    this call, ``unreadable`` (path, one-line message) of the targets that could not be read."""

    targets: int
    written: int
    computed: int
    unreadable: list[tuple[Path, str]]
    state: RunState
    out_dir: Path
    remaining: int = 0  # targets of the collection not finished yet (by any shard)


def run_segment(
    inputs: SegmentInputs, config: SegmentConfig, progress: bool = True
) -> SegmentSummary:
    """Run (or continue) the whole job; see the module docstring."""
    out = inputs.out_dir
    require_choice("format", inputs.format, OUTPUT_FORMATS)
    shard = resolve_shard(inputs.shard)
    refs, targets = checked_inputs(
        inputs.targets,
        out,
        inputs.ref_images,
        inputs.ref_masks,
        inputs.ref_sambox,
        inputs.samic_checkpoint,
    )
    names = target_names(targets)
    check_writable_dir(out)
    for name in (MASKS, OVERLAYS, PARTS):
        check_writable_dir(out / name)
    if inputs.merge:
        return _merge(inputs, config, targets, names)
    if shard.count > 1 and config.prompter == "samic" and inputs.samic_checkpoint is None:
        raise UserError(
            "shards need one SAMIC network, not one adapted per shard: pass `samic_checkpoint` "
            "(a trained network, or the samic_adapted.pt of an unsharded run), or use persam"
        )
    mask_refs = [load_mask_reference(ref) for ref in refs if ref.sambox is None]
    _report_shared(refs, targets)

    models, ran = job_models(
        config,
        inputs.sam_checkpoint,
        inputs.samic_checkpoint,
        inputs.backbone_weights,
        shard.local_rank,
    )
    segmenter = ImageSegmenter(
        models, ran.tracker, adaptation=ran.adaptation, adaptation_dir=out, progress=progress
    )
    try:
        segmenter.set_references(engine_references(refs, mask_refs, models.segmenter))
    except ValueError as err:
        raise UserError(f"references: {err}") from err

    manifest = _manifest(inputs, refs, targets, names, ran)
    state = open_run(out, manifest, force=inputs.force, outputs=OUTPUTS, shards=shard.count)
    if state == "finished":
        # The parts are merged once the run is marked finished; a process killed before it
        # removed them (or midway) leaves them: remove them, as the summary does.
        shutil.rmtree(out / PARTS, ignore_errors=True)
        log.info("%s: this run is finished (%d targets); pass `force` to redo it", out, len(names))
        return SegmentSummary(len(targets), len(names), 0, [], state, out)
    batches = _batches(len(targets), config.tracker.batch_size)
    owners = _owners(shard, batches, targets)
    mine = [b for b, owner in zip(batches, owners, strict=True) if owner == shard.index]
    with removing_new_folders(out):
        out.mkdir(parents=True, exist_ok=True)
        if shard.count == 1:  # the one writer of OUT: a killed process's temporary files go
            for folder in (out, out / MASKS, out / OVERLAYS):
                remove_leftovers(folder)
        write_manifest(out, manifest)
        samic = models.samic_source(f"adapted on the references, saved as {out / ADAPTED}")
        save_config(ran, out / CONFIG_FILE, version=__version__, samic=samic)
        segmenter.adapt(resume=state == "resume", record=ran)
        (out / MASKS).mkdir(exist_ok=True)
        if ran.overlays:
            (out / OVERLAYS).mkdir(exist_ok=True)
        if shard.count > 1 or inputs.format == "coco":
            (out / PARTS).mkdir(exist_ok=True)
        written, computed, unreadable = _segment_all(
            segmenter,
            [[(targets[i], names[i]) for i in batch] for batch in mine],
            out,
            _part_path(out, shard),
            ran,
            resume=state == "resume",
            progress=progress,
            coco_path=part_path(out, shard, COCO_PART) if inputs.format == "coco" else None,
        )
    for _, reason in unreadable:
        log.error("%s; this target has no mask", reason)
    remaining = 0
    if shard.count > 1:
        remaining = missing_records(out, [len(b) for b in batches], owners, shard.count)
        if not remaining:
            try:
                _summarize(inputs, manifest, batches, names, owners, shard.count)
            except FileNotFoundError:
                # Two shards finished at once and the other one merged (its parts are gone).
                finished = read_manifest(out)
                if finished is None or not finished.finished:
                    raise
                return SegmentSummary(len(targets), written, computed, [], state, out)
    elif unreadable:
        remaining = len(unreadable)
    else:
        _summarize(inputs, manifest, batches, names, owners, 1)
    return SegmentSummary(len(targets), written, computed, unreadable, state, out, remaining)


def _manifest(
    inputs: SegmentInputs,
    refs: list[ReferenceFile],
    targets: list[Path],
    names: list[str],
    ran: SegmentConfig,
) -> RunManifest:
    """The run's manifest: the same for every shard (the device is not part of it)."""
    return RunManifest(
        command="segment",
        inputs={
            "references": [reference_fingerprint(ref) for ref in refs],
            "targets": {name: str(path) for name, path in zip(names, targets, strict=True)},
            "samic": fingerprint(inputs.samic_checkpoint),
            "sam": fingerprint(inputs.sam_checkpoint),
            "backbone_weights": fingerprint(inputs.backbone_weights),
            "format": inputs.format,
        },
        config=manifest_config(ran),
    )


def _part_path(out: Path, shard: Shard) -> Path:
    """Where ``shard`` writes its prompts lines: ``prompts.jsonl`` for a whole run, else its
    part (:func:`~samic_vos.jobs.shard_parts.part_path`)."""
    return out / PROMPTS if shard.count == 1 else part_path(out, shard)


def _owners(shard: Shard, batches: list[range], targets: list[Path]) -> list[int]:
    """The shard of each batch, dealt by the batches' pixels (every shard computes the same);
    a whole run owns every batch without reading the images' sizes."""
    if shard.count == 1:
        return [0] * len(batches)
    return shard.owners([sum(image_pixels(targets[i]) for i in batch) for batch in batches])


def _merge(
    inputs: SegmentInputs, config: SegmentConfig, targets: list[Path], names: list[str]
) -> SegmentSummary:
    """``merge``: the summary of a sharded run whose shards have all finished."""
    out = inputs.out_dir
    manifest = read_manifest(out)
    if manifest is None or manifest.command != "segment":
        raise UserError(f"{out}: holds no `segment` run to merge; pass its `out_dir`")
    if manifest.finished:
        return SegmentSummary(len(targets), len(targets), 0, [], "finished", out)
    count = part_count(out)
    batches = _batches(len(targets), config.tracker.batch_size)
    owners = Shard(0, count).owners(
        [sum(image_pixels(targets[i]) for i in batch) for batch in batches]
    )
    remaining = missing_records(out, [len(b) for b in batches], owners, count)
    if remaining:
        raise UserError(
            f"{out}: {remaining} of {len(targets)} targets are not finished; run their shards "
            "first (a target that cannot be read is reported by its shard)"
        )
    _summarize(inputs, manifest, batches, names, owners, count)
    return SegmentSummary(len(targets), len(targets), 0, [], "finished", out)


def _summarize(
    inputs: SegmentInputs,
    manifest: RunManifest,
    batches: list[range],
    names: list[str],
    owners: list[int],
    count: int,
) -> None:
    """The complete collection's summary: prompts.jsonl from the ``count`` shards' parts,
    coco.json from their COCO records (``format`` coco), the manifest marked finished, the
    parts removed."""
    out = inputs.out_dir
    groups = [[names[i] for i in batch] for batch in batches]
    if count > 1:
        merge_parts(out, out / PROMPTS, groups, owners, count, key="image")
    if inputs.format == "coco":
        first = next(iter_records(out / PROMPTS, IMAGE_KEYS, "target image"), None)
        categories = segment_categories(int(k) for k in (first or {}).get("classes", {}))
        lines = part_lines(out, groups, owners, count, "name", COCO_PART)
        write_coco_records((json.loads(line) for line in lines), categories, out / COCO_FILE)
        log.info("wrote %s", out / COCO_FILE)
    manifest.finished = True
    write_manifest(out, manifest)
    shutil.rmtree(out / PARTS, ignore_errors=True)


def _report_shared(refs: list[ReferenceFile], targets: list[Path]) -> None:
    """Say which targets are also reference images (allowed: they are segmented too)."""
    images = {ref.image.resolve() for ref in refs}
    for target in targets:
        if target in images:
            log.info("%s: also a reference image; segmented as a target too", target)


def _batches(count: int, size: int) -> list[range]:
    """The indexes of ``count`` targets in batches of ``size``: the same batches in every run
    and every shard, so a continued or sharded run decodes a batch with the same images as an
    uninterrupted one (the backbone's results may depend on what else is in its batch)."""
    return [range(start, min(start + size, count)) for start in range(0, count, size)]


def _segment_all(
    segmenter: ImageSegmenter,
    batches: Sequence[list[tuple[Path, str]]],
    out: Path,
    prompts_path: Path,
    config: SegmentConfig,
    *,
    resume: bool,
    progress: bool,
    coco_path: Path | None = None,
) -> tuple[int, int, list[tuple[Path, str]]]:
    """Segment every target of ``batches`` ((path, name) each) not finished yet, writing their
    prompts lines to ``prompts_path`` (and, before each, its COCO record to ``coco_path``);
    returns (finished in all, computed now, unreadable targets with the reason)."""
    finished: set[str] = set()
    if resume:
        for record in iter_records(prompts_path, IMAGE_KEYS, "target image"):
            if not _finished(out, record["image"], config):
                break
            finished.add(record["image"])
    done = len(finished)
    if resume and prompts_path.is_file():
        keep_first(prompts_path, done)
        if done:
            log.info("%s: continuing after its %d finished targets", prompts_path, done)
    if coco_path is not None and done:
        if complete_lines(coco_path) < done:
            raise UserError(f"{coco_path}: fewer records than targets done; pass `force`")
        keep_first(coco_path, done)
    unreadable: list[tuple[Path, str]] = []
    computed = 0
    with (
        JsonLinesWriter(prompts_path, append=done > 0) as prompts,
        JsonLinesWriter(coco_path, append=done > 0)
        if coco_path is not None
        else contextlib.nullcontext() as coco,
    ):
        total = sum(len(batch) for batch in batches)
        images_bar = bar(
            total=total, initial=done, desc="segment", unit="image", disable=not progress
        )
        for batch in batches:
            if all(name in finished for _, name in batch):
                continue
            readable = []
            for path, name in batch:
                try:
                    readable.append((path, name, read_image(path, what="target image")))
                except UserError as err:
                    if name not in finished:
                        unreadable.append((path, str(err)))
                        images_bar.update(1)
            if not readable:
                continue
            # A batch partly written by an interrupted run is decoded whole again, as it was.
            results = segmenter.segment([rgb for _, _, rgb in readable])
            for (path, name, rgb), result in zip(readable, results, strict=True):
                if name in finished:
                    continue
                ids = _write(out, name, rgb, result, config)
                record = image_record(name, path, result)
                if coco is not None:
                    item = segment_item(record, ids, config.instances)
                    coco.write({"name": name, **coco_record(item)})
                prompts.write(record)
                computed += 1
                images_bar.update(1)
        images_bar.close()
    return done + computed, computed, unreadable


def _finished(out: Path, name: str, config: SegmentConfig) -> bool:
    """Whether target ``name``'s files are all there (its prompts line is)."""
    if not (out / MASKS / f"{name}.png").is_file():
        return False
    return not config.overlays or (out / OVERLAYS / f"{name}.jpg").is_file()


def _write(
    out: Path, name: str, rgb: np.ndarray, result: ImageResult, config: SegmentConfig
) -> np.ndarray:
    """One target's mask (and overlay, points drawn in their class or instance colour);
    returns the (H, W) uint8 ids written."""
    ids = result.instances if config.instances else result.ids
    if config.overlays:
        points: dict[int, list[np.ndarray]] = {}
        for class_id, found in result.classes.items():
            keys = found.instance_ids if config.instances else [class_id] * len(found.points)
            for key, point in zip(keys, found.points, strict=True):
                # an instance that kept no pixel: its point in the void colour, not another's
                points.setdefault(key if key else VOID_ID, []).append(point)
        drawn = overlay(
            rgb,
            ids,
            config.overlay.alpha,
            config.overlay.outline,
            points={k: np.array(v) for k, v in points.items()},
        )
        with atomic_path(out / OVERLAYS / f"{name}.jpg") as tmp:
            Image.fromarray(drawn).save(tmp, format="JPEG", quality=OVERLAY_QUALITY)
    write_mask(out / MASKS / f"{name}.png", ids)
    return ids
