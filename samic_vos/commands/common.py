"""Flags every command shares, and the one way a command builds its job config.

A *config flag* (:func:`config_flag`) is a command-line spelling of one key of the job's config
(``--batch-size`` is ``tracker.batch_size``): its text goes through
:func:`samic_vos.runtime.config.apply_overrides` after the ``--config`` YAML file, so it is parsed
and validated exactly as the same key in YAML is (:func:`job_config`). Other flags name inputs and
outputs (paths), which are not settings. The same concept has the same flag in every command:
``-o/--out``, ``--config``, ``-v/-q``, ``--device``, ``--sam-model``, ``--set``, ``--sequences``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn, TypeVar

from samic_vos.data.names import BACKENDS, DEFAULT_YEAR, RESOLUTIONS, YEARS
from samic_vos.inference.names import IMAGE_PROMPTERS, PROMPTERS
from samic_vos.sam.names import OFFICIAL_MODELS, PRECISIONS

T = TypeVar("T")

# Flag values collected by config flags, in command-line order: (key, value, flag).
_OVERRIDES = "config_overrides"

DEVICE_HELP = "auto (CUDA, then MPS, then CPU), cuda, cuda:N, mps or cpu (default auto)"
SAM_MODEL_HELP = (
    f"segmenter, one of {', '.join(OFFICIAL_MODELS)} (default: the checkpoint's own; vit_b when "
    "downloading)"
)


class Parser(argparse.ArgumentParser):
    """An argument parser whose usage errors are one line on stderr, exit status 2."""

    def error(self, message: str) -> NoReturn:
        where = "" if self.prog == "samic-vos" else f"{self.prog}: "
        self.exit(2, f"samic-vos: error: {where}{message}; see '{self.prog} --help'\n")


class _ConfigFlag(argparse.Action):
    """Records ``(key, value, flag)``; :func:`job_config` applies it to the config."""

    def __init__(
        self,
        option_strings: Sequence[str],
        dest: str,
        key: str | tuple[str, ...],
        convert: Callable[[Any], Any] | None = None,
        **kwargs: Any,
    ) -> None:
        self.keys = (key,) if isinstance(key, str) else key
        self.convert = convert
        super().__init__(option_strings, dest, **kwargs)

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: Any,
        option_string: str | None = None,
    ) -> None:
        value = self.const if self.nargs == 0 else values
        if self.convert is not None:
            value = self.convert(value)
        found = list(getattr(namespace, _OVERRIDES, None) or [])
        flag = option_string or self.option_strings[0]
        found += [(key, value, flag) for key in self.keys]
        setattr(namespace, _OVERRIDES, found)


def config_flag(
    parser: argparse.ArgumentParser | argparse._ArgumentGroup,
    *flags: str,
    key: str | tuple[str, ...],
    help: str,
    switch: Any = None,
    convert: Callable[[Any], Any] | None = None,
    **kwargs: Any,
) -> None:
    """Add a flag that sets config ``key`` (dotted path from the job config's root; several
    keys: the flag sets each, for a job whose stages each keep the setting).

    ``switch``: a flag without a value that sets ``key`` to this value (e.g. ``True``).
    ``convert``: applied to the flag's text (or list of texts) before it becomes the value.
    The key is shown in ``--help`` so users can find it in YAML.
    """
    if switch is not None:
        kwargs.update(nargs=0, const=switch)
    parser.add_argument(
        *flags,
        action=_ConfigFlag,
        dest=_OVERRIDES,
        key=key,
        convert=convert,
        default=argparse.SUPPRESS,
        help=f"{help} [config: {key if isinstance(key, str) else ', '.join(key)}]",
        **kwargs,
    )


def job_config(default: T, args: argparse.Namespace) -> T:
    """The job's config: ``default`` → ``--config`` YAML → config flags, all validated."""
    from samic_vos.runtime.config import apply_overrides, load_config

    config = load_config(default, getattr(args, "config", None))
    for key, value, flag in getattr(args, _OVERRIDES, None) or []:
        nested: Any = value
        for part in reversed(key.split(".")):
            nested = {part: nested}
        config = apply_overrides(config, nested, flag, from_text=True)
    return config


def needs_action(parser: argparse.ArgumentParser) -> None:
    """A command of actions (``bench``, ``data``, ``eval``, ``weights``) run without one prints
    its help on stderr, as ``samic-vos`` alone does (stdout carries results only), and exits 2."""

    def usage(args: argparse.Namespace) -> int:
        parser.print_help(sys.stderr)
        return 2

    parser.set_defaults(func=usage)


def add_common(parser: argparse.ArgumentParser, *, config: bool = True) -> None:
    """``--config`` (when the command has a job config), ``-v/--verbose`` and ``-q/--quiet``."""
    if config:
        parser.add_argument(
            "--config", type=Path, metavar="YAML", help="YAML file overriding the defaults"
        )
    loudness = parser.add_mutually_exclusive_group()
    loudness.add_argument("-v", "--verbose", action="store_true", help="also print debug messages")
    loudness.add_argument(
        "-q", "--quiet", action="store_true", help="only warnings and errors, no progress bars"
    )


