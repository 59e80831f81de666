"""What :class:`~samic_vos.api.video.VideoTracker` and
:class:`~samic_vos.api.images.ImageSegmenter` share: loaded models, the tracker's settings, a
SAMIC network of their own, its adaptation, and the one-call constructor :meth:`Session.load`.

Without a SAMIC checkpoint, the network is adapted on the labelled images a session is given
(a video's first frame, the references) before it prompts anything. The adapted network is
saved as ``samic_adapted.pt`` (reusable as ``samic=``; replaced by the next adaptation) in
``adaptation_dir``, created if needed, with the state of an unfinished adaptation
(``adaptation_state.pt``, which the next adaptation on the same images there continues);
without ``adaptation_dir``, in a temporary folder removed afterwards.
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import torch

from samic_vos.api.inputs import require_type
from samic_vos.api.models import Models, PathLike, load_models
from samic_vos.inference.prompter import TrackerConfig
from samic_vos.model.samic_net import SamicNetConfig
from samic_vos.runtime.stage_threads import ThreadsConfig
from samic_vos.sam.encoder import EncoderConfig
from samic_vos.training.first_frame_adaptation import AdaptationConfig

S = TypeVar("S", bound="Session")


class Session:
    """Models, settings and the SAMIC network of one video or one set of references.

    Args:
        models: from :func:`~samic_vos.api.models.load_models` (shared with other sessions).
        tracker: heat σ, peaks, prompts of given masks, batch size (default
            :class:`TrackerConfig`).
        adaptation: how SAMIC is adapted without a checkpoint (default
            :class:`AdaptationConfig`).
        adaptation_dir: where the adapted network is saved (module docstring); ``None``: a
            temporary folder.
        progress: progress bars (stderr) while adapting.
    """

    def __init__(
        self,
        models: Models,
        tracker: TrackerConfig | None = None,
        *,
        adaptation: AdaptationConfig | None = None,
        adaptation_dir: PathLike | None = None,
        progress: bool = False,
    ) -> None:
        require_type("models", models, Models, "samic_vos.load_models(...)")
        require_type("tracker", tracker, TrackerConfig | None, "samic_vos.TrackerConfig(...)")
        require_type(
            "adaptation", adaptation, AdaptationConfig | None, "samic_vos.AdaptationConfig(...)"
        )
        self.models = models
        self.config = tracker or TrackerConfig()
        self.adaptation = adaptation or AdaptationConfig()
        self.adaptation_dir = Path(adaptation_dir) if adaptation_dir is not None else None
        self.progress = progress
        self.net = models.network()
        # Whether the network is ready to prompt (adapted on this session's images if needed).
        self.adapted = not models.adapts
        self._build()

    def _build(self) -> None:
        """Build what the session runs (a tracker, an engine) on the attributes set above."""
        raise NotImplementedError

    @classmethod
    def load(
        cls: type[S],
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
        tracker: TrackerConfig | None = None,
        adaptation: AdaptationConfig | None = None,
        adaptation_dir: PathLike | None = None,
        progress: bool = False,
    ) -> S:
        """Load the models (:func:`~samic_vos.api.models.load_models`, whose arguments come
        first) and build this object on them, in one call."""
        models = load_models(
            sam_model,
            sam_checkpoint=sam_checkpoint,
            samic=samic,
            backbone_weights=backbone_weights,
            prompter=prompter,
            device=device,
            precision=precision,
            encoder=encoder,
            threads=threads,
            network=network,
        )
        return cls(
            models, tracker, adaptation=adaptation, adaptation_dir=adaptation_dir, progress=progress
        )

    def _adapt(
        self,
        references: Callable[[], list[tuple[np.ndarray, np.ndarray]]],
        *,
        what: str,
        resume: bool,
        record: Any,
        on_step: Callable[[int, int], None] | None = None,
    ) -> None:
        """Adapt this session's network, from the fresh one, on ``references()`` ((rgb, ids)
        pairs, read only if needed); ``resume``: reuse the network ``adaptation_dir`` holds
        (a resumed job's); ``record``: the settings saved with the adapted network;
        ``on_step(done, steps)``: the adaptation's progress."""
        from samic_vos.training.adapted import adapt_samic

        if not self.models.adapts:
            return
        assert self.net is not None and self.models.net is not None
        self.net.head.load_state_dict(self.models.net.head.state_dict())
        if record is None:
            record = {"tracker": self.config, "adaptation": self.adaptation}
        with self._adaptation_folder() as folder:
            adapted = adapt_samic(
                self.net,
                folder,
                references,
                resume=resume,
                job_config=record,
                adaptation=self.adaptation,
                heat_sigma=self.config.heat_sigma,
                device=self.models.device,
                backbone_weights=self.models.backbone_weights,
                progress=self.progress,
                what=what,
                threads=self.models.segmenter.threads.counts["adaptation"],
                on_step=on_step,
            )
        if adapted is not self.net:  # a resumed job's saved network
            self.net.head.load_state_dict(adapted.head.state_dict())
            self.net.eval()
        self.adapted = True

    @contextlib.contextmanager
    def _adaptation_folder(self) -> Iterator[Path]:
        if self.adaptation_dir is not None:
            self.adaptation_dir.mkdir(parents=True, exist_ok=True)
            yield self.adaptation_dir
            return
        with tempfile.TemporaryDirectory(prefix="samic-adaptation-") as folder:
            yield Path(folder)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.models!r})"
