"""Segment Anything models: architectures, builders and checkpoints.

One builder (:func:`build_sam`) makes the official ViT-B/L/H models and the tiny random-weight
model the tests use, from Meta's ``segment_anything.modeling`` classes. It is our own rather
than ``segment_anything.build_sam_vit_b`` because that one calls ``torch.load`` without
``map_location`` and so cannot load a GPU-saved checkpoint on a CPU-only machine.

Checkpoint files come in two kinds:

- official checkpoints (``sam_vit_b_01ec64.pth`` ...): a raw ``state_dict``;
- our format, written by :func:`save_sam`, which carries its architecture::

      {"format": "samic-vos/sam", "version": str, "arch": {SamArch fields}, "state_dict": {...}}

  so that :func:`load_sam` rebuilds whatever model the file holds (this is how the whole
  ``track`` path runs on a tiny random-weight SAM in tests).

Weights are never silently random: a model comes from a checkpoint unless ``random_init=True``
is passed explicitly.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import segment_anything.modeling as sam_modeling
import torch
from segment_anything.modeling import Sam

from samic_vos.hub.weights import load_checkpoint, resolve
from samic_vos.runtime.atomic import atomic_path
from samic_vos.runtime.config import require, require_choice
from samic_vos.runtime.devices import valid_device_name
from samic_vos.runtime.errors import UserError
from samic_vos.runtime.version import __version__
from samic_vos.sam.names import DEFAULT_SAM_MODEL, OFFICIAL_MODELS, SAM_MODELS, family_of
from samic_vos.sam.vit_sam import assemble_sam

log = logging.getLogger(__name__)

__all__ = ["OFFICIAL_MODELS", "SAM_ARCHS", "build_named", "build_sam", "load_named", "load_sam"]

CHECKPOINT_FORMAT = "samic-vos/sam"


@dataclass(frozen=True)
class SamArch:
    """Hyper-parameters of a SAM model (defaults: those shared by the official models).

    ``image_size`` is the side of the square encoder input (pixels); the image embedding is
    ``(prompt_embed_dim, image_size // patch_size, image_size // patch_size)``.
    """

    encoder_embed_dim: int
    encoder_depth: int
    encoder_num_heads: int
    encoder_global_attn_indexes: tuple[int, ...]
    image_size: int = 1024
    patch_size: int = 16
    window_size: int = 14
    prompt_embed_dim: int = 256
    mask_in_chans: int = 16
    decoder_depth: int = 2
    decoder_mlp_dim: int = 2048
    decoder_num_heads: int = 8
    iou_head_depth: int = 3
    iou_head_hidden_dim: int = 256

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SamArch:
        """The architecture stored in a checkpoint (lists become tuples)."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown SAM architecture keys: {', '.join(unknown)}")
        values = dict(data)
        values["encoder_global_attn_indexes"] = tuple(values["encoder_global_attn_indexes"])
        return cls(**values)


SAM_ARCHS: dict[str, SamArch] = {
    "vit_b": SamArch(768, 12, 12, (2, 5, 8, 11)),
    "vit_l": SamArch(1024, 24, 16, (5, 11, 17, 23)),
    "vit_h": SamArch(1280, 32, 16, (7, 15, 23, 31)),
    # Random-weight model for tests: set_image + predict take a few milliseconds on a CPU.
    "tiny": SamArch(
        encoder_embed_dim=32,
        encoder_depth=2,
        encoder_num_heads=2,
        encoder_global_attn_indexes=(1,),
        image_size=128,
        patch_size=16,
        window_size=4,
        prompt_embed_dim=32,
        mask_in_chans=4,
        decoder_depth=2,
        decoder_mlp_dim=64,
        decoder_num_heads=2,
        iou_head_depth=3,
        iou_head_hidden_dim=32,
    ),
}


