"""One folder's annotation work, without HTTP: open an image, apply actions, undo, save.

Files in the annotations folder (``ANNOTATIONS_DIR``):

- ``<stem>.sambox.json``: the SAMBOX annotation (version 2) of image ``<stem>.<ext>``; with no
  object, the explicit mark "done, nothing here";
- ``masks/<stem>.<content hash>.png``: its palette mask (pixel = object id), what the page
  showed. Each save writes a mask of a new name, then the JSON naming it (the commit), then
  removes the older mask: a reader never sees a JSON with the mask of another save;
- ``.sambox/sessions/<image>.json``: the session (every click and the undo history);
- ``.sambox/embeddings/<model key>/<sha256>.pt``: SAM embeddings;
- ``.sambox/base/<stem>.<hash>.png``: masks that are objects' own pixels without prompts
  (``import_as="masks"``, or mask-only objects reopened from their saved mask);
- ``.sambox/suggest/``: what SAMIC's suggestions learned (:mod:`.suggest`, when enabled);
- ``.sambox/lock``: held while a server works on the folder (:mod:`.folder_lock`);
- ``.sambox/open.html``: the page the browser was started on (``samic-vos annotate``,
  :func:`~samic_vos.annotate.server.write_opener`);
- ``exports/<format>/``: the page's exports (:meth:`Annotator.export`), each replacing the
  previous one of its format whole.

All are written atomically; what a killed save left (temporary files, a mask no JSON names)
is removed when the next server starts. Only real work is saved: an image merely looked at
writes nothing. The images folder is only read.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from samic_vos.annotate import IMPORT_AS
from samic_vos.annotate.embedding_cache import EmbeddingCache, model_key
from samic_vos.annotate.folder_lock import FolderLock
from samic_vos.annotate.image_folder import PathRefused, list_images, resolve_inside
from samic_vos.annotate.mask_answer import mask_fields
from samic_vos.annotate.prompt_decoding import Composite, PromptDecoder
from samic_vos.annotate.saved_annotation import (
    MASK_FOLDER,
    SUGGESTED_KEY,
    content_name,
    mask_file,
    remove_masks_but,
    sambox_objects,
    state_from_annotation,
    suggested_points,
)
from samic_vos.annotate.session_file import read_session, write_session
from samic_vos.annotate.session_store import (
    ActionError,
    ImageState,
    ObjectState,
    Session,
    Step,
)
from samic_vos.data.exports import COCO_MASKS, EXPORT_FORMATS
from samic_vos.data.exports.sources import open_source
from samic_vos.data.exports.writers import write_export
from samic_vos.data.fewshot_sets import sambox_object_mask
from samic_vos.data.mask_io import (
    DAVIS_PALETTE,
    VOID_ID,
    object_ids,
    read_mask,
    write_mask,
)
from samic_vos.data.sambox_format import (
    SamboxAnnotation,
    annotation_path_for,
    read_annotation,
    write_annotation,
)
from samic_vos.runtime.atomic import (
    atomic_folder,
    remove_leftover_folders,
    remove_leftovers,
    restore_moved_aside,
)
from samic_vos.runtime.console import counted
from samic_vos.runtime.errors import UserError
from samic_vos.sam.segmenter import SamSegmenter, group_points_by_component, prompts_from_mask

logger = logging.getLogger(__name__)

STATE_FOLDER = ".sambox"
BASE_FOLDER = "base"  # .sambox/base/: objects' base masks, content-named
EXPORT_FOLDER = "exports"  # the page's exports: <annotations>/exports/<format>/
PREFETCH = 2  # images encoded ahead in the background (the "next two")
BASE_CACHE = 16  # base masks kept decoded (one uint8 byte per pixel each)


def _check_own_folders(annotations_dir: Path) -> None:
    """Raise :class:`UserError` when SAMBOX would write or remove files outside
    ``annotations_dir`` through a link: ``.sambox`` is a link or holds one, or ``masks`` or
    ``exports`` leads out of the folder. A folder that came from elsewhere (an archive, the
    images folder by default) may hold ``exports -> ..`` (an export would replace ``../coco``
    whole) or ``.sambox/lock -> ../.bashrc`` (the lock would overwrite it)."""
    state = annotations_dir / STATE_FOLDER
    links = [state] if state.is_symlink() else []
    if state.is_dir() and not links:
        for folder, dirs, files in os.walk(state):
            links += [Path(folder, n) for n in (*dirs, *files) if Path(folder, n).is_symlink()]
    for name in (MASK_FOLDER, EXPORT_FOLDER):
        try:
            resolve_inside(annotations_dir, name)
        except PathRefused:
            links.append(annotations_dir / name)
    if links:
        raise UserError(
            f"{links[0]}: a link, and SAMBOX keeps its files in {annotations_dir} itself (it "
            "writes and removes files there); remove the link, or pass another folder with -o"
        )


class UnknownImage(LookupError):
    """A request names an image that is not in the folder (HTTP 404)."""


@dataclass
class _Open:
    """An image being worked on: its name, size (H, W) and session; the (token, id map) of
    the mask last answered (:func:`~samic_vos.annotate.mask_answer.mask_fields`)."""

    name: str
    size: tuple[int, int]
    session: Session
    shown: tuple[str, np.ndarray] | None = None


class Annotator:
    """SAMBOX's work on ``images_dir``, saved in ``annotations_dir``; thread-safe.

    Args:
        images_dir: the images (JPEG/PNG/BMP/TIFF directly in it; read only).
        annotations_dir: where annotations, masks, sessions and embeddings go (created).
        segmenter: SAM; its encoder makes the embeddings, its decoder the masks.
        import_masks: a folder of masks ``<stem>.png`` (palette or grey: pixel = object id)
            for images that have no annotation yet, turned into prompts
            (:func:`~samic_vos.sam.segmenter.prompts_from_mask`) or, with ``import_as="masks"``,
            taken as the objects' masks themselves (no prompts; editable with the brush).
    """

    def __init__(
        self,
        images_dir: Path,
        annotations_dir: Path,
        segmenter: SamSegmenter,
        import_masks: Path | None = None,
        import_as: str = "clicks",
    ) -> None:
        self.images_dir = Path(images_dir)
        self.annotations_dir = Path(annotations_dir)
        self.names = list_images(self.images_dir)
        if import_masks is not None and not Path(import_masks).is_dir():
            raise UserError(f"{import_masks}: mask folder to import not found")
        self.import_masks = None if import_masks is None else Path(import_masks)
        if import_as not in IMPORT_AS:
            raise UserError(f"import_as is '{import_as}'; use one of {', '.join(IMPORT_AS)}")
        self.import_as = import_as
        self.annotations_dir.mkdir(parents=True, exist_ok=True)
        _check_own_folders(self.annotations_dir)
        self._folder_lock = FolderLock(self.annotations_dir)  # FolderInUse: another server
        self.segmenter = segmenter
        state = self.annotations_dir / STATE_FOLDER
        self.embeddings = EmbeddingCache(
            state / "embeddings",
            segmenter,
            model_key(segmenter.sam, f"{segmenter.family}/{segmenter.encoder.dtype}"),
        )
        self._base_folder = state / BASE_FOLDER
        self._read_base_file = functools.lru_cache(maxsize=BASE_CACHE)(read_mask)
        self.decoder = PromptDecoder(segmenter, self._read_base)
        self._lock = threading.RLock()
        # Called with the image's name and session after each save, the lock held (SAMIC's
        # suggestions learn from the saved annotations and count the clicks).
        self.after_save: Callable[[str, Session], None] | None = None
        self._open: dict[str, _Open] = {}
        self._current_embedding: str | None = None
        self._remove_leftovers()
        # Saved images: name -> whether the annotation holds objects (False: "nothing here").
        self._saved: dict[str, bool] = {}
        for name in self.names:
            has_objects = self._saved_status(name)
            if has_objects is not None:
                self._saved[name] = has_objects

    # ----- paths -----------------------------------------------------------------------------

    def image_path(self, name: str) -> Path:
        """The file of image ``name``; :class:`PathRefused` outside the folder,
        :class:`UnknownImage` for a name that is not one of its images."""
        if not isinstance(name, str):
            raise UnknownImage("the image name must be a string")
        path = resolve_inside(self.images_dir, name)
        if name not in self.names:
            raise UnknownImage(f"no image '{name}' in {self.images_dir}")
        return path

    def annotation_path(self, name: str) -> Path:
        return annotation_path_for(self.annotations_dir / name)

    def _session_path(self, name: str) -> Path:
        return self.annotations_dir / STATE_FOLDER / "sessions" / f"{name}.json"

    def _remove_leftovers(self) -> None:
        """Remove the temporary files of writes killed midway (the folder is locked: no other
        server writes here)."""
        state = self.annotations_dir / STATE_FOLDER
        folders = [self.annotations_dir, self.annotations_dir / MASK_FOLDER, state / "sessions"]
        folders += [self.embeddings.folder, self._base_folder]
        for folder in folders:
            for path in remove_leftovers(folder):
                logger.info("removed %s, left by a save that was killed", path)
        exports = self.annotations_dir / EXPORT_FOLDER
        for path in restore_moved_aside(exports):
            logger.info("restored the earlier export %s: the export replacing it was killed", path)
        for path in remove_leftover_folders(exports):
            logger.info("removed %s, left by an export that was killed", path)

    def _saved_status(self, name: str) -> bool | None:
        """Whether image ``name``'s saved annotation holds objects (``None``: none saved, or
        unreadable); masks no annotation names (a killed save's) are removed."""
        path = self.annotation_path(name)
        if not path.is_file():
            remove_masks_but(self.annotations_dir, name, set())
            return None
        try:
            annotation = read_annotation(path)
        except UserError as err:
            logger.warning("ignoring an unreadable annotation: %s", err)
            return None
        named = {annotation.mask_path(o) for o in annotation.objects}
        remove_masks_but(
            self.annotations_dir, name, {Path(os.path.normpath(p)) for p in named if p}
        )
        return bool(annotation.objects)

    # ----- opening ---------------------------------------------------------------------------

    def _use_embedding(self, name: str) -> tuple[int, int]:
        """Set image ``name``'s embedding on the segmenter (lock held); its size (H, W)."""
        embedding = self.embeddings.get(self.image_path(name))
        if self._current_embedding != name:
            self.segmenter.set_embedding(embedding)
            self._current_embedding = name
        return embedding.original_size

    def _initial_state(self, name: str, size: tuple[int, int]) -> tuple[ImageState, bool]:
        """The state an image starts from, and whether it is saved as it is."""
        path = self.annotation_path(name)
        if path.is_file():
            try:
                return self._from_annotation(name, read_annotation(path)), True
            except UserError as err:
                logger.warning("starting %s afresh: %s", name, err)
        if self.import_masks is not None:
            mask = self.import_masks / f"{Path(name).stem}.png"
            if mask.is_file():
                return self._imported_state(name, mask, size), False
        return ImageState(), False

    def _store_base(self, name: str, ids: np.ndarray) -> str:
        """Keep ``ids`` (H, W) uint8 as a base mask of image ``name``; its file name."""
        file_name = content_name(name, ids)
        path = self._base_folder / file_name
        if not path.is_file():
            path.parent.mkdir(parents=True, exist_ok=True)
            write_mask(path, ids)
        return file_name

    def _read_base(self, file_name: str, size: tuple[int, int]) -> np.ndarray:
        """The id map (H, W) uint8 of base mask ``file_name``; empty (with a warning) when the
        file is gone or of another size."""
        try:
            ids = self._read_base_file(self._base_folder / file_name)
        except UserError as err:
            logger.warning("a base mask is missing: %s", err)
            return np.zeros(size, dtype=np.uint8)
        if ids.shape != size:
            logger.warning("the base mask %s is not %dx%d", file_name, size[1], size[0])
            return np.zeros(size, dtype=np.uint8)
        return ids

    def _from_annotation(self, name: str, annotation: SamboxAnnotation) -> ImageState:
        """A saved annotation as a state; an object without prompts (imported or painted),
        or with pixels of its own besides its prompts' (``base``: an imported mask clicked
        on), gets its saved mask as its base (its prompts and edits, applied again, change
        nothing more)."""
        state = state_from_annotation(annotation)
        objects = []
        for obj, saved in zip(state.objects, annotation.objects, strict=True):
            mask = annotation.mask_path(saved)
            if (saved.mask_only or saved.base) and mask is not None:
                ids = np.where(sambox_object_mask(mask, obj.id), obj.id, 0).astype(np.uint8)
                obj = dataclasses.replace(obj, base=self._store_base(name, ids))
            objects.append(obj)
        return ImageState(tuple(objects), state.active)

    def _imported_state(self, name: str, path: Path, size: tuple[int, int]) -> ImageState:
        try:
            ids = read_mask(path)
        except UserError as err:
            logger.warning("not importing %s", err)
            return ImageState()
        if ids.shape != size:
            logger.warning(
                "not importing %s: the mask is %dx%d, the image %dx%d",
                path,
                ids.shape[1],
                ids.shape[0],
                size[1],
                size[0],
            )
            return ImageState()
        if self.import_as == "masks":  # the masks themselves (void, 255, is no object)
            ids = np.where(ids == VOID_ID, 0, ids).astype(np.uint8)
            base = self._store_base(name, ids) if object_ids(ids) else None
            objects = [ObjectState(k, None, ((),), base=base) for k in object_ids(ids)]
        else:
            objects = self._imported_prompts(ids)
        logger.info("imported %d objects of %s from %s", len(objects), name, path)
        first = (objects[0].id, 0) if objects else None
        return ImageState(tuple(objects), first)

    def _imported_prompts(self, ids: np.ndarray) -> list[ObjectState]:
        """The objects of id map ``ids`` (H, W) uint8 as point prompts (their masks' points)."""
        objects = []
        for object_id in object_ids(ids):  # 1..254: void (255) is not an object
            mask = ids == object_id
            points, _ = prompts_from_mask(self.segmenter, mask)
            groups = group_points_by_component(points, mask) if len(points) else []
            instances = tuple(
                tuple(Step("point", (float(x), float(y))) for x, y in group) for group in groups
            )
            if instances:
                objects.append(ObjectState(object_id, None, instances))
        return objects

    def _session(self, name: str) -> _Open:
        """The open image ``name`` (lock held, its embedding set), opened on first use."""
        size = self._use_embedding(name)
        opened = self._open.get(name)
        if opened is not None:
            return opened
        path = self._session_path(name)
        session = None
        if path.is_file():
            try:
                session = read_session(path, size)
            except ValueError as err:
                logger.warning("ignoring the session of %s: %s", name, err)
        if session is None:
            initial, saved = self._initial_state(name, size)
            session = Session(size=size, initial=initial, saved=initial if saved else None)
        opened = _Open(name, size, session)
        self._open[name] = opened
        index = self.names.index(name)
        ahead = self.names[index + 1 : index + 1 + PREFETCH]
        self.embeddings.prefetch(self.image_path(n) for n in ahead)
        return opened

    # ----- the API ---------------------------------------------------------------------------

    def listing(self) -> dict[str, Any]:
        """The images with their saved status, and the progress count (images saved with
        objects or marked "nothing here")."""
        with self._lock:
            return {
                "images": [{"name": n, "saved": self._status(n)} for n in self.names],
                "annotated": len(self._saved),
                "total": len(self.names),
            }

    def view(self, name: str) -> dict[str, Any]:
        """Image ``name``'s state, mask and confidences; the next images start encoding."""
        with self.embeddings.gate.foreground():  # a person waits: the encoding ahead steps aside
            self.embeddings.get(self.image_path(name))  # encoding (slow) holds no lock
            with self._lock:
                return self._view(self._session(name))

    def act(
        self, name: str, action: Any, revision: int | None = None, held: str | None = None
    ) -> dict[str, Any]:
        """Apply ``action`` (see :meth:`~samic_vos.annotate.session_store.Session.act`) to the
        image, if its revision is still ``revision`` (``None``: not checked). ``held``: the
        ``mask_token`` of the mask the page holds, which then gets only the box that changed
        (:func:`~samic_vos.annotate.mask_answer.mask_fields`)."""
        self.image_path(name)
        with self.embeddings.gate.foreground(), self._lock:  # the encoding ahead steps aside
            opened = self._session(name)
            opened.session.check_revision(revision)
            opened.session.act(action)
            self._persist(opened)
            return self._view(opened, held=held)

    def save(
        self,
        name: str,
        revision: int | None = None,
        nothing_here: bool = False,
        held: str | None = None,
    ) -> dict[str, Any]:
        """Save image ``name`` as the page shows it, if its revision is still ``revision``
        (``held``: as for :meth:`act`).

        With objects: the SAMBOX JSON and the palette mask. With none: ``nothing_here`` writes
        the explicit mark (a JSON without objects); otherwise a saved annotation is removed,
        and nothing is written where none was. The view's ``wrote`` says which happened:
        ``"objects"``, ``"nothing_here"``, ``"removed"`` or ``None``.
        """
        self.image_path(name)
        with self._lock:
            opened = self._session(name)
            opened.session.check_revision(revision)
            composite = self._compose(opened)
            wrote = self._write(opened, composite, nothing_here)
            opened.session.mark_saved()
            self._persist(opened)
            if self.after_save is not None:
                self.after_save(name, opened.session)
            return {**self._view(opened, composite, held), "wrote": wrote}

    def export(self, format: Any, coco_masks: Any = "rle") -> dict[str, Any]:
        """Export the saved annotations as ``format`` (one of
        :data:`~samic_vos.data.exports.EXPORT_FORMATS`; COCO masks as ``coco_masks``) into
        ``<annotations>/exports/<format>/`` with `samic-vos export`'s writers, replacing an
        earlier export of that format whole. No save runs meanwhile (each reads its JSON and
        mask as one save wrote them). Returns ``{"format", "folder", "written", "images"}``
        (``written``: the file (coco) or folder, ``images``: the images saved)."""
        if format not in EXPORT_FORMATS:
            raise ActionError(f"'format' must be one of {', '.join(EXPORT_FORMATS)}")
        if coco_masks not in COCO_MASKS:
            raise ActionError(f"'coco_masks' must be one of {', '.join(COCO_MASKS)}")
        with self._lock:
            if not self._saved:
                raise ActionError("nothing is saved yet: save an image (S) before exporting")
            source = open_source(self.annotations_dir)
            folder = self.annotations_dir / EXPORT_FOLDER / format
            folder.parent.mkdir(exist_ok=True)
            with atomic_folder(folder) as tmp:
                written = write_export(source, format, tmp, coco_masks)
            images = counted(len(self._saved), "image")
            logger.info("exported %s as %s to %s", images, format, folder)
            return {
                "format": format,
                "folder": str(folder),
                "written": str(folder / written.relative_to(tmp)),
                "images": len(self._saved),
            }

    @contextlib.contextmanager
    def segmenter_in_use(self) -> Iterator[SamSegmenter]:
        """The segmenter, for other work between clicks (SAMIC's suggestions): no click is
        decoded meanwhile, and the next one sets its image's embedding again."""
        with self._lock:
            self._current_embedding = None
            try:
                yield self.segmenter
            finally:
                self._current_embedding = None

    def close(self) -> None:
        """Stop the background encoder and let the folder's lock go."""
        self.embeddings.close()
        self._folder_lock.release()

    # ----- internals -------------------------------------------------------------------------

    def _status(self, name: str) -> str | None:
        """``"objects"``, ``"nothing_here"`` or ``None`` (nothing saved)."""
        saved = self._saved.get(name)
        return None if saved is None else "objects" if saved else "nothing_here"

    def _persist(self, opened: _Open) -> None:
        write_session(self._session_path(opened.name), opened.name, opened.session)

    def _compose(self, opened: _Open) -> Composite:
        return self.decoder.compose(opened.name, opened.session.state, opened.size)

    def _write(self, opened: _Open, composite: Composite, nothing_here: bool) -> str | None:
        name = opened.name
        json_path = self.annotation_path(name)
        mask_path = mask_file(self.annotations_dir, name, composite.ids)
        mask_ref = os.path.relpath(mask_path, json_path.parent).replace(os.sep, "/")
        objects = sambox_objects(opened.session.state, composite, mask_ref)
        if objects and nothing_here:
            raise ActionError(f"{name} has objects: reset it (R) before marking it 'nothing here'")
        if not objects and not nothing_here:
            if not json_path.exists():
                return None
            json_path.unlink()  # every object was removed: the image is not annotated
            remove_masks_but(self.annotations_dir, name, set())
            self._saved.pop(name, None)
            return "removed"
        image_ref = os.path.relpath(self.image_path(name), json_path.parent)
        annotation = SamboxAnnotation(
            image=image_ref.replace(os.sep, "/"),
            image_size=opened.size,
            objects=objects,
            meta={"tool": "samic-vos annotate", "saved": time.strftime("%Y-%m-%dT%H:%M:%S%z")},
        )
        suggested = suggested_points(opened.session.state)
        if objects and suggested:
            annotation.meta[SUGGESTED_KEY] = suggested
        if objects:  # a mask of a new name first: the JSON, written next, commits the save
            mask_path.parent.mkdir(parents=True, exist_ok=True)
            write_mask(mask_path, composite.ids)
        write_annotation(json_path, annotation)
        remove_masks_but(self.annotations_dir, name, {mask_path} if objects else set())
        self._saved[name] = bool(objects)
        return "objects" if objects else "nothing_here"

    def _view(
        self, opened: _Open, composite: Composite | None = None, held: str | None = None
    ) -> dict[str, Any]:
        started = time.perf_counter()
        composite = composite or self._compose(opened)
        state, session = opened.session.state, opened.session
        active = state.active
        active_iou = None
        if active is not None:
            obj = state.object(active[0])
            active_iou = composite.objects[obj.id].instance_ious[active[1]]
        decode_ms = (time.perf_counter() - started) * 1000
        mask, opened.shown = mask_fields(composite.ids, opened.shown, held)
        for other in self._open.values():  # one id map held (2 MiB at 1080p), not one per image
            if other is not opened:
                other.shown = None
        return {
            "image": opened.name,
            "size": list(opened.size),
            "objects": [
                {
                    "id": o.id,
                    "label": o.label,
                    "color": DAVIS_PALETTE[o.id].tolist(),
                    "confidence": composite.objects[o.id].confidence,
                    "instances": [
                        {
                            "steps": [_step_dict(s) for s in steps],
                            "iou": composite.objects[o.id].instance_ious[k],
                        }
                        for k, steps in enumerate(o.instances)
                    ],
                    "edits": len(o.edits),
                }
                for o in state.objects
            ],
            "active": None if active is None else {"object": active[0], "instance": active[1]},
            "confidence": None if active_iou is None else float(np.clip(active_iou, 0, 1)),
            "iou": active_iou,
            **mask,
            "can_undo": session.can_undo,
            "can_redo": session.can_redo,
            "dirty": session.dirty,
            "revision": session.revision,
            "saved": self._status(opened.name),
            "annotated": len(self._saved),
            "total": len(self.names),
            "decode_ms": decode_ms,
        }


def _step_dict(step: Step) -> dict[str, Any]:
    """A step as the page gets it; ``suggested`` only on a point SAMIC placed (drawn apart)."""
    shown = {"kind": step.kind, "coords": list(step.coords), "positive": step.positive}
    return {**shown, "suggested": True} if step.suggested else shown
