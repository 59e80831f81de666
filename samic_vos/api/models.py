"""SAM and SAMIC, loaded once from model names or paths (:func:`load_models`).

:class:`Models` holds SAM as a segmenter (its image encoder set up as ``encoder`` says), the
SAMIC network (a trained checkpoint's, or a fresh one that each video or reference set adapts
on its own first frame or references, :func:`samic_vos.training.adapted.adapt_samic`), the
prompter's name and the device. Any number of :class:`~samic_vos.api.video.VideoTracker` and
:class:`~samic_vos.api.images.ImageSegmenter` share one :class:`Models`; each gets a SAMIC
network of its own to adapt (:meth:`Models.network`), so none changes another's.

Missing weights are one-line :class:`~samic_vos.runtime.errors.UserError` messages naming the
file and the argument that takes a local copy (``sam_checkpoint``, ``backbone_weights``), the
same messages the command line prints with its flags.
"""

from __future__ import annotations

import copy
import dataclasses
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import torch

from samic_vos.api.inputs import require_type
from samic_vos.hub.weights import require_weights
from samic_vos.inference.names import PROMPTERS
from samic_vos.model.checkpoint import stored_net_config
from samic_vos.model.samic_net import SamicNet, SamicNetConfig
from samic_vos.runtime.config import require_choice
from samic_vos.runtime.devices import shard_device
from samic_vos.runtime.errors import UserError
from samic_vos.runtime.input_paths import require_input
from samic_vos.runtime.stage_threads import StageThreads, ThreadsConfig
from samic_vos.sam.encoder import EncoderConfig, precision_name
from samic_vos.sam.models import require_models
from samic_vos.sam.names import DEFAULT_SAM_MODEL, SAM_MODELS
from samic_vos.sam.run_ahead import run_ahead_enabled
from samic_vos.sam.segmenter import SamSegmenter

PathLike = str | os.PathLike[str]
C = TypeVar("C")


@dataclass(repr=False)
class Models:
    """SAM, SAMIC and the prompter, on one device (build it with :func:`load_models`).

    Attributes:
        segmenter: SAM on ``device``: points, boxes and masks in, masks out.
        net: the SAMIC network (``None`` unless ``prompter`` is ``samic``): the ``samic``
            checkpoint's, or a fresh one (random head) that is never used as it is: each
            tracker or image segmenter adapts a copy of it (:attr:`adapts`).
        prompter: ``samic``, ``previous-mask`` or ``persam`` (training-free baselines).
        samic: the SAMIC checkpoint loaded, ``None`` without one.
        backbone_weights: the ResNet-50 ImageNet weights file given, ``None``: the cache's.
        encoder: how SAM's image encoder runs (implementation, precision, compile, run-ahead).
        lock: held by every tracker and image segmenter on these models while it uses SAM
            (whose current image is shared state), so that threads sharing the models wait
            for each other instead of decoding prompts against another thread's image.
    """

    segmenter: SamSegmenter
    net: SamicNet | None
    prompter: str
    samic: Path | None
    backbone_weights: Path | None
    encoder: EncoderConfig
    lock: threading.RLock = field(default_factory=threading.RLock, repr=False, compare=False)

    @property
    def device(self) -> torch.device:
        """Where SAM and SAMIC run."""
        return self.segmenter.device

    @property
    def sam_model(self) -> str | None:
        """The loaded segmenter's name (``vit_b``, ``sam2.1_hiera_tiny``, ``tiny`` ...:
        :data:`samic_vos.sam.names.SAM_MODELS`); ``None`` for an architecture of its own."""
        return self.segmenter.model_name

    @property
    def adapts(self) -> bool:
        """Whether SAMIC is adapted on each video's first frame (each reference set) before
        use: the ``samic`` prompter without a checkpoint."""
        return self.net is not None and self.samic is None

    @property
    def run_ahead(self) -> bool:
        """Whether SAM encodes frame t+1 in a worker thread while frame t is prompted."""
        return run_ahead_enabled(self.encoder, self.device)

    def network(self) -> SamicNet | None:
        """The SAMIC network one tracker or image segmenter prompts with: the checkpoint's,
        shared; or, to be adapted, a copy of the fresh one (its head copied, the frozen
        backbone shared); ``None`` for the training-free prompters."""
        if not self.adapts:
            return self.net
        assert self.net is not None
        return copy.deepcopy(self.net, memo={id(self.net.backbone): self.net.backbone})

    def samic_source(self, adapted: str) -> str | None:
        """Where SAMIC comes from, as a job's config.yaml records it: the checkpoint's path,
        ``adapted`` (where a fresh network is adapted), ``None`` without SAMIC."""
        if self.net is None:
            return None
        return str(self.samic) if self.samic is not None else adapted

    def __repr__(self) -> str:
        sam = self.sam_model or "custom"
        samic = str(self.samic) if self.samic is not None else None
        return (
            f"Models(sam_model={sam!r}, samic={samic!r}, prompter={self.prompter!r}, "
            f"device='{self.device}')"
        )