def require_models(sam_model: str | None, device: str) -> None:
    """A job config's ``sam_model`` (``None``: the checkpoint's own) and ``device`` are spelled
    right (:class:`~samic_vos.runtime.config.ConfigError` naming the key otherwise)."""
    if sam_model is not None:
        require_choice("sam_model", sam_model, SAM_MODELS)
    require(valid_device_name(device), "device", "auto, cuda, cuda:N, mps or cpu", device)


def _arch(arch: SamArch | str) -> SamArch:
    if isinstance(arch, SamArch):
        return arch
    if arch not in SAM_ARCHS:
        raise UserError(f"unknown SAM model '{arch}': use one of {', '.join(SAM_ARCHS)}")
    return SAM_ARCHS[arch]


def _make_sam(arch: SamArch) -> Sam:
    """An untrained SAM of architecture ``arch`` (parameters on the default device)."""
    return assemble_sam(arch, sam_modeling, sam_modeling.MaskDecoder)


def count_parameters(arch: SamArch | str) -> int:
    """Number of parameters of ``arch``, counted on the meta device (nothing is allocated)."""
    with torch.device("meta"):
        sam = _make_sam(_arch(arch))
    return sum(p.numel() for p in sam.parameters())


def _read_checkpoint(
    path: Path,
) -> tuple[dict[str, torch.Tensor], SamArch | str | None]:
    """``(state_dict, arch)`` from a checkpoint file; ``arch``: the SAM architecture or the
    model name our format stores, ``None`` for an official file (a raw state dict, or SAM 2's
    ``{"model": state_dict}``)."""
    data = load_checkpoint(path, map_location="cpu")
    if data.get("format") == CHECKPOINT_FORMAT:
        try:
            if data.get("model") in SAM_MODELS:
                return data["state_dict"], data["model"]
            return data["state_dict"], SamArch.from_dict(data["arch"])
        except (KeyError, TypeError, ValueError) as err:
            raise UserError(f"{path}: damaged samic-vos SAM checkpoint ({err})") from err
    if isinstance(data.get("model"), dict):  # SAM 2's official checkpoints
        return data["model"], None
    return data, None


def _shapes(arch: SamArch) -> dict[str, tuple[int, ...]]:
    """Parameter and buffer shapes of ``arch``'s state dict (built on the meta device)."""
    with torch.device("meta"):
        return {k: tuple(v.shape) for k, v in _make_sam(arch).state_dict().items()}


def _sam_from_state(arch: SamArch, state_dict: dict[str, torch.Tensor], path: Path) -> Sam:
    """A SAM of ``arch`` holding ``state_dict``; :class:`UserError` if the weights do not fit.

    The fit is checked on the meta device first, so a wrong file costs no allocation.
    """
    shapes = {k: tuple(v.shape) for k, v in state_dict.items() if isinstance(v, torch.Tensor)}
    if shapes != _shapes(arch):
        fits = [name for name, known in SAM_ARCHS.items() if _shapes(known) == shapes]
        hint = (
            f"it holds a SAM {fits[0]} model: pass `sam_model` {fits[0]}"
            if fits
            else "it is not a SAM checkpoint of any known size "
            f"({', '.join(SAM_ARCHS)}): check the `sam_checkpoint` path"
        )
        raise UserError(f"{path}: weights do not fit SAM {_arch_name(arch)}; {hint}")
    sam = _make_sam(arch)
    sam.load_state_dict(state_dict)
    return sam.eval()


def _arch_name(arch: SamArch) -> str:
    return next((name for name, known in SAM_ARCHS.items() if known == arch), "custom")


