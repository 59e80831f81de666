"""samic-vos: SAMIC, a small network that prompts Segment Anything, for video segmentation."""

__version__ = "0.1.0"