def load_models(
    sam_model: str | None = None,
    *,
    sam_checkpoint: PathLike | None = None,
    samic: PathLike | None = None,
    backbone_weights: PathLike | None = None,
    prompter: str = "samic",
    device: str | torch.device = "auto",
    precision: str | None = None,
    encoder: EncoderConfig | None = None,
    threads: ThreadsConfig | None = None,
    network: SamicNetConfig | None = None,
) -> Models:
    """Load SAM and SAMIC once, for any number of videos and image sets.

    Args:
        sam_model: a name of :data:`samic_vos.sam.names.SAM_MODELS`: SAM ``vit_b``,
            ``vit_l``, ``vit_h``; HQ-SAM ``hq_vit_b`` ...; ``medsam_vit_b``; SAM 2.1
            ``sam2.1_hiera_tiny`` ... (``tiny*``: the tests' random models);
            ``None``: the checkpoint's own architecture (``vit_b`` without a checkpoint).
        sam_checkpoint: SAM weights file; ``None``: the official weights from the cache
            (:data:`samic_vos.WEIGHTS`, downloaded and checksum-verified on first use).
        samic: a trained SAMIC checkpoint; ``None``: a fresh network of ``network``, adapted
            on each video's first frame or each set of references before use (minutes on a
            CPU; pass a trained checkpoint for the paper's setting).
        backbone_weights: torchvision's ResNet-50 ImageNet weights (SAMIC's frozen backbone);
            ``None``: from the cache. Must stay ``None`` for a ``random`` backbone and for the
            prompters other than ``samic`` (as must ``samic``).
        prompter: ``samic`` (the paper), or the training-free ``previous-mask`` (video only)
            and ``persam``; only ``samic`` loads a SAMIC network.
        device: ``auto`` (CUDA, then MPS, then the CPU), ``cuda``, ``cuda:N``, ``mps``, ``cpu``.
        precision: SAM's image encoder precision, ``auto`` (bf16 on CUDA and on CPUs with
            AVX512-BF16 or AMX, else fp32), ``fp32``,
            ``bf16`` or ``fp16``; ``None``: ``encoder``'s (default ``auto``).
        encoder: how SAM's image encoder runs (default :class:`EncoderConfig`).
        threads: torch CPU threads per stage (default: all ``auto``).
        network: the fresh network's architecture without ``samic`` (default
            :class:`SamicNetConfig`); a checkpoint carries its own.

    Seeds torch's global random generator with 0 first (a fresh head is drawn from it), so
    equal calls give equal models.

    Raises:
        UserError: a missing or unreadable weights file that cannot be downloaded (naming
            the file and the argument to pass), a device this machine lacks, a bad value, a
            SAMIC file given to a prompter that runs no SAMIC network.
    """
    from samic_vos.training.adapted import samic_network

    require_type("encoder", encoder, EncoderConfig | None, "samic_vos.EncoderConfig(...)")
    require_type("threads", threads, ThreadsConfig | None, "samic_vos.ThreadsConfig(...)")
    require_type("network", network, SamicNetConfig | None, "samic_vos.SamicNetConfig(...)")
    require_choice("prompter", prompter, PROMPTERS)
    for name, value in (("samic", samic), ("backbone_weights", backbone_weights)):
        if value is not None and prompter != "samic":
            raise UserError(
                f"`{name}` is ignored: the {prompter} prompter runs no SAMIC network; drop it, "
                "or use prompter='samic'"
            )
    require_models(sam_model, str(device))
    encoder = encoder or EncoderConfig()
    if precision is not None:
        encoder = dataclasses.replace(encoder, precision=precision)
    samic_path = Path(samic) if samic is not None else None
    if prompter == "samic":
        require_input(samic_path, "SAMIC checkpoint", detail=" (`samic`)")
    backbone = Path(backbone_weights) if backbone_weights is not None else None
    needed = _registry_weights(sam_model, sam_checkpoint, prompter, samic_path, backbone, network)
    if len(needed) > 1:  # one alone is fetched where it loads, after the files given are checked
        require_weights(needed)
    segmenter = load_segmenter(
        sam_model, sam_checkpoint, device=device, encoder=encoder, threads=threads
    )
    net = None
    if prompter == "samic":
        net = samic_network(
            samic_path,
            backbone,
            network or SamicNetConfig(),
            segmenter.device,
            segmenter.model_name,
        )
    return Models(segmenter, net, prompter, samic_path, backbone, encoder)