def build_sam(
    arch: SamArch | str,
    checkpoint: str | os.PathLike[str] | None = None,
    *,
    random_init: bool = False,
) -> Sam:
    """A SAM model of architecture ``arch`` (a :class:`SamArch` or a name in ``SAM_ARCHS``).

    Weights come from ``checkpoint`` (an official raw state dict or our format, loaded on the
    CPU whatever device saved it); ``random_init=True`` must be passed to get random weights.
    The model is on the CPU, in eval mode. Weights that do not fit ``arch`` raise
    :class:`UserError` naming the file and the ``sam_model`` that fits it.
    """
    arch = _arch(arch)
    if checkpoint is None and not random_init:
        raise ValueError("build_sam needs a checkpoint (or random_init=True for random weights)")
    if checkpoint is not None and random_init:
        raise ValueError("build_sam: pass either a checkpoint or random_init=True, not both")
    if checkpoint is None:
        return _make_sam(arch).eval()
    state_dict, _ = _read_checkpoint(Path(checkpoint))
    return _sam_from_state(arch, state_dict, Path(checkpoint))


def randomize_relative_positions(sam: Sam, std: float = 0.2) -> None:
    """Draw the encoder's relative-position tables from N(0, std²), in place (global RNG).

    SAM initialises them to zero, so a random-weight model would hide a wrong relative-position
    bias; tests and benchmarks that compare encoders call this on their random model.
    """
    with torch.no_grad():
        for block in sam.image_encoder.blocks:
            block.attn.rel_pos_h.normal_(std=std)
            block.attn.rel_pos_w.normal_(std=std)


def save_sam(path: str | os.PathLike[str], sam: torch.nn.Module, arch: SamArch | str) -> None:
    """Write ``sam`` in our checkpoint format, atomically, with its architecture (SAM) or its
    model name (``arch`` a name of another family in :data:`SAM_MODELS`: ``tiny_sam2`` ...)."""
    payload: dict[str, Any] = {
        "format": CHECKPOINT_FORMAT,
        "version": __version__,
        "state_dict": {k: v.detach().cpu() for k, v in sam.state_dict().items()},
    }
    if isinstance(arch, str) and arch in SAM_MODELS and family_of(arch) != "sam":
        payload["model"] = arch
    else:
        payload["arch"] = dataclasses.asdict(_arch(arch))
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def load_sam(
    model: str | None = None,
    checkpoint: str | os.PathLike[str] | None = None,
    device: torch.device | str = "cpu",
) -> torch.nn.Module:
    """The model of :func:`load_named` alone."""
    return load_named(model, checkpoint, device)[0]


def load_named(
    model: str | None = None,
    checkpoint: str | os.PathLike[str] | None = None,
    device: torch.device | str = "cpu",
) -> tuple[torch.nn.Module, str]:
    """The segmenter model ``model`` (a name in :data:`~samic_vos.sam.names.SAM_MODELS`) on
    ``device``, and its name.

    ``model=None``: the checkpoint's own (a checkpoint in our format names it; an official
    raw state dict is recognised by its keys and shapes; a MedSAM file, having SAM ViT-B's,
    loads as ``vit_b`` unless ``medsam_vit_b`` is named), ``vit_b`` without a checkpoint.
    Without ``checkpoint``, an official model's weights are resolved through the weights
    registry. A ``model`` that disagrees with the checkpoint (another family, another size)
    is refused in one line (and then alone: the note on a file used unverified is shown only
    once its weights have loaded). Returns the model in eval mode.
    """
    held: list[str] = []
    loaded = _load_named(model, checkpoint, device, held.append)
    for message in held:
        log.info(message)
    return loaded


