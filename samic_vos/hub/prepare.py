"""`samic-vos data prepare NAME`: the masks a benchmark reads, derived from downloaded archives.

``pascal5i``: ``ROOT/VOC2012/SegmentationClassAug/<image>.png``, the SBD-augmented VOC label maps
PASCAL-5i is tested on (HSNet's ``SegmentationClassAug``), from ``ROOT/VOC2012`` (`data download
voc2012`) and ``ROOT/SBD`` (`data download sbd`): every SBD image's class map
(``SBD/cls/<image>.mat``, MATLAB struct ``GTcls``, field ``Segmentation``: 0 background, ``c``
VOC class ``c``), then every image of VOC's own ``SegmentationClass`` (palette PNGs whose indices
are the classes, 255 the boundary band) over it: where both hold an image, VOC's map is the one
kept. That is the usual "SegmentationClassAug" (12,031 maps from the full archives). Maps are
written as palette PNGs with the VOC colours (index = class, as HSNet reads them).

``coco20i``: ``ROOT/COCO2014/annotations/<split>2014/<image>.png`` (HSNet's layout), from COCO's
``annotations/instances_<split>2014.json`` (`data download coco2014-annotations`), for each split
whose JSON is there: 0 background, ``c + 1`` HSNet's class ``c`` (COCO's categories in ascending
id order), every annotation drawn in the JSON's order, a later one over an earlier one where
they overlap (:meth:`~samic_vos.data.coco.CocoInstances.label_map`).

Resumable and atomic: maps are written one by one (each atomically) into a hidden folder beside
the target (``.<target>.preparing``); a rerun keeps the maps already there and writes the rest;
the folder is renamed to its final name only when complete. A target already there is left
alone; a second process preparing the same target waits for the first, then finds it done.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np

from samic_vos.data.mask_io import write_mask
from samic_vos.data.names import PREPARED_KINDS
from samic_vos.hub.datasets import require_root
from samic_vos.hub.fetch import download_lock
from samic_vos.runtime.atomic import remove_leftovers
from samic_vos.runtime.errors import UserError
from samic_vos.runtime.output_paths import check_writable_dir, reporting_write_errors

log = logging.getLogger(__name__)

COCO_SPLITS = ("val", "train")


def prepare_dataset(name: str, root: str | os.PathLike[str]) -> list[Path]:
    """Build dataset ``name``'s derived masks under ``root`` (see the module docstring);
    returns the folders written (or found complete).

    Raises:
        UserError: an unknown name, or an input missing under ``root`` (naming what to
            download), checked before anything is written.
    """
    if name not in PREPARED_KINDS:
        raise UserError(f"nothing to prepare for '{name}' (known: {', '.join(PREPARED_KINDS)})")
    root = require_root(root)
    if name == "pascal5i":
        return [_prepare_pascal(root)]
    return _prepare_coco(root)


def _prepare_pascal(root: Path) -> Path:
    voc, sbd = root / "VOC2012", root / "SBD"
    for folder, what in ((voc / "SegmentationClass", "voc2012"), (sbd / "cls", "sbd")):
        if not folder.is_dir():
            raise UserError(
                f"{folder}: not found; run `samic-vos data download {what} --root {root}` first"
            )
    target = voc / "SegmentationClassAug"
    own = {p.stem: p for p in sorted((voc / "SegmentationClass").glob("*.png"))}
    augmented = {p.stem: p for p in sorted((sbd / "cls").glob("*.mat"))}

    def label_map(stem: str) -> np.ndarray:
        from samic_vos.data.fold_sets import read_label_map

        if stem in own:
            return read_label_map(own[stem])
        return _sbd_class_map(augmented[stem])

    _build(target, sorted(set(own) | set(augmented)), label_map)
    return target


def _sbd_class_map(path: Path) -> np.ndarray:
    """``uint8 (H, W)``: ``GTcls.Segmentation`` of one SBD ``cls/*.mat`` file."""
    from scipy.io import loadmat

    # loadmat fails on a damaged file in many ways (MatReadError, IndexError, OSError ...):
    # any failure to decode the user's file is a user error.
    try:
        found = loadmat(str(path), squeeze_me=True, struct_as_record=False)["GTcls"]
        labels = np.asarray(found.Segmentation)
    except Exception as err:
        raise UserError(
            f"{path}: not an SBD class map (GTcls.Segmentation: {err}); {_download_sbd_again(path)}"
        ) from err
    if labels.ndim != 2 or labels.size == 0 or labels.min() < 0 or labels.max() > 20:
        raise UserError(
            f"{path}: GTcls.Segmentation is not a 2-D map of VOC classes 0..20; "
            f"{_download_sbd_again(path)}"
        )
    return labels.astype(np.uint8)


def _download_sbd_again(path: Path) -> str:
    """How to replace the SBD folder that holds the damaged ``<root>/SBD/cls/<image>.mat``
    (`data download` only checks a folder already there)."""
    sbd = path.parent.parent
    return f"remove {sbd} and run `samic-vos data download sbd --root {sbd.parent}`"


def _prepare_coco(root: Path) -> list[Path]:
    from samic_vos.data.coco import CocoInstances

    annotations = root / "COCO2014" / "annotations"
    splits = [s for s in COCO_SPLITS if (annotations / f"instances_{s}2014.json").is_file()]
    if not splits:
        raise UserError(
            f"{annotations}/instances_val2014.json: not found; run `samic-vos data download "
            f"coco2014-annotations --root {root}` first"
        )
    written = []
    for split in splits:
        target = annotations / f"{split}2014"
        if target.is_dir():
            written.append(target)
            continue
        instances = CocoInstances(annotations / f"instances_{split}2014.json")
        _build(target, instances.image_names(), instances.label_map)
        written.append(target)
    return written


def _build(target: Path, stems: Iterable[str], label_map: Callable[[str], np.ndarray]) -> None:
    """Write ``label_map(stem)`` as ``<stem>.png`` for every stem into ``target`` (resumable,
    renamed into place when complete; see the module docstring)."""
    if target.is_dir():
        log.info("%s: already prepared", target)
        return
    check_writable_dir(target.parent, "pass another `root`")
    with download_lock(target):  # a second process waits, then finds the target done
        if target.is_dir():
            log.info("%s: prepared by another process", target)
            return
        _build_locked(target, list(stems), label_map)


def _build_locked(target: Path, stems: list[str], label_map: Callable[[str], np.ndarray]) -> None:
    """:func:`_build` once no other process works on ``target``."""
    from samic_vos.runtime.console import bar

    scratch = target.with_name(f".{target.name}.preparing")
    with reporting_write_errors(scratch):
        scratch.mkdir(exist_ok=True)
        remove_leftovers(scratch)  # half-written maps of a killed run
        done = {p.stem for p in scratch.glob("*.png")}
        todo = [s for s in stems if s not in done]
        if done:
            log.info("%s: %d of %d maps already written", target, len(done), len(stems))
        with bar(total=len(stems), initial=len(stems) - len(todo), desc=target.name) as shown:
            for stem in todo:
                write_mask(scratch / f"{stem}.png", label_map(stem))
                shown.update()
        os.rename(scratch, target)
    log.info("%s: %d maps", target, len(stems))
