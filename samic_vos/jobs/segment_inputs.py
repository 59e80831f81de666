"""The inputs of `samic-vos segment`, read and checked before any work: targets and references.

Targets: image files, folders (searched recursively, natural order of their relative paths),
glob patterns (``**`` recursive) and list files (``*.txt``: one image path a line, relative to
the list's folder; blank lines and lines starting with ``#`` skipped), in the order given; a
file named twice is segmented once.
Output names (:func:`target_names`): a target's file stem, unless several targets share it;
those are named by their path relative to the deepest folder holding all targets, folders
joined by ``__`` (``cats/1.jpg`` → ``cats__1``), with the suffix kept too if that still
collides (``a.jpg`` → ``a.jpg``, beside ``a.png``); a name still taken (compared without
case, for case-insensitive disks) gets ``~2``, ``~3``, ... in target order, so no two targets
ever write one file.

References: ``--ref IMG --ref-mask MASK`` pairs (masks as :func:`samic_vos.data.mask_io.read_mask`
reads them; each id of a palette mask is its own class) and SAMBOX annotations
(``--ref-sambox``: the objects' clicked points are the reference prompts; their masks are the
saved ones, or SAM's mask of the clicks where none was saved).
"""

from __future__ import annotations

import glob
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image

from samic_vos.data.davis import read_image
from samic_vos.data.fewshot_sets import sambox_object_mask
from samic_vos.data.frame_source import IMAGE_SUFFIXES
from samic_vos.data.mask_io import object_ids, read_mask
from samic_vos.data.sambox_format import SamboxAnnotation, natural_key, read_annotation
from samic_vos.runtime.errors import UserError, size_text
from samic_vos.runtime.input_paths import require_input
from samic_vos.runtime.runs import fingerprint

if TYPE_CHECKING:  # torch: imported by the callers that segment, not by the input checks
    from samic_vos.inference.prompter import Reference
    from samic_vos.sam.segmenter import SamSegmenter

# Image files a target folder or glob contributes (a file named explicitly may be any image).
TARGET_SUFFIXES = (*IMAGE_SUFFIXES, ".bmp", ".tif", ".tiff", ".webp")
GLOB_CHARACTERS = "*?["
LIST_SUFFIX = ".txt"  # a target list file: one image path a line


@dataclass
class ReferenceFile:
    """One reference as given: an image with a mask, or a SAMBOX annotation."""

    image: Path
    mask: Path | None = None
    sambox: Path | None = None


def find_targets(specs: Sequence[str], exclude: Path | None = None) -> list[Path]:
    """The target files of ``specs`` (files, folders, globs), in order, without repeats;
    files under ``exclude`` (the output folder) are left out.

    Raises:
        UserError: a path that does not exist, a glob or folder with no image, no target.
    """
    found: dict[Path, None] = {}
    skip = exclude.resolve() if exclude is not None else None
    for spec in specs:
        path = Path(spec)
        if path.is_file() and path.suffix.lower() == LIST_SUFFIX:
            files = _listed(path)
        elif path.is_file():
            files = [path]
        elif path.is_dir():
            files = _images_under(path)
            if not files:
                raise UserError(f"{path}: no image ({', '.join(TARGET_SUFFIXES)}) in this folder")
        elif any(c in spec for c in GLOB_CHARACTERS):
            files = sorted(
                (Path(p) for p in glob.glob(spec, recursive=True)),
                key=lambda p: natural_key(p.as_posix()),
            )
            files = [p for p in files if p.is_file() and p.suffix.lower() in TARGET_SUFFIXES]
            if not files:
                raise UserError(f"{spec}: the pattern matches no image; check it (quote it)")
        else:
            raise UserError(f"{spec}: target not found; give image files, folders or globs")
        for file in files:
            resolved = file.resolve()
            if skip is not None and resolved.is_relative_to(skip):
                continue
            found.setdefault(resolved, None)
    if not found:
        raise UserError("no target image given: pass image files, folders or globs to segment")
    return list(found)


