"""What an exporter reads: the masks of a run folder or a SAMBOX folder, one image at a time.

Sources (:func:`open_source` recognises them):

- a `segment` run (``run.json`` command ``segment``): ``masks/<name>.png`` and the lines of
  ``prompts.jsonl`` (their order is the images' order); categories are the references' class
  ids (``class k``); one object per class present in the mask, or with ``instances`` one per
  instance id, its category the class that holds it; its score is SAM's confidence in the class
  mask (the only score a line keeps, shared by the class's instances);
- a `track` run (command ``track``): one image per frame, named ``<video>__<frame>``, with the
  video's name (its folder's) and the frame's index; categories are the object ids
  (``object k``), scores SAM's confidence per object and frame; a run of a frame folder that
  is still in place gives each frame its image file (COCO ``<video>/<frame>.jpg``, LabelMe's
  ``imagePath``); a video file's frames are no files (``<video>/<frame>``), but where the
  video is still in place, unchanged (its size and hash as the run recorded them), each frame
  can be decoded (:attr:`ExportItem.frame`) for the formats that carry images;
- a `track` collection (command ``track-collection``): its videos' runs, in the collection's
  order;
- a SAMBOX folder (``*.sambox.json`` with palette masks): one image per annotation, objects
  from their saved masks (those with at least one pixel), categories from their labels
  (``object k`` when unlabelled), scores their ``sam_confidence``.

Only one image's masks are held at a time (memory flat in the size of the collection).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from samic_vos.data.fewshot_sets import sambox_object_mask
from samic_vos.data.frame_source import Frame, image_files, open_frames
from samic_vos.data.mask_io import read_mask
from samic_vos.data.sambox_format import SUFFIX, find_annotations, read_annotation
from samic_vos.runtime.errors import UserError
from samic_vos.runtime.runs import MANIFEST, fingerprint

PROMPTS = "prompts.jsonl"  # the prompts log of `track` and `segment` runs (one line per image)
MASKS_DIR = "masks"
COLLECTION = "track-collection"  # the command of a collection of track runs


@dataclass
class ExportObject:
    """One object of an image: its pixels are ``ids == id``."""

    id: int  # its value in the image's id map, 1..254
    category: int  # its category id (a key of ExportSource.categories)
    score: float | None = None  # SAM's confidence, in [0, 1], where known


@dataclass
class ExportItem:
    """One image: its (H, W) uint8 id map and objects.

    ``name``: unique in the source and usable as a file stem (flat); ``file_name``: the image as
    COCO names it; ``image``: its file where known; ``video`` and ``frame_index``: the video's
    name and the frame's index (0-based) for the frames of a video; ``frame``: for a frame of a
    video file still in place, decodes it ((H, W, 3) uint8 RGB; ``None`` where the video has
    changed since the run); the frames of one video are decoded in one pass, so call it in
    item order.
    """

    name: str
    file_name: str
    ids: np.ndarray
    objects: list[ExportObject]
    image: Path | None = None
    video: str | None = None
    frame_index: int | None = None
    frame: Callable[[], np.ndarray | None] | None = None


@dataclass
class ExportSource:
    """A source's categories (id → name, sorted by id) and its images, streamed in order;
    ``names`` gives the images' names (:attr:`ExportItem.name`) in the same order without
    reading a mask."""

    categories: dict[int, str]
    items: Callable[[], Iterator[ExportItem]]
    names: Callable[[], Iterator[str]]


def open_source(folder: Path) -> ExportSource:
    """The source of ``folder`` (see the module docstring).

    Raises:
        UserError: ``folder`` is none of them, or a run that is not finished.
    """
    if not folder.is_dir():
        raise UserError(f"{folder}: not found; pass a segment or track output or a SAMBOX folder")
    manifest = _manifest(folder)
    if manifest is not None:
        command = manifest.get("command")
        if command in ("segment", "track", COLLECTION) and not manifest.get("finished"):
            raise UserError(
                f"{folder}: this {command} run is not finished; rerun it (or --merge its "
                "shards) before exporting it"
            )
        if command == "segment":
            return _segment_source(folder, bool(manifest["config"].get("instances")))
        if command == "track":
            return videos_source([folder])
        if command == COLLECTION:
            return videos_source([folder / name for name in manifest["inputs"]["videos"]])
        raise UserError(f"{folder}: a '{command}' run has no masks to export")
    if find_annotations(folder):
        return _sambox_source(folder)
    raise UserError(
        f"{folder}: neither a segment or track output (run.json) nor a SAMBOX folder "
        f"(*{SUFFIX}); pass one of them"
    )


def _manifest(folder: Path) -> dict[str, Any] | None:
    path = folder / MANIFEST
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except ValueError as err:
        raise UserError(f"{path}: damaged run manifest ({err})") from None


def _lines(folder: Path) -> Iterator[dict[str, Any]]:
    """The complete lines of ``folder/prompts.jsonl``, read one at a time."""
    path = folder / PROMPTS
    if not path.is_file():
        raise UserError(f"{path}: not found; the run has not written any result yet")
    with open(path, "rb") as handle:
        for line in handle:
            if line.endswith(b"\n"):
                yield json.loads(line)


def _run_mask(folder: Path, name: str) -> np.ndarray:
    path = folder / MASKS_DIR / f"{name}.png"
    if not path.is_file():
        raise UserError(f"{path}: missing; finish the run before exporting it")
    return read_mask(path)


def _segment_source(folder: Path, instances: bool) -> ExportSource:
    first = next(_lines(folder), None)
    classes = [int(k) for k in (first or {}).get("classes", {})]

    def items() -> Iterator[ExportItem]:
        for line in _lines(folder):
            yield segment_item(line, _run_mask(folder, line["image"]), instances)

    def names() -> Iterator[str]:
        return (line["image"] for line in _lines(folder))

    return ExportSource(segment_categories(classes), items, names)


def segment_categories(classes: Iterable[int]) -> dict[int, str]:
    """`segment`'s categories: its reference classes, ``class k``, by id."""
    return {k: f"class {k}" for k in sorted(classes)}


