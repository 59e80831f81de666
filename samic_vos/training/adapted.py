"""The SAMIC network a job runs without a trained checkpoint: built fresh and adapted on the
given references (first frame, reference images), saved beside the job's outputs and reloaded
when the job is resumed (:func:`adapt_samic`); or the checkpoint's own (:func:`samic_network`).

``track``, ``segment``, ``bench davis`` and the Python API get their network here.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from samic_vos.model.samic_net import SamicNet, SamicNetConfig
from samic_vos.training.first_frame_adaptation import AdaptationConfig

log = logging.getLogger(__name__)

ADAPTED = "samic_adapted.pt"
ADAPTATION_STATE = "adaptation_state.pt"  # an unfinished first-frame adaptation


def samic_network(
    checkpoint: Path | None,
    backbone_weights: Path | None,
    network: SamicNetConfig,
    device: torch.device,
    segmenter: str | None = None,
) -> SamicNet:
    """The SAMIC network before any adaptation, on ``device``: the ``checkpoint``'s, or a
    fresh one of ``network``. A checkpoint records, in its config, the segmenter it was trained
    or tuned with (``sam_model``); run with another ``segmenter``, a one-line warning says so
    (SAMIC learns prompts that suit its segmenter; it still runs)."""
    from samic_vos.model.checkpoint import load_samic
    from samic_vos.model.samic_net import build_samic

    if checkpoint is not None:
        net, meta = load_samic(checkpoint, device, backbone_weights)
        recorded = recorded_segmenter(meta)
        if recorded is not None and segmenter is not None and recorded != segmenter:
            log.warning(
                "%s: this SAMIC network was trained with the segmenter %s, and runs with %s "
                "here; pass --sam-model %s for the setting it was trained in",
                checkpoint,
                recorded,
                segmenter,
                recorded,
            )
        return net
    return build_samic(network, backbone_weights).to(device)


def recorded_segmenter(meta: dict[str, Any]) -> str | None:
    """The segmenter (``sam_model``) a SAMIC checkpoint's config records, ``None`` if none."""
    config = meta.get("config")
    if not isinstance(config, dict):
        return None
    for scope in (config, config.get("track"), config.get("train")):
        if isinstance(scope, dict) and isinstance(scope.get("sam_model"), str):
            return scope["sam_model"]
    return None


def adapt_samic(
    net: SamicNet,
    out_dir: Path,
    references: Callable[[], list[tuple[np.ndarray, np.ndarray]]],
    *,
    resume: bool,
    job_config: Any,
    adaptation: AdaptationConfig,
    heat_sigma: float,
    device: torch.device,
    backbone_weights: Path | None,
    progress: bool,
    what: str,
    threads: int | None = None,
    on_step: Callable[[int, int], None] | None = None,
) -> SamicNet:
    """A run without a SAMIC checkpoint: adapt ``net`` in place on ``references()`` ((rgb, ids)
    pairs, read only when needed), saved as ``out_dir/ADAPTED`` with ``job_config``; a resumed
    run reloads the network it saved (returned instead), or continues an interrupted
    adaptation from ``out_dir/ADAPTATION_STATE``. ``what`` names the images in the log;
    ``threads``: torch threads of the adaptation (the job's ``threads.adaptation``);
    ``on_step(done, steps)``: the adaptation's progress."""
    from samic_vos.model.checkpoint import load_samic, save_samic
    from samic_vos.training.first_frame_adaptation import adapt_on_references

    path = out_dir / ADAPTED
    if resume and path.is_file():
        adapted, _ = load_samic(path, device, backbone_weights)
        log.info("%s: using the network this run adapted on %s", path, what)
        # A run killed between saving the network and removing its state left the state.
        (out_dir / ADAPTATION_STATE).unlink(missing_ok=True)
        return adapted
    log.warning(
        "no SAMIC checkpoint given (`samic`): adapting a fresh network on %s "
        "(%d steps); pass a trained checkpoint for the paper's setting",
        what,
        adaptation.steps,
    )
    metrics = adapt_on_references(
        net,
        references(),
        adaptation,
        heat_sigma=heat_sigma,
        device=device,
        progress=progress,
        state_path=out_dir / ADAPTATION_STATE,
        what=what,
        threads=threads,
        on_step=on_step,
    )
    save_samic(path, net, config=job_config, metrics=metrics)
    (out_dir / ADAPTATION_STATE).unlink(missing_ok=True)
    return net