def _listed(path: Path) -> list[Path]:
    """The image paths of list file ``path``, each checked to be a file."""
    files = []
    try:
        with open(path, encoding="utf-8-sig") as handle:  # a byte-order mark (Notepad) dropped
            for number, line in enumerate(handle, 1):
                text = line.strip()
                if not text or text.startswith("#"):
                    continue
                file = path.parent / text
                if not file.is_file():
                    raise UserError(f"{path}: line {number} names {file}, which is not a file")
                files.append(file)
    except (OSError, UnicodeDecodeError) as err:
        raise UserError(f"{path}: cannot read the target list ({err})") from None
    if not files:
        raise UserError(f"{path}: the target list names no image")
    return files


def _images_under(folder: Path) -> list[Path]:
    files = [
        p
        for p in folder.rglob("*")
        if p.is_file()
        and p.suffix.lower() in TARGET_SUFFIXES
        and not any(part.startswith(".") for part in p.relative_to(folder).parts)
    ]
    return sorted(files, key=lambda p: natural_key(p.relative_to(folder).as_posix()))


def image_pixels(path: Path) -> int:
    """Width x height of image ``path`` from its header (0 if it cannot be read: such a
    target is reported when its turn comes)."""
    try:
        with Image.open(path) as image:
            return image.width * image.height
    except (OSError, ValueError, Image.DecompressionBombError):
        return 0


def target_names(targets: Sequence[Path]) -> list[str]:
    """One output name per target, unique (the rule of the module docstring)."""
    stems: dict[str, int] = {}
    for path in targets:
        stems[path.stem] = stems.get(path.stem, 0) + 1
    root = Path(os.path.commonpath([str(p.parent) for p in targets]))

    def flat(path: Path, suffix: bool) -> str:
        relative = path.relative_to(root)
        relative = relative if suffix else relative.with_suffix("")
        return "__".join(relative.parts)

    names = [p.stem if stems[p.stem] == 1 else flat(p, suffix=False) for p in targets]
    counts: dict[str, int] = {}
    for name in names:
        counts[name.casefold()] = counts.get(name.casefold(), 0) + 1
    names = [
        flat(p, suffix=True) if counts[n.casefold()] > 1 else n
        for p, n in zip(targets, names, strict=True)
    ]
    # What still clashes (a file named like another's flattened path; names differing only in
    # case, for case-insensitive disks): ~2, ~3, ... in target order.
    taken: set[str] = set()
    unique = []
    for name in names:
        candidate, k = name, 1
        while candidate.casefold() in taken:
            k += 1
            candidate = f"{name}~{k}"
        taken.add(candidate.casefold())
        unique.append(candidate)
    return unique


def reference_files(
    images: Sequence[Path], masks: Sequence[Path], sambox: Sequence[Path]
) -> list[ReferenceFile]:
    """The references given, checked to exist: ``--ref``/``--ref-mask`` pairs, then SAMBOX."""
    if len(images) != len(masks):
        raise UserError(
            f"`ref` given {len(images)} time(s) but `ref_mask` {len(masks)} time(s); give "
            "one mask per reference image, in the same order"
        )
    if not images and not sambox:
        raise UserError("no reference given: pass `ref` IMG `ref_mask` MASK, or `ref_sambox`")
    refs = [ReferenceFile(image, mask) for image, mask in zip(images, masks, strict=True)]
    for ref in refs:
        for path, what in ((ref.image, "reference image (`ref`)"), (ref.mask, "mask (`ref_mask`)")):
            require_input(path, what)
    for path in sambox:
        require_input(path, "SAMBOX annotation", detail=" (`ref_sambox`)")
        refs.append(ReferenceFile(read_annotation(path).image_path(path), sambox=path))
    return refs


def load_mask_reference(ref: ReferenceFile) -> tuple[np.ndarray, np.ndarray]:
    """(rgb, ids) of an image + mask reference, checked: same size, at least one object."""
    assert ref.mask is not None
    rgb = read_image(ref.image, what="reference image")
    ids = read_mask(ref.mask)
    if ids.shape != rgb.shape[:2]:
        raise UserError(
            f"{ref.mask}: mask is {size_text(ids.shape)} but the reference image "
            f"{ref.image} is {size_text(rgb.shape)}; pass the mask of that image"
        )
    if not object_ids(ids):
        raise UserError(
            f"{ref.mask}: the reference mask is empty (only background); pass a mask with "
            "the object(s) to segment"
        )
    return rgb, ids