def verbosity(args: argparse.Namespace) -> int:
    """-1 (``-q``), 0, or 1 (``-v``)."""
    return -1 if getattr(args, "quiet", False) else int(bool(getattr(args, "verbose", False)))


def add_out(parser: argparse.ArgumentParser, help: str, *, required: bool = False) -> None:
    """``-o/--out``: the command's output (a folder or a file, as ``help`` says)."""
    parser.add_argument("-o", "--out", type=Path, required=required, metavar="OUT", help=help)


def add_shards(parser: argparse.ArgumentParser, work: str) -> None:
    """``--shard I/N`` and ``--merge``: a share of the ``work`` (else the launcher's: torchrun,
    a Slurm array), and the summary of a complete sharded run."""
    parser.add_argument(
        "--shard",
        metavar="I/N",
        help=f"{work} only shard I of N (0-based); default: torchrun's RANK/WORLD_SIZE or a "
        "Slurm array's task, else everything",
    )
    parser.add_argument(
        "--merge",
        action="store_true",
        help="write the summary of a sharded run whose shards have all finished",
    )


def add_format(parser: argparse.ArgumentParser) -> None:
    """``--format png|coco``: the masks as palette PNGs only, or also as ``OUT/coco.json``."""
    from samic_vos.data.exports import OUTPUT_FORMATS

    parser.add_argument(
        "--format",
        choices=OUTPUT_FORMATS,
        default="png",
        help="png: masks/*.png (default); coco: also OUT/coco.json (COCO instances, RLE masks)",
    )


def add_prompter(parser: argparse.ArgumentParser, key: str, video: bool) -> None:
    """``--prompter`` as config ``key``: who prompts SAM, of the video prompters (``video``) or
    of the image ones."""
    names = PROMPTERS if video else IMAGE_PROMPTERS
    config_flag(
        parser,
        "--prompter",
        key=key,
        metavar="{" + ",".join(names) + "}",
        help=f"who prompts SAM: samic (default) or the training-free {' or '.join(names[1:])}",
    )


def add_device(parser: argparse.ArgumentParser, key: str = "device") -> None:
    """``--device`` as config ``key``."""
    config_flag(parser, "--device", key=key, metavar="DEVICE", help=DEVICE_HELP)


def add_encoder(parser: argparse.ArgumentParser, prefix: str = "") -> None:
    """``--precision`` and ``--compile``: how SAM's image encoder runs (key ``encoder``)."""
    config_flag(
        parser,
        "--precision",
        key=f"{prefix}encoder.precision",
        metavar="{" + ",".join(PRECISIONS) + "}",
        help="SAM encoder precision (auto: bf16 on CUDA and on CPUs with AVX512-BF16 or AMX, "
        "else fp32)",
    )
    config_flag(
        parser,
        "--compile",
        key=f"{prefix}encoder.compile",
        switch=True,
        help="torch.compile the SAM encoder (a long first frame, faster after)",
    )


def add_backend(parser: argparse.ArgumentParser, key: str = "backend") -> None:
    """``--backend``: the frame decoder."""
    config_flag(
        parser,
        "--backend",
        key=key,
        metavar="{" + ",".join(BACKENDS) + "}",
        help="frame decoder (auto: decord where installed, else PyAV; folders of images)",
    )


def add_models(
    parser: argparse.ArgumentParser,
    *,
    sam: bool = True,
    samic_checkpoint: bool = True,
    backbone: bool = True,
    prefix: str = "",
    network_prefixes: tuple[str, ...] | None = None,
) -> None:
    """The model flags, with the same names in every job that runs SAM and/or SAMIC.

    ``backbone``: the SAMIC backbone's flags (jobs that run SAM alone leave them out).
    ``prefix``: where the job keeps `track`'s keys (``"track."`` in the benchmark).
    ``network_prefixes``: every stage of the job that builds a SAMIC network (default
    ``(prefix,)``); ``--random-backbone`` applies to each.
    """
    group = parser.add_argument_group("models")
    if samic_checkpoint:
        group.add_argument(
            "--samic", type=Path, metavar="CKPT", help="trained SAMIC checkpoint (.pt)"
        )
    if sam:
        config_flag(
            group,
            "--sam-model",
            key=f"{prefix}sam_model",
            metavar="NAME",
            help=SAM_MODEL_HELP,
        )
        add_sam_checkpoint(group)
    if not backbone:
        return
    add_backbone_weights(group)
    config_flag(
        group,
        "--random-backbone",
        key=tuple(f"{p}network.backbone" for p in network_prefixes or (prefix,)),
        switch="random",
        help="a randomly initialised SAMIC backbone, not ImageNet's (experiments only)",
    )


