"""The images SAMBOX annotates: listing, safe path resolution and decoding to RGB.

Only files inside the folder are ever opened: a name that is absolute, climbs out (``..``) or
resolves (through a symlink) outside the folder is refused with :class:`PathRefused`.
"""

from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path

import numpy as np

from samic_vos.data.davis import read_image
from samic_vos.data.sambox_format import natural_key
from samic_vos.runtime.errors import UserError

logger = logging.getLogger(__name__)

IMAGE_SUFFIXES: tuple[str, ...] = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff")


class PathRefused(Exception):
    """A requested path lies outside the folder it must stay in (HTTP 403)."""


def resolve_inside(root: Path, name: str) -> Path:
    """``root / name``, refusing anything that is not a plain relative path inside ``root``.

    Raises :class:`PathRefused` for an absolute path, a ``..`` component, a backslash or NUL,
    or a path whose real location (symlinks followed) is outside ``root``.
    """
    parts = name.split("/")
    if (
        not name
        or name.startswith("/")
        or "\\" in name
        or "\0" in name
        or any(p in ("", ".", "..") for p in parts)
        or (len(name) > 1 and name[1] == ":")
    ):
        raise PathRefused(f"'{name}' is not a plain relative path")
    path = root / name
    real_root = root.resolve()
    if not path.resolve().is_relative_to(real_root):
        raise PathRefused(f"'{name}' leads outside {root}")
    return path


def _is_utf8(name: str) -> bool:
    """Whether file name ``name`` is UTF-8 text (Python holds other bytes as surrogates)."""
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def list_images(folder: Path) -> list[str]:
    """Names of the images directly in ``folder`` (JPEG/PNG/BMP/TIFF), natural order.

    Symlinks that lead outside ``folder``, and names that are not UTF-8, are skipped (and
    logged). Raises :class:`UserError`
    when the folder is missing or holds no image, or when two images share a name stem (their
    annotation files would collide).
    """
    if not folder.is_dir():
        raise UserError(f"{folder}: image folder not found")
    names = []
    for entry in sorted(os.scandir(folder), key=lambda e: natural_key(e.name)):
        if not entry.name.lower().endswith(IMAGE_SUFFIXES) or entry.name.startswith("."):
            continue
        if not _is_utf8(entry.name):
            logger.warning(
                "skipping %s: its name is not UTF-8 text, which the page cannot name; rename it",
                ascii(entry.name),
            )
            continue
        try:
            path = resolve_inside(folder, entry.name)
        except PathRefused:
            logger.warning("skipping %s: a symlink that leads outside %s", entry.name, folder)
            continue
        if path.is_file():
            names.append(entry.name)
    if not names:
        raise UserError(
            f"{folder}: no images found (JPEG, PNG, BMP or TIFF files directly in the folder)"
        )
    stems: dict[str, str] = {}
    for name in names:
        stem = Path(name).stem
        if stem in stems:
            raise UserError(
                f"{folder}: images '{stems[stem]}' and '{name}' share the name '{stem}', and "
                "SAMBOX names its files after it; rename one of them"
            )
        stems[stem] = name
    return names


def load_rgb(path: Path) -> np.ndarray:
    """The image at ``path`` as (H, W, 3) uint8 RGB, upright (EXIF orientation applied, as
    every reader of SAMBOX annotations reads it: :func:`~samic_vos.data.davis.read_image`);
    grayscale, palette and RGBA images are converted (alpha dropped). :class:`UserError` for
    a file Pillow cannot decode or refuses to (a decompression bomb)."""
    return read_image(path, upright=True)


def content_hash(path: Path) -> str:
    """SHA-256 (hex) of the file's bytes: the key of its cached embedding."""
    digest = hashlib.sha256()
    try:
        with path.open("rb") as file:
            for block in iter(lambda: file.read(1 << 20), b""):
                digest.update(block)
    except OSError as err:
        raise UserError(f"{path}: cannot read the image ({err.strerror})") from err
    return digest.hexdigest()
