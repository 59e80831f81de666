"""One video's tracker: :class:`VideoTracker`, Cutie-style ``step(frame, mask=None)``, and
:meth:`VideoTracker.track` over a whole video file or frame folder.

Causal: frame t−1, with its accepted prompts, is the reference for frame t (and frame 0, where
an object was given, a second one). A mask gives objects on a frame: on the first frame, and
wherever objects start or restart. ``samic-vos track`` runs the same tracker and the same mask
checks (:func:`given_masks`), writing files as it goes (:func:`samic_vos.jobs.track.track_sequence`,
which resumes); :meth:`VideoTracker.track` yields the results and writes nothing.

Coordinates: points are float (x, y) frame pixels, x right, y down, pixel centres at integers.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

import numpy as np
from PIL import Image

from samic_vos.api.inputs import ids_array, is_path, rgb_array
from samic_vos.api.models import PathLike
from samic_vos.api.session import Session
from samic_vos.data.frame_source import FrameSource, image_files, open_frames
from samic_vos.data.mask_io import binary_mask_hint, object_ids, read_mask
from samic_vos.inference.prompters import build_prompter
from samic_vos.inference.tracker import CausalTracker, FrameResult, ObjectResult
from samic_vos.runtime.errors import UserError, size_text
from samic_vos.sam.run_ahead import embedded_frames
from samic_vos.sam.segmenter import ImageEmbedding

Mask = np.ndarray | Path


class TrackedFrame(NamedTuple):
    """One frame of :meth:`VideoTracker.track`, unpacked as ``(index, ids, prompts)``.

    Attributes:
        index: the frame's index in the video, from 0.
        ids: (H, W) uint8 id map: 0 background, k object k.
        prompts: per object id, its (x, y) points, their heat values and SAM's confidence
            (:class:`~samic_vos.inference.tracker.ObjectResult`).
    """

    index: int
    ids: np.ndarray
    prompts: dict[int, ObjectResult]


class VideoTracker(Session):
    """Tracks the objects of one video, one frame at a time (:meth:`reset` for the next).

    Build it on loaded models (``VideoTracker(load_models(...))``, models shared by many
    videos) or in one call (``VideoTracker.load(sam_model=..., samic=...)``); the settings are
    :class:`~samic_vos.api.session.Session`'s. Without a SAMIC checkpoint, the network is
    adapted on the first frame and its mask when the first mask comes (:meth:`adapt`).

    Attributes:
        tracker: the underlying causal tracker (per-object state; ``restore`` resumes).
    """

    tracker: CausalTracker

    def _build(self) -> None:
        models = self.models
        prompter = build_prompter(
            models.prompter, models.segmenter, self.config, self.net, models.device
        )
        self.tracker = CausalTracker(prompter, models.segmenter, self.config)

    def reset(self) -> None:
        """Forget the video tracked so far (its objects, their references and, without a SAMIC
        checkpoint, the network adapted on its first frame): the next :meth:`step` or
        :meth:`track` starts another video, as on a new ``VideoTracker`` with these settings.
        """
        self.net = self.models.network()
        self.adapted = not self.models.adapts
        self._build()

    def step(
        self, frame: np.ndarray | Image.Image, mask: np.ndarray | Image.Image | None = None
    ) -> FrameResult:
        """Track the next frame.

        Args:
            frame: (H, W, 3) uint8 RGB (or a Pillow image, converted to RGB); every frame of a
                video has the same size.
            mask: (H, W) id map of objects given on this frame: uint8 (or bool, or any integer
                dtype with values 0..255; a Pillow image is read as ``read_mask`` reads a
                file), 0 background, 255 void ignored, 1..254 objects; a given object's mask
                is taken as is and (re)starts it there. The first frame needs one.

        Returns:
            ``ids`` (H, W) uint8 id map, and per object its (N, 2) float32 (x, y) points,
            their heat values and SAM's confidence in [0, 1]. An object whose heat map has no
            peak gets (0, 2) points, confidence 0 and no pixel in ``ids``; it stays in
            ``objects`` with its last good reference, and comes back where it is found again
            (or given by a mask).

        Raises:
            UserError: a frame or mask of another form (a path, a float or (3, H, W) image),
                of another size than the video's frames, ids outside 0..255, no object on the
                first frame.
        """
        rgb = _frame(frame)
        seen = self.tracker.image_size
        if seen is not None and seen != rgb.shape[:2]:
            raise UserError(
                f"`frame` is {size_text(rgb.shape)} but this video's frames are "
                f"{size_text(seen)}; a VideoTracker tracks one video at a time: reset() it for "
                "another video"
            )
        ids = None if mask is None else _frame_mask(mask, rgb)
        if not self.tracker.objects and (ids is None or not object_ids(ids)):
            hint = binary_mask_hint([ids]) if ids is not None else ""
            raise UserError(
                "`mask`: the first frame needs a mask with at least one object (ids 1..254; "
                f"0 is background, 255 void){hint}"
            )
        return self._step(rgb, ids, None)

    def adapt(
        self,
        frame: np.ndarray | Image.Image,
        mask: np.ndarray | Image.Image,
        *,
        resume: bool = False,
        record: object = None,
    ) -> None:
        """Adapt SAMIC on the first frame ((H, W, 3) uint8) and its (H, W) uint8 id map, as
        the first :meth:`step` with a mask does (nothing with a trained checkpoint).

        ``resume``: reuse the network ``adaptation_dir`` holds (a resumed job's); ``record``:
        the settings saved with it (default: the tracker's and the adaptation's).
        """
        rgb = _frame(frame)
        ids = _frame_mask(mask, rgb)
        self._adapt(lambda: [(rgb, ids)], what="frame 0", resume=resume, record=record)

    def track(
        self,
        video: PathLike,
        first_mask: np.ndarray | Image.Image | PathLike | None = None,
        *,
        masks_dir: PathLike | None = None,
        backend: str = "auto",
    ) -> Iterator[TrackedFrame]:
        """Track every frame of a video file or a frame folder, yielding as it goes.

        Args:
            video: a video file (mp4, ...) or a folder of JPEG/PNG frames (name order).
            first_mask: frame 0's objects: a mask PNG (palette, 0/255 or 0/1) or an (H, W)
                id map (uint8, bool, or integers 0..255, as :meth:`step` takes); objects
                numbered 1..K; of the frame as players show it (a phone video's frames are
                turned upright, :mod:`samic_vos.data.frame_source`).
            masks_dir: masks of later frames (and of frame 0), PNGs named like the frames
                (``00005.png``; video frames are named by their index, 5 digits): their
                objects start or restart there.
            backend: frame decoding, ``auto``, ``decord``, ``pyav`` or ``folder``.

        Yields:
            ``(index, ids, prompts)`` per frame (:class:`TrackedFrame`). Frame t+1 is decoded
            (on CUDA, also encoded) in a worker thread while frame t is tracked.

        Raises:
            UserError: when the iteration starts: a ``video`` that is not a path (frames in
                memory go to :meth:`step`), a missing video or mask, a mask that names
                no frame or has the wrong size, ids that are not 1..K; while it runs: a
                frame that cannot be decoded.
        """
        if not is_path(video):
            raise UserError(
                f"`video`: expected a video file or frame folder, got a {type(video).__name__}; "
                "for frames in memory call step(frame, mask) per frame"
            )
        if self.tracker.frame_index >= 0:
            raise RuntimeError(
                "track() runs a whole video on a new VideoTracker; make one, or reset() this one"
            )
        first = Path(first_mask) if is_path(first_mask) else first_mask
        folder = Path(masks_dir) if masks_dir is not None else None
        with open_frames(video, backend=backend) as frames:
            given = given_masks(frames, Path(video), first, folder)  # type: ignore[arg-type]
            encoded = embedded_frames(frames, self.models.segmenter, ahead=self.models.run_ahead)
            with contextlib.closing(encoded):
                for frame, embedding in encoded:
                    mask = given.get(frame.index)
                    if isinstance(mask, Path):
                        mask = read_mask(mask)
                    result = self._step(frame.rgb, mask, embedding)
                    yield TrackedFrame(frame.index, result.ids, result.objects)

    def _step(
        self, rgb: np.ndarray, mask: np.ndarray | None, embedding: ImageEmbedding | None
    ) -> FrameResult:
        if not self.adapted and mask is not None:
            self.adapt(rgb, mask)
        with self.models.lock:  # SAM's current frame is shared by every user of the models
            return self.tracker.step(rgb, mask, embedding=embedding)


def _frame(frame: object) -> np.ndarray:
    """:meth:`VideoTracker.step`'s or :meth:`~VideoTracker.adapt`'s ``frame``, checked: (H, W, 3)
    uint8 RGB."""
    return rgb_array(frame, "`frame`", paths="read it first: samic_vos.read_image(path)")


def _frame_mask(mask: object, rgb: np.ndarray) -> np.ndarray:
    """The ``mask`` given with the frame ``rgb``, checked: an (H, W) uint8 id map of its size."""
    ids = ids_array(mask, "`mask`", paths="read it first: samic_vos.read_mask(path)")
    if ids.shape != rgb.shape[:2]:
        raise UserError(
            f"`mask` is {size_text(ids.shape)} but the frame is {size_text(rgb.shape)}; "
            "pass the mask of this frame"
        )
    return ids


def given_masks(
    frames: FrameSource, video: Path, first_mask: Mask | None, masks_dir: Path | None
) -> dict[int, Mask]:
    """Frame index → mask (a file, or an (H, W) uint8 id map) of every given mask, each
    checked (ids, size) here; ``first_mask`` is frame 0's, ``masks_dir`` holds PNGs named like
    the frames (``.png`` in any case; hidden files, such as macOS's ``._*``, skipped; a JPEG
    there is read like a PNG rather than ignored, and refused where its compression left values
    that are not exactly binary).

    Raises:
        UserError: a mask that names no frame, is unreadable, has the wrong size or no
            object; no mask for the first frame; object ids that are not 1..K.
    """
    names = frames.names
    index = {name: i for i, name in enumerate(names)}
    found: dict[int, Mask] = {}
    if masks_dir is not None:
        if not masks_dir.is_dir():
            raise UserError(f"{masks_dir}: mask folder not found (`masks_dir`)")
        for path in image_files(masks_dir, noun="mask"):  # JPEGs too: refused, not ignored
            if path.stem not in index:
                raise UserError(
                    f"{path}: names no frame of {video} (frames are named "
                    f"{names[0]} ... {names[-1]}); name masks like the frames"
                )
            found[index[path.stem]] = path
    if first_mask is not None:
        if not isinstance(first_mask, Path):  # an array: uint8 ids from bool, int, a PIL image
            first_mask = ids_array(first_mask, "`first_mask`", paths="")
        if 0 in found and not _same_file(found[0], first_mask):
            raise UserError(
                f"{_label(first_mask)}: the mask folder also has a mask of the first frame "
                f"({found[0]}); give one of them"
            )
        found[0] = first_mask
    if 0 not in found:
        raise UserError(
            f"{video}: no mask for the first frame ({names[0]}); pass `first_mask` or "
            f"put {names[0]}.png in the mask folder"
        )
    ids: set[int] = set()
    for frame, given in sorted(found.items()):
        mask = read_mask(given) if isinstance(given, Path) else given
        if mask.shape != frames.size:
            turned = mask.shape == frames.size[::-1]  # drawn on a frame stored turned?
            raise UserError(
                f"{_label(given)}: mask is {size_text(mask.shape)} but the video frames are "
                f"{size_text(frames.size)}; pass the mask of frame {names[frame]}"
                + (" as players show it, upright" if turned else "")
            )
        present = object_ids(mask)
        if not present:
            raise UserError(
                f"{_label(given)}: the mask has no object (only background or void)"
                f"{binary_mask_hint([mask])}"
            )
        ids.update(present)
    if sorted(ids) != list(range(1, len(ids) + 1)):
        shown = ", ".join(map(str, sorted(ids)))
        where = _label(found[0])
        if len(found) > 1:  # the gap may span files: name where every mask came from
            given = [_label(m) for m in (first_mask, masks_dir) if m is not None]
            where = f"{' and '.join(given)}: the {len(found)} masks together"
        raise UserError(
            f"{where}: object ids are {shown}; masks must number objects 1..K "
            f"without gaps (as DAVIS does), so that they are tracked and scored as "
            f"1..{len(ids)}"
        )
    return dict(sorted(found.items()))


def _same_file(a: Mask, b: Mask) -> bool:
    return isinstance(a, Path) and isinstance(b, Path) and a.resolve() == b.resolve()


def _label(mask: Mask) -> str:
    """How messages name a mask: its file, or the argument that gave the array."""
    return str(mask) if isinstance(mask, Path) else "`first_mask`"