def add_sam_checkpoint(parser: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    """``--sam-checkpoint PATH``: a local copy of SAM's weights."""
    parser.add_argument(
        "--sam-checkpoint",
        type=Path,
        metavar="PATH",
        help="local SAM checkpoint (default: the official one, from the weights cache)",
    )


def add_backbone_weights(parser: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    """``--backbone-weights PATH``: a local copy of the SAMIC backbone's ImageNet weights."""
    parser.add_argument(
        "--backbone-weights",
        type=Path,
        metavar="PATH",
        help="local torchvision ResNet-50 ImageNet weights (default: the weights cache)",
    )


def given(args: argparse.Namespace, flag: str) -> bool:
    """Whether config flag ``flag`` was on the command line."""
    return any(name == flag for _, _, name in getattr(args, _OVERRIDES, None) or [])


def refuse_ignored_flags(args: argparse.Namespace, prompter: str, shots: int | None = None) -> None:
    """One line for a flag the chosen path would ignore, before any work or output.

    ``prompter``: the resolved config's prompter (a flag or the YAML may set it); ``shots``:
    the supports per episode where the job has them. Checks every model flag the command has
    (``--samic``, ``--train``, ``--backbone-weights``, ``--random-backbone``), ``--kshot`` and
    ``--train-fraction``.

    Raises:
        UserError: the first ignored flag, what ignores it, and how to fix it.
    """
    from samic_vos.runtime.errors import UserError

    samic = getattr(args, "samic", None) is not None
    train = bool(getattr(args, "train", False))
    no_network = f"is ignored: the {prompter} prompter runs no SAMIC network"
    use_samic = "drop it, or use the samic prompter"
    ignored = [
        ("--samic", samic and prompter != "samic", no_network, use_samic),
        ("--train", train and prompter != "samic", no_network, use_samic),
        (
            "--backbone-weights",
            getattr(args, "backbone_weights", None) is not None and prompter != "samic",
            no_network,
            use_samic,
        ),
        (
            "--random-backbone",
            given(args, "--random-backbone") and prompter != "samic",
            no_network,
            use_samic,
        ),
        (
            "--random-backbone",
            given(args, "--random-backbone") and samic,
            "applies to a network made here, not to a SAMIC checkpoint (it carries its own "
            "backbone)",
            "drop one of them",
        ),
        (
            "--train-fraction",
            given(args, "--train-fraction") and getattr(args, "fewshot", None) is None,
            "is ignored: it picks the images of --fewshot pairs",
            "drop it, or train with --fewshot KIND --root ROOT",
        ),
        (
            "--kshot",
            given(args, "--kshot") and shots == 1,
            "is ignored: it combines K supports and this run has 1 (--shots)",
            "drop it, or pass --shots K",
        ),
    ]
    for flag, refused, why, fix in ignored:
        if refused:
            raise UserError(f"{flag} {why}; {fix}")


def require_dataset_root(root: Path | None) -> None:
    """``--root`` (a few-shot dataset's folder), when given, is a folder: checked before a job
    imports torch, so the mistake costs no start-up."""
    from samic_vos.runtime.input_paths import require_input

    require_input(root, "folder", kind="folder", detail="; pass the dataset's folder (`root`)")


def add_davis(
    parser: argparse.ArgumentParser, *, root_required: bool = True, split: str = "val"
) -> None:
    """``--davis-root``, ``--year``, ``--set``, ``--resolution``, ``--sequences`` (key davis.*);
    ``split``: the job's default ``--set``, which its help names."""
    group = parser.add_argument_group("DAVIS")
    group.add_argument(
        "--davis-root",
        type=Path,
        required=root_required,
        metavar="ROOT",
        help="DAVIS folder holding JPEGImages/, Annotations/ and ImageSets/",
    )
    config_flag(
        group,
        "--year",
        key="davis.year",
        metavar="{" + ",".join(YEARS) + "}",
        help=f"2017: objects 1..K of the first mask; 2016: one object, masks binarised "
        f"(default {DEFAULT_YEAR})",
    )
    config_flag(
        group,
        "--set",
        key="davis.split",
        metavar="SET",
        help=f"ImageSets list to use (default {split})",
    )
    config_flag(
        group,
        "--resolution",
        key="davis.resolution",
        metavar="{" + ",".join(RESOLUTIONS) + "}",
        help=f"frame resolution (default {RESOLUTIONS[0]})",
    )
    config_flag(
        group,
        "--sequences",
        key="davis.sequences",
        nargs="+",
        metavar="SEQ",
        help="only these sequences of the set",
    )


def stdout(line: str) -> None:
    """A result line for programs (paths, tables): stdout, flushed."""
    print(line, file=sys.stdout, flush=True)


def format_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Right-aligned columns, like pandas' ``to_string(index=False)`` in the toolkit."""
    widths = [max(len(row[i]) for row in (header, *rows)) for i in range(len(header))]
    return "\n".join(
        " ".join(c.rjust(w) for c, w in zip(row, widths, strict=True)) for row in (header, *rows)
    )
