"""The writer of each export format (:data:`WRITERS`), :func:`write_export` and
:func:`export_run`: what `samic-vos export` and SAMBOX's export button both run."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from samic_vos.data.exports import EXPORT_FORMATS
from samic_vos.data.exports.coco import write_coco
from samic_vos.data.exports.labelme import write_labelme
from samic_vos.data.exports.sources import ExportSource, open_source
from samic_vos.data.exports.voc import write_voc
from samic_vos.data.exports.yolo import write_yolo
from samic_vos.runtime.errors import UserError

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


# Where each format keeps one file per image (folder below OUT, suffix; "*": any suffix, as
# YOLO's images keep theirs); coco writes one file.
PER_IMAGE_FILES: dict[str, tuple[tuple[str, str], ...]] = {
    "coco": (),
    "yolo": (("labels", ".txt"), ("images", "*")),
    "labelme": ((".", ".json"),),
    "voc": (
        ("JPEGImages", ".jpg"),
        ("SegmentationClass", ".png"),
        ("SegmentationObject", ".png"),
        ("Annotations", ".xml"),
    ),
}


def check_no_other_export(source: ExportSource, format: str, out_dir: Path) -> None:
    """Refuse an ``out_dir`` that holds per-image files of a ``format`` export of other images
    (another source's, or images this one no longer has): written beside them, the export
    would be a mix of two (YOLO labels of classes its data.yaml does not name, images without
    labels that Ultralytics would take for background, VOC masks its list does not hold).
    Re-exporting the same images into their own export is fine.

    Raises:
        UserError: naming the first such file and how many there are.
    """
    mine = set(source.names())
    others = sorted(
        path
        for folder, suffix in PER_IMAGE_FILES[format]
        if (out_dir / folder).is_dir()
        for path in (out_dir / folder).iterdir()
        if (suffix == "*" or path.suffix == suffix)
        and (path.stem if suffix == "*" else path.name[: -len(suffix)]) not in mine
        and (format != "labelme" or _is_labelme(path))
    )
    if others:
        more = f" and {len(others) - 1} more" if len(others) > 1 else ""
        raise UserError(
            f"{out_dir}: holds a {format} export of other images ({others[0].name}{more}); "
            "export into an empty folder, or remove that export first"
        )


def _is_labelme(path: Path) -> bool:
    """Whether ``path`` is a LabelMe JSON (not a run's or SAMBOX's own JSON)."""
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(document, dict) and {"shapes", "imagePath"} <= document.keys()
