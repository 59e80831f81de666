"""The image segmentation job's settings (:class:`SegmentConfig`): `samic-vos segment`'s, and
the ``segment`` key of `samic-vos bench fewshot`'s config.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from samic_vos.inference.names import IMAGE_PROMPTERS
from samic_vos.inference.prompter import TrackerConfig
from samic_vos.model.samic_net import SamicNetConfig
from samic_vos.reports.render import OverlayConfig
from samic_vos.runtime.config import require_choice
from samic_vos.runtime.stage_threads import ThreadsConfig
from samic_vos.sam.encoder import EncoderConfig
from samic_vos.sam.models import require_models
from samic_vos.training.first_frame_adaptation import AdaptationConfig


@dataclass
class SegmentConfig:
    """Everything `samic-vos segment` can be told (defaults; YAML and flags override)."""

    # vit_b | vit_l | vit_h (tiny: tests); None: the SAM checkpoint's own (vit_b to download).
    sam_model: str | None = None
    device: str = "auto"  # auto | cuda | cuda:N | mps | cpu
    prompter: str = "samic"  # samic | persam (training-free)
    instances: bool = False  # masks with one id per instance instead of one per class
    overlays: bool = False  # also write OUT/overlays/<name>.jpg
    overlay: OverlayConfig = field(default_factory=OverlayConfig)
    # heat σ, peaks, reference prompts; batch_size: targets per backbone batch and SAMIC pairs
    # per decoder batch
    tracker: TrackerConfig = field(default_factory=TrackerConfig)
    encoder: EncoderConfig = field(default_factory=EncoderConfig)  # how SAM's encoder runs
    # The network built and adapted on the references without a SAMIC checkpoint; with one,
    # config.yaml records the checkpoint's own network config here.
    network: SamicNetConfig = field(default_factory=SamicNetConfig)
    adaptation: AdaptationConfig = field(default_factory=AdaptationConfig)
    threads: ThreadsConfig = field(default_factory=ThreadsConfig)  # torch threads per stage

    def __post_init__(self) -> None:
        require_models(self.sam_model, self.device)
        require_choice("prompter", self.prompter, IMAGE_PROMPTERS)