def _load_named(
    model: str | None,
    checkpoint: str | os.PathLike[str] | None,
    device: torch.device | str,
    note: Callable[[str], None],
) -> tuple[torch.nn.Module, str]:
    """:func:`load_named`, its notes given to ``note``."""
    from samic_vos.sam.families import detect_family, require_package

    if model is not None and model not in SAM_MODELS:
        raise UserError(f"unknown SAM model '{model}': use one of {', '.join(SAM_MODELS)}")
    if checkpoint is None:
        model = model or DEFAULT_SAM_MODEL
        if SAM_MODELS[model].weights is None:
            raise UserError(
                f"SAM model '{model}' has no downloadable weights: pass `sam_checkpoint` FILE"
            )
    if model is not None and SAM_MODELS[model].weights is not None:
        path = resolve(
            SAM_MODELS[model].weights, path=checkpoint, flag="`sam_checkpoint`", note=note
        )
    else:
        path = Path(checkpoint)  # type: ignore[arg-type]
        if not path.is_file():
            raise UserError(f"{path}: SAM checkpoint not found (`sam_checkpoint`)")
    state_dict, stored = _read_checkpoint(Path(path))
    found = detect_family(state_dict)
    if model is not None:
        family = family_of(model)
        if {family, found} - {"sam", "medsam"} and family != found:
            raise UserError(
                f"{path}: holds a {found} model, not a {family} one ({model}); pass a {family} "
                f"checkpoint, or a `sam_model` of the {found} family"
            )
    if isinstance(stored, str):  # our format, naming the model
        if model is not None and model != stored:
            raise UserError(
                f"{path}: holds a SAM {stored} model, not {model}; pass `sam_model` {stored}"
            )
        model = stored
    if model is None and found != "sam":
        names = ", ".join(n for n, m in SAM_MODELS.items() if m.family == found and m.weights)
        raise UserError(f"{path}: holds a {found} model: pass `sam_model` (one of {names})")
    if model is None or family_of(model) in ("sam", "medsam"):
        arch = _sam_arch_for(model, stored, state_dict, Path(path))
        name = model if model is not None else _arch_name(arch)
        return _sam_from_state(arch, state_dict, Path(path)).to(device), name
    require_package(family_of(model))
    built = _make_family_model(model)
    try:
        built.load_state_dict(state_dict)
    except RuntimeError as err:
        raise UserError(
            f"{path}: weights do not fit {model}; check `sam_model` and the `sam_checkpoint` path"
        ) from err
    return built.eval().to(device), model


def _sam_arch_for(
    model: str | None, stored: Any, state_dict: dict[str, torch.Tensor], path: Path
) -> SamArch:
    """The SAM architecture to build for a SAM-family (``sam``, ``medsam``) checkpoint."""
    if isinstance(stored, SamArch):
        if model is not None and stored != SAM_ARCHS[SAM_MODELS[model].size]:
            raise UserError(
                f"{path}: holds a SAM {_arch_name(stored)} model, not {model}; pass "
                f"`sam_model` {_arch_name(stored)}"
            )
        return stored
    if model is not None:
        return SAM_ARCHS[SAM_MODELS[model].size]
    return _fitting_arch(state_dict, path)


def _make_family_model(model: str) -> torch.nn.Module:
    """A random-weight model of ``model`` (HQ-SAM or SAM 2.1) by its package's builder."""
    from samic_vos.sam.families import make_hq, make_sam2

    entry = SAM_MODELS[model]
    if entry.family == "hq":
        return make_hq(SAM_ARCHS[entry.size])
    return make_sam2(entry.size)


def build_named(model: str) -> torch.nn.Module:
    """A random-weight model of any family, by name (the tests' and benchmarks' models)."""
    from samic_vos.sam.families import require_package

    family = family_of(model)
    require_package(family)
    if family in ("sam", "medsam"):
        torch_model: torch.nn.Module = _make_sam(SAM_ARCHS[SAM_MODELS[model].size]).eval()
        return torch_model
    return _make_family_model(model).eval()


def _fitting_arch(state_dict: dict[str, torch.Tensor], path: Path) -> SamArch:
    """The known architecture whose shapes ``state_dict`` has (official raw checkpoints)."""
    shapes = {k: tuple(v.shape) for k, v in state_dict.items() if isinstance(v, torch.Tensor)}
    for arch in SAM_ARCHS.values():
        if _shapes(arch) == shapes:
            return arch
    raise UserError(
        f"{path}: not a SAM checkpoint of any known size ({', '.join(SAM_ARCHS)}); check "
        "the `sam_checkpoint` path"
    )
