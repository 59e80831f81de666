"""samic-vos: SAMIC, a small network that prompts Segment Anything, for video segmentation.

The Python API (README, "Python API")::

    import samic_vos

    models = samic_vos.load_models("vit_b", samic="samic.pt")  # samic=None: adapted per video
    tracker = samic_vos.VideoTracker(models)
    for index, ids, prompts in tracker.track("video.mp4", "first_mask.png"):
        samic_vos.write_mask(f"masks/{index:05d}.png", ids)

Every name of ``__all__`` is imported on first use (PEP 562), so ``import samic_vos`` stays
light (no torch) and ``samic_vos.read_mask`` does not load the models' code.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from samic_vos.runtime.version import __version__

# Public name → (the module that defines it, its name there); tests/test_api_exports.py keeps
# this table, __all__ and the imports for type checkers below the same.
_EXPORTS: dict[str, tuple[str, str]] = {
    "load_models": ("samic_vos.api.models", "load_models"),
    "Models": ("samic_vos.api.models", "Models"),
    "VideoTracker": ("samic_vos.api.video", "VideoTracker"),
    "TrackedFrame": ("samic_vos.api.video", "TrackedFrame"),
    "ImageSegmenter": ("samic_vos.api.images", "ImageSegmenter"),
    "FrameResult": ("samic_vos.inference.tracker", "FrameResult"),
    "ObjectResult": ("samic_vos.inference.tracker", "ObjectResult"),
    "Reference": ("samic_vos.inference.prompter", "Reference"),
    "ImageResult": ("samic_vos.inference.fewshot_engine", "ImageResult"),
    "ClassResult": ("samic_vos.inference.prompter", "ClassResult"),
    "TrackerConfig": ("samic_vos.inference.prompter", "TrackerConfig"),
    "PeakConfig": ("samic_vos.prompts.peaks", "PeakConfig"),
    "EncoderConfig": ("samic_vos.sam.encoder", "EncoderConfig"),
    "AdaptationConfig": ("samic_vos.training.first_frame_adaptation", "AdaptationConfig"),
    "ThreadsConfig": ("samic_vos.runtime.stage_threads", "ThreadsConfig"),
    "SamicNetConfig": ("samic_vos.model.samic_net", "SamicNetConfig"),
    "UserError": ("samic_vos.runtime.errors", "UserError"),
    "open_frames": ("samic_vos.data.frame_source", "open_frames"),
    "read_image": ("samic_vos.data.davis", "read_image"),
    "read_mask": ("samic_vos.data.mask_io", "read_mask"),
    "write_mask": ("samic_vos.data.mask_io", "write_mask"),
    "DavisDataset": ("samic_vos.data.davis", "DavisDataset"),
    "FewShotDataset": ("samic_vos.data.fewshot_sets", "FewShotDataset"),
    "open_fewshot": ("samic_vos.data.fewshot_sets", "open_fewshot"),
    "WEIGHTS": ("samic_vos.hub.weights", "REGISTRY"),
    "WeightsEntry": ("samic_vos.hub.weights", "WeightsEntry"),
    "download_weights": ("samic_vos.hub.weights", "download"),
    "weights_cache_dir": ("samic_vos.hub.weights", "cache_dir"),
}


__all__ = [
    "__version__",
    # models, videos, images
    "load_models",
    "Models",
    "VideoTracker",
    "TrackedFrame",
    "ImageSegmenter",
    # what they return and take
    "FrameResult",
    "ObjectResult",
    "Reference",
    "ImageResult",
    "ClassResult",
    # settings (the same dataclasses as the jobs' YAML sections)
    "TrackerConfig",
    "PeakConfig",
    "EncoderConfig",
    "AdaptationConfig",
    "ThreadsConfig",
    "SamicNetConfig",
    "UserError",
    # frames, images and masks
    "open_frames",
    "read_image",
    "read_mask",
    "write_mask",
    # datasets
    "DavisDataset",
    "FewShotDataset",
    "open_fewshot",
    # the weights registry
    "WEIGHTS",
    "WeightsEntry",
    "download_weights",
    "weights_cache_dir",
]

if TYPE_CHECKING:  # what type checkers and IDEs see
    from samic_vos.api.images import ImageSegmenter
    from samic_vos.api.models import Models, load_models
    from samic_vos.api.video import TrackedFrame, VideoTracker
    from samic_vos.data.davis import DavisDataset, read_image
    from samic_vos.data.fewshot_sets import FewShotDataset, open_fewshot
    from samic_vos.data.frame_source import open_frames
    from samic_vos.data.mask_io import read_mask, write_mask
    from samic_vos.hub.weights import REGISTRY as WEIGHTS
    from samic_vos.hub.weights import WeightsEntry
    from samic_vos.hub.weights import cache_dir as weights_cache_dir
    from samic_vos.hub.weights import download as download_weights
    from samic_vos.inference.fewshot_engine import ImageResult
    from samic_vos.inference.prompter import ClassResult, Reference, TrackerConfig
    from samic_vos.inference.tracker import FrameResult, ObjectResult
    from samic_vos.model.samic_net import SamicNetConfig
    from samic_vos.prompts.peaks import PeakConfig
    from samic_vos.runtime.errors import UserError
    from samic_vos.runtime.stage_threads import ThreadsConfig
    from samic_vos.sam.encoder import EncoderConfig
    from samic_vos.training.first_frame_adaptation import AdaptationConfig


def __getattr__(name: str) -> Any:
    """Import a public name on first use (then it is a plain attribute)."""
    if name not in _EXPORTS:
        raise AttributeError(f"module 'samic_vos' has no attribute {name!r}")
    module, attribute = _EXPORTS[name]
    value = getattr(importlib.import_module(module), attribute)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
