"""The prompters' names, apart from their torch code so that the command-line parser can
offer them without importing torch."""

from __future__ import annotations

PROMPTERS: tuple[str, ...] = ("samic", "previous-mask", "persam")
# The prompters of images: all but previous-mask, which follows a mask from frame to frame.
IMAGE_PROMPTERS: tuple[str, ...] = tuple(name for name in PROMPTERS if name != "previous-mask")
