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
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from samic_vos.api.images import ImageSegmenter
from samic_vos.api.models import job_models
from samic_vos.data.davis import read_image
from samic_vos.data.mask_io import VOID_ID, write_mask
from samic_vos.inference.fewshot_engine import ImageResult
from samic_vos.inference.prompter import Reference
from samic_vos.inference.prompts_log import (
    IMAGE_KEYS,
    PROMPTS,
    complete_records,
    image_record,
    keep_first,
)
from samic_vos.jobs.segment import SegmentConfig
from samic_vos.jobs.segment_inputs import (
    ReferenceFile,
    checked_inputs,
    load_mask_reference,
    load_sambox_reference,
    target_names,
)
from samic_vos.reports.render import overlay
from samic_vos.runtime.atomic import JsonLinesWriter, atomic_path
from samic_vos.runtime.config import config_to_dict, save_config
from samic_vos.runtime.console import bar
from samic_vos.runtime.errors import UserError
from samic_vos.runtime.output_paths import check_writable_dir, removing_new_folders
from samic_vos.runtime.runs import RunManifest, RunState, fingerprint, open_run, write_manifest
from samic_vos.runtime.version import __version__
from samic_vos.sam.segmenter import SamSegmenter
from samic_vos.training.adapted import ADAPTATION_STATE, ADAPTED

log = logging.getLogger(__name__)

MASKS, OVERLAYS = "masks", "overlays"
# What a segment run writes in OUT (removed by `force`).
OUTPUTS = (MASKS, OVERLAYS, PROMPTS, "config.yaml", ADAPTED, ADAPTATION_STATE)
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


def run_segment(
    inputs: SegmentInputs, config: SegmentConfig, progress: bool = True
) -> SegmentSummary:
    """Run (or continue) the whole job; see the module docstring."""
    out = inputs.out_dir
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
    for name in (MASKS, OVERLAYS):
        check_writable_dir(out / name)
    mask_refs = [load_mask_reference(ref) for ref in refs if ref.sambox is None]
    _report_shared(refs, targets)

    models, ran = job_models(
        config, inputs.sam_checkpoint, inputs.samic_checkpoint, inputs.backbone_weights
    )
    segmenter = ImageSegmenter(
        models, ran.tracker, adaptation=ran.adaptation, adaptation_dir=out, progress=progress
    )
    try:
        segmenter.set_references(_references(refs, mask_refs, models.segmenter))
    except ValueError as err:
        raise UserError(f"references: {err}") from err

    manifest = RunManifest(
        command="segment",
        inputs={
            "references": [_reference_fingerprint(ref) for ref in refs],
            "targets": {name: str(path) for name, path in zip(names, targets, strict=True)},
            "samic": fingerprint(inputs.samic_checkpoint),
            "sam": fingerprint(inputs.sam_checkpoint),
            "backbone_weights": fingerprint(inputs.backbone_weights),
        },
        config=config_to_dict(ran),
    )
    state = open_run(out, manifest, force=inputs.force, outputs=OUTPUTS)
    if state == "finished":
        count = len(complete_records(out / PROMPTS, IMAGE_KEYS, "target image"))
        log.info("%s: this run is finished (%d targets); pass `force` to redo it", out, count)
        return SegmentSummary(len(targets), count, 0, [], state, out)
    with removing_new_folders(out):
        out.mkdir(parents=True, exist_ok=True)
        write_manifest(out, manifest)
        samic = models.samic_source(f"adapted on the references, saved as {out / ADAPTED}")
        save_config(ran, out / "config.yaml", version=__version__, samic=samic)
        segmenter.adapt(resume=state == "resume", record=ran)
        (out / MASKS).mkdir(exist_ok=True)
        if ran.overlays:
            (out / OVERLAYS).mkdir(exist_ok=True)
        written, computed, unreadable = _segment_all(
            segmenter, targets, names, out, ran, resume=state == "resume", progress=progress
        )
    if not unreadable:
        manifest.finished = True
        write_manifest(out, manifest)
    for _, reason in unreadable:
        log.error("%s; this target has no mask", reason)
    return SegmentSummary(len(targets), written, computed, unreadable, state, out)


def _report_shared(refs: list[ReferenceFile], targets: list[Path]) -> None:
    """Say which targets are also reference images (allowed: they are segmented too)."""
    images = {ref.image.resolve() for ref in refs}
    for target in targets:
        if target in images:
            log.info("%s: also a reference image; segmented as a target too", target)


def _references(
    refs: list[ReferenceFile],
    mask_refs: list[tuple[np.ndarray, np.ndarray]],
    segmenter: SamSegmenter,
) -> list[Reference]:
    """The engine's references, in the order given (image + mask pairs, then SAMBOX)."""
    pairs = iter(mask_refs)
    out = []
    for ref in refs:
        if ref.sambox is None:
            out.append(Reference(*next(pairs)))
        else:
            rgb, ids, points = load_sambox_reference(ref, segmenter)
            out.append(Reference(rgb, ids, points=points))
    return out


def _reference_fingerprint(ref: ReferenceFile) -> dict[str, Any]:
    if ref.sambox is not None:
        return {"sambox": fingerprint(ref.sambox), "image": fingerprint(ref.image)}
    return {"image": fingerprint(ref.image), "mask": fingerprint(ref.mask)}


def _batches(items: list[tuple[Path, str]], size: int) -> Iterator[list[tuple[Path, str]]]:
    """``items`` (path, name), all targets in order, in batches of ``size``: the same batches
    in every run, so a continued run decodes a batch with the same images as an uninterrupted
    one (the backbone's results may depend on what else is in its batch)."""
    for start in range(0, len(items), size):
        yield list(items[start : start + size])


def _segment_all(
    segmenter: ImageSegmenter,
    targets: Sequence[Path],
    names: Sequence[str],
    out: Path,
    config: SegmentConfig,
    *,
    resume: bool,
    progress: bool,
) -> tuple[int, int, list[tuple[Path, str]]]:
    """Segment every target not finished yet; returns (finished in all, computed now,
    unreadable targets with the reason)."""
    prompts_path = out / PROMPTS
    records = complete_records(prompts_path, IMAGE_KEYS, "target image") if resume else []
    done = 0
    while done < len(records) and _finished(out, records[done]["image"], config):
        done += 1
    if resume and prompts_path.is_file():
        keep_first(prompts_path, done)
        if done:
            log.info("%s: continuing after its %d finished targets", out, done)
    finished = {record["image"] for record in records[:done]}
    unreadable: list[tuple[Path, str]] = []
    computed = 0
    with JsonLinesWriter(prompts_path, append=done > 0) as prompts:
        images_bar = bar(
            total=len(targets), initial=done, desc="segment", unit="image", disable=not progress
        )
        for batch in _batches(list(zip(targets, names, strict=True)), config.tracker.batch_size):
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
                _write(out, name, rgb, result, config)
                prompts.write(image_record(name, path, result))
                computed += 1
                images_bar.update(1)
        images_bar.close()
    return done + computed, computed, unreadable


def _finished(out: Path, name: str, config: SegmentConfig) -> bool:
    """Whether target ``name``'s files are all there (its prompts line is)."""
    if not (out / MASKS / f"{name}.png").is_file():
        return False
    return not config.overlays or (out / OVERLAYS / f"{name}.jpg").is_file()


def _write(out: Path, name: str, rgb: np.ndarray, result: ImageResult, config: SegmentConfig):
    """One target's mask (and overlay, points drawn in their class or instance colour)."""
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