def segment_item(line: dict[str, Any], ids: np.ndarray, instances: bool) -> ExportItem:
    """One `segment` target from its prompts line and its (H, W) uint8 mask (class ids, or
    instance ids with ``instances``)."""
    present = set(np.unique(ids).tolist())
    objects = []
    for key, found in line["classes"].items():
        score = found.get("confidence")
        members = found["instances"] if instances else [int(key)]
        for member in dict.fromkeys(members):
            if member in present and member:
                objects.append(ExportObject(member, int(key), score))
    objects.sort(key=lambda o: o.id)
    return ExportItem(line["image"], line["path"], ids, objects, Path(line["path"]))


def videos_source(runs: list[Path]) -> ExportSource:
    """The frames of finished `track` runs (each folder one video, named after it), in order;
    categories ``object k`` for every object id their prompts logs name."""
    ids: set[int] = set()
    for run in runs:
        for line in _lines(run):
            ids.update(int(k) for k in line["objects"])

    def items() -> Iterator[ExportItem]:
        for run in runs:
            video = run.name
            files, decoder = _run_images(run)
            for index, line in enumerate(_lines(run)):
                frame = line["frame"]
                image = files.get(frame)
                file_name = f"{video}/{frame}{image.suffix if image else ''}"
                mask = _run_mask(run, frame)
                present = set(np.unique(mask).tolist())
                objects = [
                    ExportObject(int(k), int(k), found.get("confidence"))
                    for k, found in sorted(line["objects"].items(), key=lambda kv: int(kv[0]))
                    if int(k) in present
                ]
                decode = partial(decoder.frame, frame) if decoder is not None else None
                yield ExportItem(
                    f"{video}__{frame}", file_name, mask, objects, image, video, index, decode
                )

    def names() -> Iterator[str]:
        return (f"{run.name}__{line['frame']}" for run in runs for line in _lines(run))

    return ExportSource({k: f"object {k}" for k in sorted(ids)}, items, names)


