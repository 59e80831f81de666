"""Prompters by name: the one factory above their implementations, for videos
(:func:`build_prompter`) and images (:func:`build_image_prompter`), with one set of names.

``track``, ``bench davis``, ``segment``, ``bench fewshot`` and the Python API name a prompter
(:data:`PROMPTERS`) and get it here; the implementations (:mod:`samic_vos.inference.samic_prompter`,
:mod:`samic_vos.inference.baseline_prompters`) only know the interface
(:mod:`samic_vos.inference.prompter`).
"""

from __future__ import annotations

import torch

from samic_vos.inference.baseline_prompters import (
    PerSamImagePrompter,
    PerSamPrompter,
    PreviousMaskPrompter,
)
from samic_vos.inference.names import IMAGE_PROMPTERS, PROMPTERS
from samic_vos.inference.prompter import (
    ImagePrompter,
    Prompter,
    TrackerConfig,
)
from samic_vos.inference.samic_prompter import SamicImagePrompter, SamicPrompter
from samic_vos.inference.tracker import CausalTracker
from samic_vos.model.samic_net import SamicNet
from samic_vos.sam.segmenter import SamSegmenter


def build_prompter(
    name: str,
    segmenter: SamSegmenter,
    config: TrackerConfig,
    net: SamicNet | None = None,
    device: torch.device | str = "cpu",
) -> Prompter:
    """The prompter ``name`` (one of :data:`PROMPTERS`); ``samic`` needs ``net``."""
    if name == "samic":
        if net is None:
            raise ValueError("the samic prompter needs a SAMIC network")
        return SamicPrompter(net, segmenter, config, device, segmenter.threads)
    if name == "previous-mask":
        return PreviousMaskPrompter(segmenter, config.peaks.max_points)
    if name == "persam":
        return PerSamPrompter(segmenter)
    raise ValueError(f"unknown prompter {name!r}: use one of {', '.join(PROMPTERS)}")


def build_image_prompter(
    name: str,
    segmenter: SamSegmenter,
    config: TrackerConfig,
    net: SamicNet | None = None,
    device: torch.device | str = "cpu",
) -> ImagePrompter:
    """The image prompter ``name`` (one of :data:`IMAGE_PROMPTERS`); ``samic`` needs ``net``."""
    if name == "samic":
        if net is None:
            raise ValueError("the samic prompter needs a SAMIC network")
        return SamicImagePrompter(net, segmenter, config, device)
    if name == "persam":
        return PerSamImagePrompter(segmenter)
    raise ValueError(
        f"unknown prompter {name!r} for images: use one of {', '.join(IMAGE_PROMPTERS)}"
    )


def samic_tracker(
    net: SamicNet,
    segmenter: SamSegmenter,
    config: TrackerConfig | None = None,
    device: torch.device | str = "cpu",
) -> CausalTracker:
    """The causal tracker with SAMIC's prompter; ``net`` and ``segmenter`` on ``device``."""
    config = config or TrackerConfig()
    return CausalTracker(build_prompter("samic", segmenter, config, net, device), segmenter, config)
