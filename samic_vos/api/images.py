"""Few-shot image segmentation: K labelled references in, masks of their classes out
(:class:`ImageSegmenter`).

Per class, SAMIC predicts a heat map of point prompts on a target from each reference where the
class appears; the K heat maps are averaged, each peak prompts SAM (one instance), and the class
mask is the union of its instances (``persam``: PerSAM's training-free recipe instead).
``samic-vos segment`` runs the same segmenter and writes files; this one returns results.

Coordinates: points are float (x, y) image pixels, x right, y down, pixel centres at integers.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

import numpy as np
from PIL import Image

from samic_vos.api.inputs import ids_array, is_path, points_array, rgb_array
from samic_vos.api.models import PathLike
from samic_vos.api.session import Session
from samic_vos.data.davis import read_image
from samic_vos.data.mask_io import read_mask
from samic_vos.inference.fewshot_engine import FewShotSegmenter, ImageResult
from samic_vos.inference.names import IMAGE_PROMPTERS
from samic_vos.inference.prompter import Reference
from samic_vos.runtime.errors import UserError, size_text

# A file, an array, or a Pillow image (samic_vos.api.inputs).
ImageLike = np.ndarray | Image.Image | PathLike


class ImageSegmenter(Session):
    """Segments the classes of K labelled references in any number of images.

    Build it on loaded models (``ImageSegmenter(load_models(...))``) or in one call
    (``ImageSegmenter.load(sam_model=..., samic=...)``); the settings are
    :class:`~samic_vos.api.session.Session`'s (``tracker.batch_size``: targets per SAMIC
    backbone batch). The prompter is ``samic`` or ``persam``. Without a SAMIC checkpoint, the
    network is adapted on the references before the first target (:meth:`adapt`).

    Attributes:
        engine: the underlying few-shot engine (reference features, per-class prompts).
    """

    engine: FewShotSegmenter

    def _build(self) -> None:
        models = self.models
        if models.prompter not in IMAGE_PROMPTERS:
            raise UserError(
                f"`prompter`: {models.prompter!r} tracks videos only; images take one of "
                f"{', '.join(IMAGE_PROMPTERS)} (load_models(prompter=...))"
            )
        self.engine = FewShotSegmenter(
            models.prompter, models.segmenter, self.net, self.config, models.device
        )
        self._references: list[tuple[np.ndarray, np.ndarray]] = []

    def set_references(self, references: Sequence[Reference | tuple[ImageLike, ImageLike]]) -> None:
        """The K labelled references, replacing any earlier ones.

        Each is a :class:`~samic_vos.inference.fewshot_engine.Reference` (with clicked (N, 2)
        (x, y) points per class, if any, inside its image) or an ``(image, mask)`` pair: the
        image an RGB file or an (H, W, 3) uint8 array (or a Pillow image), the mask a PNG
        (palette: each id its own class; 0/255 or 0/1: class 1) or an (H, W) id map (uint8,
        bool, or integers 0..255: 0 background, 255 void, 1..254 classes). A class may appear
        in any subset of the references; their sizes may differ.

        Raises:
            UserError: no reference, a single pair not in a list, an unreadable file, an image
                or mask of another form, a mask of another size than its image, clicked
                points of another shape or outside their image, no class at all (these
                leave the earlier references in place); a persam class without a mask (this
                leaves none: set references again).
        """
        if isinstance(references, Reference) or _one_pair(references):
            raise UserError(
                "`references`: expected a list of (image, mask) pairs or Reference objects, "
                "got a single one; pass [(image, mask)]"
            )
        refs = [_reference(i, ref) for i, ref in enumerate(references)]
        try:
            with self.models.lock:  # SAM's current image is shared by every user of the models
                self.engine.set_references(refs)
        except ValueError as error:  # no reference, no class: the engine's own checks
            raise UserError(f"`references`: {error}") from None
        self._references = [(ref.rgb, ref.ids) for ref in refs]
        self.adapted = not self.models.adapts

    def adapt(
        self,
        *,
        resume: bool = False,
        record: object = None,
        on_step: Callable[[int, int], None] | None = None,
    ) -> None:
        """Adapt SAMIC on the references, as the first :meth:`segment` after
        :meth:`set_references` does (nothing with a trained checkpoint).

        ``resume``: reuse the network ``adaptation_dir`` holds (a resumed job's); ``record``:
        the settings saved with it (default: the tracker's and the adaptation's);
        ``on_step(done, steps)``: called as the adaptation goes (a progress display).
        """
        if not self._references:
            raise RuntimeError("call set_references() before adapt()")
        what = "the references" if len(self._references) > 1 else "the reference"
        self._adapt(
            lambda: self._references, what=what, resume=resume, record=record, on_step=on_step
        )

    def segment(self, images: Sequence[ImageLike] | np.ndarray) -> list[ImageResult]:
        """Segment ``images`` (a list of files, (H, W, 3) uint8 RGB arrays or Pillow images,
        sizes may differ; or an (N, H, W, 3) uint8 array or CPU tensor).

        Returns, per image: ``ids`` (H, W) uint8 class map, ``instances`` (H, W) uint8
        instance map (1..M, class order then point order), and per class its (N, 2) float32
        (x, y) points (one SAM prompt, one instance each), their scores and SAM's confidence.

        Raises:
            UserError: a single image not in a list, an unreadable file, an image of another
                form (float, grayscale, (3, H, W)).
            RuntimeError: no references yet (:meth:`set_references`).
        """
        if getattr(images, "ndim", None) == 4:  # an (N, H, W, 3) batch, numpy or torch
            images = list(images)
        if is_path(images) or isinstance(images, Image.Image) or hasattr(images, "ndim"):
            raise UserError("`images`: expected a list of images, got a single one; pass [image]")
        rgbs = [
            read_image(image, what="target image")
            if is_path(image)
            else rgb_array(image, f"`images[{i}]`", paths="")
            for i, image in enumerate(images)
        ]
        if not self.engine.classes:
            raise RuntimeError("call set_references() before segment()")
        if not self.adapted:
            self.adapt()
        with self.models.lock:
            return self.engine.segment(rgbs)


def _one_pair(references: object) -> bool:
    """Whether ``references`` is one ``(image, mask)`` pair rather than a list of them."""
    return (
        isinstance(references, tuple)
        and len(references) == 2
        and not any(isinstance(item, (tuple, list, Reference)) for item in references)
    )


def _reference(index: int, ref: object) -> Reference:
    """Reference ``index`` from a :class:`Reference` or an ``(image, mask)`` pair, each a
    file or an array, checked."""
    where = f"`references[{index}]`"
    if isinstance(ref, Reference):
        image, mask = ref.rgb, ref.ids
    elif isinstance(ref, (tuple, list)) and len(ref) == 2:
        image, mask = ref
    else:
        raise UserError(
            f"{where}: expected an (image, mask) pair or a Reference, got {type(ref).__name__}"
        )
    if is_path(image):
        rgb = read_image(image, what="reference image")
    else:
        rgb = rgb_array(image, f"{where} image", paths="")
    ids = read_mask(mask) if is_path(mask) else ids_array(mask, f"{where} mask", paths="")
    if ids.shape != rgb.shape[:2]:
        raise UserError(
            f"{where}: mask is {size_text(ids.shape)} but the image is {size_text(rgb.shape)}"
        )
    if isinstance(ref, Reference):
        points = ref.points
        if points is not None:
            size = (rgb.shape[0], rgb.shape[1])
            points = {k: points_array(p, f"{where} points[{k}]", size) for k, p in points.items()}
        return dataclasses.replace(ref, rgb=rgb, ids=ids, points=points)
    return Reference(rgb, ids)
