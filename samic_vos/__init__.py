"""samic-vos: SAMIC, a small network that prompts Segment Anything, for video segmentation."""

from samic_vos.runtime.version import __version__

__all__ = ["__version__"]
