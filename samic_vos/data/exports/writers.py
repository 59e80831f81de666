"""The writer of each export format (:data:`WRITERS`), :func:`write_export` and
:func:`export_run`: what `samic-vos export` and SAMBOX's export button both run."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from samic_vos.data.exports import EXPORT_FORMATS
from samic_vos.data.exports.coco import write_coco
from samic_vos.data.exports.labelme import write_labelme
from samic_vos.data.exports.sources import ExportSource, open_source
from samic_vos.data.exports.voc import write_voc
from samic_vos.data.exports.yolo import write_yolo

WRITERS: dict[str, Callable[[ExportSource, Path], Path]] = dict(
    zip(EXPORT_FORMATS, (write_coco, write_yolo, write_labelme, write_voc), strict=True)
)


def write_export(source: ExportSource, format: str, out_dir: Path, coco_masks: str = "rle") -> Path:
    """Write ``source`` as ``format`` (one of :data:`EXPORT_FORMATS`) into ``out_dir``, COCO
    masks as ``coco_masks`` (one of :data:`~samic_vos.data.exports.COCO_MASKS`); returns the
    file (coco) or folder written."""
    if format == "coco":
        return write_coco(source, out_dir, coco_masks)
    return WRITERS[format](source, out_dir)


def export_run(source: Path, format: str, out_dir: Path, coco_masks: str = "rle") -> Path:
    """Export the masks of ``source`` (a run folder or a SAMBOX folder) as ``format`` into
    ``out_dir`` (:func:`write_export`); returns the file (coco) or folder written."""
    return write_export(open_source(source), format, out_dir, coco_masks)