def _run_images(run: Path) -> tuple[dict[str, Path], _VideoDecoder | None]:
    """Where the frames of the `track` run ``run`` are, from its manifest (read once): each
    frame's image file (frame name → file) where its input was a frame folder still in place,
    or the decoder of its video file still in place; neither where the input has moved."""
    manifest = _manifest(run) or {}
    recorded = manifest.get("inputs", {}).get("video") or {}
    video = recorded.get("path")
    if isinstance(video, str) and Path(video).is_dir():
        return {file.stem: file for file in image_files(Path(video), noun="frame")}, None
    if isinstance(video, str) and Path(video).is_file():
        backend = manifest.get("config", {}).get("backend", "auto")
        return {}, _VideoDecoder(Path(video), recorded, backend)
    return {}, None


class _VideoDecoder:
    """The frames of a `track` run's video file, decoded forward on demand: the file is checked
    (its size and hash as the run recorded them) and opened at the first :meth:`frame`."""

    def __init__(self, path: Path, recorded: dict[str, Any], backend: str) -> None:
        self.path, self.recorded, self.backend = path, recorded, backend
        self._frames: Iterator[Frame] | None = None
        self._current: Frame | None = None
        self._changed = False

    def frame(self, name: str) -> np.ndarray | None:
        """Frame ``name``'s (H, W, 3) uint8 RGB pixels (``name`` not before the last asked);
        ``None`` where the video has changed since the run.

        Raises:
            UserError: the video cannot be decoded, or ends before that frame.
        """
        if self._changed:
            return None
        if self._frames is None:
            if fingerprint(self.path) != self.recorded:
                self._changed = True
                return None
            self._frames = iter(open_frames(self.path, self.backend))
        while self._current is None or self._current.name != name:
            self._current = next(self._frames, None)
            if self._current is None:
                raise UserError(f"{self.path}: has no frame '{name}'; it is not the run's video")
        return self._current.rgb


def _sambox_source(folder: Path) -> ExportSource:
    labels: dict[str, int] = {}
    for path in find_annotations(folder):
        for obj in read_annotation(path).objects:
            label = obj.label or f"object {obj.id}"
            labels.setdefault(label, len(labels) + 1)

    def items() -> Iterator[ExportItem]:
        for path in find_annotations(folder):
            annotation = read_annotation(path)
            ids = np.zeros(annotation.image_size, dtype=np.uint8)
            objects = []
            for obj in annotation.objects:
                mask_path = annotation.mask_path(obj)
                if mask_path is None:
                    continue  # clicks only: no pixels to export
                ids[sambox_object_mask(mask_path, obj.id)] = obj.id
                label = obj.label or f"object {obj.id}"
                objects.append(ExportObject(obj.id, labels[label], obj.sam_confidence))
            # an object whose saved mask is empty (or wholly covered by a later one) has no
            # pixel to export, as in `segment` and `track` outputs
            present = set(np.unique(ids).tolist())
            objects = [o for o in objects if o.id in present]
            image = annotation.image_path(path)
            name = _sambox_name(folder, path)
            yield ExportItem(name, image.relative_to(folder).as_posix(), ids, objects, image)

    def names() -> Iterator[str]:
        return (_sambox_name(folder, path) for path in find_annotations(folder))

    return ExportSource({v: k for k, v in labels.items()}, items, names)


def _sambox_name(folder: Path, path: Path) -> str:
    """The export name of the annotation ``path`` of a SAMBOX ``folder``: its path below the
    folder without the suffix, ``/`` as ``__``."""
    return path.relative_to(folder).as_posix()[: -len(SUFFIX)].replace("/", "__")