def load_sambox_reference(
    ref: ReferenceFile, segmenter: SamSegmenter
) -> tuple[np.ndarray, np.ndarray, dict[int, np.ndarray]]:
    """(rgb, ids, clicked points per object id) of a SAMBOX reference; an object without a
    saved mask gets SAM's mask of its clicks (its instances prompted one by one, unioned)."""
    assert ref.sambox is not None
    annotation = read_annotation(ref.sambox)  # checks the image's and masks' sizes
    rgb = read_image(ref.image, what="reference image", upright=True)  # as SAMBOX showed it
    ids = np.zeros(rgb.shape[:2], dtype=np.uint8)
    points: dict[int, np.ndarray] = {}
    for obj in annotation.objects:
        mask = annotation.mask_path(obj)
        found = sambox_object_mask(mask, obj.id) if mask is not None else None
        if found is None:
            found = _clicked_mask(annotation, obj.id, rgb, segmenter)
        ids[found] = obj.id
        if len(obj.points):
            points[obj.id] = np.asarray(obj.points, dtype=np.float32)
    if not object_ids(ids) and not points:
        raise UserError(f"{ref.sambox}: the SAMBOX annotation holds no object to segment")
    return rgb, ids, points


def _clicked_mask(
    annotation: SamboxAnnotation, object_id: int, rgb: np.ndarray, segmenter: SamSegmenter
) -> np.ndarray:
    """SAM's mask of one SAMBOX object's prompts, as the annotator showed it."""
    obj = annotation.object_by_id(object_id)
    assert obj is not None
    segmenter.set_frame(rgb)
    prompts = obj.instances or [obj]
    mask = np.zeros(rgb.shape[:2], dtype=bool)
    for prompt in prompts:
        coords = np.concatenate([prompt.points, prompt.negative_points]).astype(np.float32)
        labels = np.array([1] * len(prompt.points) + [0] * len(prompt.negative_points))
        box = getattr(prompt, "box", None)
        if len(coords) or box is not None:
            mask |= segmenter.prompt(coords if len(coords) else None, labels, box=box).mask
    return mask


def checked_inputs(
    targets: Sequence[str],
    out_dir: Path,
    ref_images: Sequence[Path],
    ref_masks: Sequence[Path],
    ref_sambox: Sequence[Path],
    samic_checkpoint: Path | None,
) -> tuple[list[ReferenceFile], list[Path]]:
    """The references (:func:`reference_files`) and the targets (:func:`find_targets`, ``out_dir``
    excluded) of a `segment` job, and its SAMIC checkpoint, checked to exist: the checks that
    need no torch, which the command runs before it imports the models."""
    refs = reference_files(ref_images, ref_masks, ref_sambox)
    require_input(samic_checkpoint, "SAMIC checkpoint", detail=" (`samic_checkpoint`)")
    return refs, find_targets(targets, exclude=out_dir)


def engine_references(
    refs: list[ReferenceFile],
    mask_refs: list[tuple[np.ndarray, np.ndarray]],
    segmenter: SamSegmenter,
) -> list[Reference]:
    """The engine's references, in the order given (image + mask pairs, then SAMBOX)."""
    from samic_vos.inference.prompter import Reference

    pairs = iter(mask_refs)
    out = []
    for ref in refs:
        if ref.sambox is None:
            out.append(Reference(*next(pairs)))
        else:
            rgb, ids, points = load_sambox_reference(ref, segmenter)
            out.append(Reference(rgb, ids, points=points))
    return out


def reference_fingerprint(ref: ReferenceFile) -> dict[str, Any]:
    """What identifies a reference in a run's manifest: its files' fingerprints."""
    if ref.sambox is not None:
        return {"sambox": fingerprint(ref.sambox), "image": fingerprint(ref.image)}
    return {"image": fingerprint(ref.image), "mask": fingerprint(ref.mask)}