def _registry_weights(
    sam_model: str | None,
    sam_checkpoint: PathLike | None,
    prompter: str,
    samic: Path | None,
    backbone_weights: Path | None,
    network: SamicNetConfig | None,
) -> list[tuple[str, str]]:
    """The registry weights ``load_models`` will load from the cache, as ``(name, flag)``
    pairs: SAM's official file without ``sam_checkpoint``, the ResNet-50 of an ImageNet
    backbone without ``backbone_weights`` (a checkpoint's stored backbone, else ``network``'s)."""
    needed = []
    official = SAM_MODELS[sam_model or DEFAULT_SAM_MODEL].weights
    if sam_checkpoint is None and official is not None:
        needed.append((official, "`sam_checkpoint`"))
    if prompter == "samic" and backbone_weights is None:
        net = stored_net_config(samic) if samic is not None else network or SamicNetConfig()
        if net.backbone == "imagenet":
            needed.append(("resnet50_imagenet", "`backbone_weights`"))
    return needed


def load_segmenter(
    sam_model: str | None = None,
    sam_checkpoint: PathLike | None = None,
    *,
    device: str | torch.device = "auto",
    encoder: EncoderConfig | None = None,
    threads: ThreadsConfig | StageThreads | None = None,
) -> SamSegmenter:
    """SAM alone, as a segmenter on ``device`` (arguments as :func:`load_models`'s;
    ``threads``: a config, or stage threads already resolved). Seeds torch's global random
    generator with 0 first, as :func:`load_models` does (a fresh SAMIC head is drawn next)."""
    from samic_vos.runtime.devices import select_device
    from samic_vos.sam.families import SEGMENTERS
    from samic_vos.sam.models import load_named
    from samic_vos.sam.names import family_of

    require_models(sam_model, str(device))
    torch_device = select_device(str(device))
    torch.manual_seed(0)
    sam, name = load_named(sam_model, sam_checkpoint, torch_device)
    if not isinstance(threads, StageThreads):
        threads = StageThreads.resolve(threads)
    family = family_of(name) if name in SAM_MODELS else "sam"
    segmenter = SEGMENTERS[family](sam, torch_device, encoder or EncoderConfig(), threads)
    segmenter.model_name = name if name in SAM_MODELS else None
    return segmenter


def job_models(
    config: C,
    sam_checkpoint: Path | None,
    samic: Path | None,
    backbone_weights: Path | None,
    local_rank: int | None = None,
) -> tuple[Models, C]:
    """The models of a job config that has ``sam_model``, ``prompter``, ``device``,
    ``encoder``, ``threads`` and ``network`` (``track``'s, ``segment``'s), and that config as
    it ran (the device, SAM architecture, encoder precision and network loaded: what
    config.yaml and run.json record, so that a run resumed where ``auto`` means another device
    or precision is refused rather than mixed).
    ``local_rank``: a launcher's GPU index for this process (torchrun's LOCAL_RANK), used
    where the device resolves to CUDA."""
    job: Any = config
    if local_rank is not None:
        job = dataclasses.replace(job, device=str(shard_device(job.device, local_rank)))
    models = load_models(
        job.sam_model,
        sam_checkpoint=sam_checkpoint,
        samic=samic,
        backbone_weights=backbone_weights,
        prompter=job.prompter,
        device=job.device,
        encoder=job.encoder,
        threads=job.threads,
        network=job.network,
    )
    ran = dataclasses.replace(
        job,
        device=str(models.device),
        sam_model=models.sam_model or job.sam_model,
        encoder=dataclasses.replace(
            job.encoder, precision=precision_name(models.segmenter.encoder.dtype)
        ),
        network=models.net.config if models.net is not None else job.network,
    )
    return models, ran
