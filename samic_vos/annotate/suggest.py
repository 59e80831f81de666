"""SAMIC suggests SAMBOX's prompts: the paper's loop (annotate a few images, SAMIC learns from
their prompts, then prompts the rest), live.

Once images are saved, SAMIC places point prompts on the image being annotated, with the saved
annotations as its references (their clicked points per object id, as
``segment --ref-sambox`` reads them: :func:`~samic_vos.jobs.segment_inputs.load_sambox_reference`)
and a network that is either a trained checkpoint (``annotate --samic``) or a fresh one adapted
on those annotations, as ``segment`` adapts on its references
(:meth:`~samic_vos.api.images.ImageSegmenter.adapt`). The page draws the suggestion apart;
accepting it adds its points as ordinary points in one undoable step (the
``accept_suggestion`` action), and the saved JSON records which points came from SAMIC
(``meta.suggested_points``, :func:`~samic_vos.annotate.saved_annotation.suggested_points`).
Every save changes the set of saved annotations, and the network learns again from the new set,
corrections included.

One background thread (:class:`Suggester`) learns; it holds the annotator's lock only while
reading the references and computing their features, never while it trains, so clicks are
decoded meanwhile, and suggestions come from the last network that finished. Files, in
``<annotations>/.sambox/suggest/``:

- ``samic_adapted.pt``, ``adaptation_state.pt``: the adapted network and an unfinished
  adaptation's state (:mod:`samic_vos.training.adapted`), which a restarted server continues;
- ``learned.json``: the annotations that network learned from (image name -> digest of its
  prompts and mask): a restart with the same saved set loads it instead of adapting again;
- ``clicks.json``: per saved image, the person's clicks and the accepted suggested points
  (:func:`click_statistics`: clicks per image with and without suggestions).
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from samic_vos.annotate.annotator import STATE_FOLDER, Annotator
from samic_vos.annotate.image_folder import load_rgb
from samic_vos.annotate.session_store import CLICK_ACTIONS, Session
from samic_vos.api.images import ImageSegmenter
from samic_vos.api.models import Models
from samic_vos.data.mask_io import object_ids
from samic_vos.data.sambox_format import read_annotation
from samic_vos.inference.prompter import Reference, TrackerConfig
from samic_vos.jobs.segment_inputs import ReferenceFile, load_sambox_reference
from samic_vos.runtime.atomic import atomic_write_text, remove_leftovers
from samic_vos.runtime.config import config_to_dict
from samic_vos.runtime.console import counted
from samic_vos.runtime.errors import UserError
from samic_vos.training.adapted import ADAPTED
from samic_vos.training.first_frame_adaptation import AdaptationConfig

logger = logging.getLogger(__name__)

SUGGEST_FOLDER = "suggest"
LEARNED_FILE = "learned.json"
CLICKS_FILE = "clicks.json"
_STOP_SECONDS = 30.0  # how long shutdown waits for the learning thread to stop


class NotReady(Exception):
    """No network to suggest with yet (nothing saved, or the first adaptation runs; HTTP 409)."""


class _Stopped(Exception):
    """The server shuts down: the adaptation stops after its current step."""


# The saved annotations SAMIC learns from: the most recently saved ones (adaptation views and
# their pairs grow with every reference: bounded, an adaptation stays minutes on a CPU).
DEFAULT_REFERENCES = 10


@dataclass
class SuggestSetup:
    """What SAMBOX suggests with: ``models`` (its segmenter must be the annotator's; its SAMIC
    network a checkpoint's, or a fresh one adapted on the saved annotations), the prompter's
    settings (heat σ, peaks), the adaptation's, and ``references``: how many of the most
    recently saved annotations are the references (and the adaptation's images)."""

    models: Models
    tracker: TrackerConfig
    adaptation: AdaptationConfig
    references: int = DEFAULT_REFERENCES


def annotation_digest(path: Path) -> str:
    """A digest of a saved annotation's content but its ``meta`` (a save's time changes
    nothing a network learns from): its prompts, and the content-named mask it names."""
    data = json.loads(path.read_text(encoding="utf-8"))
    data.pop("meta", None)
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]


def clicks_of(session: Session) -> dict[str, Any]:
    """What an image cost: ``clicks``, the person's own clicks and drags in its history up to
    the undo position (points, boxes, moved or deleted points); ``accepted``, the suggested
    points its current state holds; ``suggested``, whether a suggestion was accepted."""
    actions = session.actions[: session.position]
    steps = [s for o in session.state.objects for i in o.instances for s in i]
    return {
        "clicks": sum(a["type"] in CLICK_ACTIONS for a in actions),
        "accepted": sum(s.suggested for s in steps),
        "suggested": any(a["type"] == "accept_suggestion" for a in actions),
    }


def click_statistics(records: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Clicks per saved image with and without an accepted suggestion: per group, ``images``
    and ``clicks_per_image`` (``None`` without images), and ``accepted_per_image`` (the
    suggested points that replaced clicks)."""

    def group(rows: list[dict[str, Any]]) -> dict[str, Any]:
        count = len(rows)
        return {
            "images": count,
            "clicks_per_image": sum(r["clicks"] for r in rows) / count if count else None,
            "accepted_per_image": sum(r["accepted"] for r in rows) / count if count else None,
        }

    rows = list(records.values())
    return {
        "with": group([r for r in rows if r["suggested"]]),
        "without": group([r for r in rows if not r["suggested"]]),
    }


class Suggester:
    """SAMIC's suggestions for one annotator: a learning thread, its progress, the clicks.

    Args:
        annotator: the folder's work (its saved annotations are the references; its
            segmenter, shared under its lock, decodes the suggested points).
        setup: the models and settings (:class:`SuggestSetup`).

    ``status()`` is the page's progress line; ``suggest(name)`` the prompts on an image;
    ``saved(name, session)`` (the annotator's ``after_save``) records the clicks and wakes the
    learning. Thread-safe.
    """

    def __init__(self, annotator: Annotator, setup: SuggestSetup) -> None:
        if setup.models.segmenter is not annotator.segmenter:
            raise ValueError("the suggestions' models must hold the annotator's segmenter")
        self.annotator = annotator
        self.setup = setup
        self.folder = annotator.annotations_dir / STATE_FOLDER / SUGGEST_FOLDER
        self.folder.mkdir(parents=True, exist_ok=True)
        for path in remove_leftovers(self.folder):
            logger.info("removed %s, left by a write that was killed", path)
        self.adaptations = 0  # adaptations this server ran (a restart that resumes runs none)
        self._lock = threading.Lock()
        self._phase = "idle"
        self._progress = (0, setup.adaptation.steps)
        self._learning = 0  # images the running adaptation learns from
        self._message = ""
        self._serving: ImageSegmenter | None = None
        self._served: dict[str, str] = {}  # the saved annotations when the network learned
        self._used = 0  # how many of them it learned from (refused ones left out)
        self._labels: dict[int, str | None] = {}
        self._clicks = self._read_json(CLICKS_FILE)
        self._wake = threading.Event()
        self._closing = False
        self._thread = threading.Thread(target=self._run, name="samic-suggest", daemon=True)
        self._wake.set()  # learn from what is saved already (or load what was learned)
        self._thread.start()

    # ----- the API ---------------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        """``phase`` (``idle``: nothing saved yet; ``adapting``; ``loading``; ``ready``;
        ``failed``), ``step``/``steps`` of the adaptation, ``learned_from`` (images the
        suggesting network learned from), ``message`` (the page's line), ``adaptations`` run
        by this server, ``trained`` (a checkpoint, nothing to adapt) and ``clicks``
        (:func:`click_statistics`)."""
        with self._lock:
            step, steps = self._progress
            phase, served = self._phase, self._used
            message = {
                "idle": "idle: save an annotated image, SAMIC learns from it",
                "adapting": f"adapting {step}/{steps} on {counted(self._learning, 'image')}",
                "loading": f"loading what SAMIC learned from {counted(self._learning, 'image')}",
                "ready": f"ready (learned from {counted(served, 'image')})",
                "failed": f"failed: {self._message}",
            }[phase]
            if phase in ("adapting", "loading") and served:
                message += f"; suggesting from {served} meanwhile"
            return {
                "phase": phase,
                "step": step,
                "steps": steps,
                "learned_from": served,
                "message": message,
                "adaptations": self.adaptations,
                "trained": not self.setup.models.adapts,
                "clicks": click_statistics(self._clicks),
            }

    def suggest(self, name: str) -> dict[str, Any]:
        """SAMIC's prompts on image ``name``: ``objects``, each ``{"object": id, "label",
        "points": [[x, y], ...] (image pixels, one SAM prompt each), "scores"}``, with
        ``learned_from`` and ``ms`` (the time it took). Raises :class:`NotReady` without a
        network yet."""
        path = self.annotator.image_path(name)
        with self._lock:
            serving, labels, served = self._serving, dict(self._labels), self._used
        if serving is None:
            raise NotReady(f"no suggestion yet (SAMIC: {self.status()['message']})")
        started = time.perf_counter()
        rgb = load_rgb(path)
        embedding = self.annotator.embeddings.get(path)  # cached: the page opened the image
        with self.annotator.segmenter_in_use():
            result = serving.engine.segment([rgb], [embedding])[0]
        objects = [
            {
                "object": class_id,
                "label": labels.get(class_id),
                "points": found.points.astype(float).round(2).tolist(),
                "scores": [float(s) for s in found.scores],
            }
            for class_id, found in result.classes.items()
            if len(found.points)
        ]
        ms = (time.perf_counter() - started) * 1000
        return {"image": name, "objects": objects, "learned_from": served, "ms": ms}

    def saved(self, name: str, session: Session) -> None:
        """Image ``name`` was saved as ``session`` holds it: record its clicks, and learn
        again if the saved annotations changed."""
        with self._lock:
            if session.state.objects:
                self._clicks[name] = clicks_of(session)
            else:
                self._clicks.pop(name, None)
            clicks = json.dumps(self._clicks, indent=1, sort_keys=True) + "\n"
        atomic_write_text(self.folder / CLICKS_FILE, clicks)
        self._wake.set()

    def close(self) -> None:
        """Stop learning (an adaptation stops after its step; the next server continues it)."""
        self._closing = True
        self._wake.set()
        self._thread.join(timeout=_STOP_SECONDS)

    # ----- learning --------------------------------------------------------------------------

    def _read_json(self, name: str) -> dict[str, Any]:
        path = self.folder / name
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as err:
            logger.warning("ignoring %s: %s", path, err)
            return {}
        return data if isinstance(data, dict) else {}

    def _saved_annotations(self) -> dict[str, str]:
        """The images saved with objects (the ``setup.references`` saved last, in the
        folder's order), and the digest of each annotation."""
        listing = self.annotator.listing()["images"]
        paths = {
            i["name"]: self.annotator.annotation_path(i["name"])
            for i in listing
            if i["saved"] == "objects"
        }
        recent = sorted(paths, key=lambda n: paths[n].stat().st_mtime_ns, reverse=True)
        kept = set(recent[: self.setup.references])
        return {n: annotation_digest(p) for n, p in paths.items() if n in kept}

    def _run(self) -> None:
        while True:
            self._wake.wait()
            self._wake.clear()
            if self._closing:
                return
            try:
                self._refresh()
            except _Stopped:
                return
            except Exception as err:  # the server goes on; the next save tries again
                logger.error("SAMIC's suggestions failed: %s", err)
                logger.debug("traceback of the failure", exc_info=err)
                with self._lock:
                    self._phase, self._message = "failed", str(err)

    def _refresh(self) -> None:
        """Learn from the saved annotations if they changed since the network learned."""
        saved = self._saved_annotations()
        with self._lock:
            if saved == self._served and self._serving is not None:
                return
            if not saved:  # nothing (left) to learn from: nothing to suggest
                self._phase, self._serving, self._served, self._labels = "idle", None, {}, {}
                self._used = 0
                return
        references, labels = self._references(saved)
        if not references:  # every saved annotation was refused (warned): nothing to learn
            with self._lock:
                self._phase, self._serving, self._served, self._labels = "idle", None, {}, {}
                self._used = 0
            return
        models = self.setup.models
        learned = self._read_json(LEARNED_FILE)
        settings = self._settings()
        same = learned.get("annotations") == saved and learned.get("settings") == settings
        resume = models.adapts and same and (self.folder / ADAPTED).is_file()
        with self._lock:
            self._learning = len(references)
            self._phase = "adapting" if models.adapts and not resume else "loading"
            self._progress = (0, self.setup.adaptation.steps)
        segmenter = ImageSegmenter(
            models,
            self.setup.tracker,
            adaptation=self.setup.adaptation,
            adaptation_dir=self.folder,
        )
        # SAMIC's features of the references need no lock; SAM, prompts of a box-only object.
        with self.annotator.segmenter_in_use() if _derives(references) else nullcontext():
            segmenter.set_references(references)
        segmenter.adapt(resume=resume, on_step=self._on_step)
        if models.adapts and not resume:
            self.adaptations += 1
        record = {"annotations": saved, "settings": settings}
        atomic_write_text(self.folder / LEARNED_FILE, json.dumps(record) + "\n")
        with self._lock:
            self._serving, self._served, self._labels = segmenter, saved, labels
            self._used = len(references)
            self._phase = "ready"
        logger.info("SAMIC suggests from %s", counted(len(references), "saved image"))

    def _settings(self) -> dict[str, Any]:
        """What the network learned with besides the annotations (the adaptation, the
        prompter's settings, the network's architecture): a restart with other settings adapts
        again instead of loading a network made with the old ones."""
        net = self.setup.models.net
        return json.loads(
            json.dumps(
                {
                    "adaptation": config_to_dict(self.setup.adaptation),
                    "tracker": config_to_dict(self.setup.tracker),
                    "network": config_to_dict(net.config) if net is not None else None,
                }
            )
        )

    def _references(self, saved: dict[str, str]) -> tuple[list[Reference], dict[int, str | None]]:
        """The saved annotations as references (image, mask, clicked points per object id),
        and the label of each object id (the last image's that names it). An annotation that
        cannot be a reference (e.g. its only object was erased to nothing) is left out with a
        warning, not allowed to stop the learning from the others."""
        references, labels = [], {}
        for name in saved:
            sambox = self.annotator.annotation_path(name)
            ref = ReferenceFile(self.annotator.image_path(name), sambox=sambox)
            try:
                with self.annotator.segmenter_in_use() as sam:  # SAM for a mask-less object
                    rgb, ids, points = load_sambox_reference(ref, sam)
            except UserError as err:
                logger.warning("SAMIC does not learn from %s: %s", name, err)
                continue
            embedding = None
            if _unclicked(ids, points):
                # Its prompts come from its mask with SAM: the embedding from the cache (or
                # encoded here, outside the annotator's lock), not encoded again under it.
                embedding = self.annotator.embeddings.get(ref.image)
            references.append(Reference(rgb, ids, points=points, embedding=embedding))
            for obj in read_annotation(sambox).objects:
                if obj.label is not None or obj.id not in labels:
                    labels[obj.id] = obj.label
        return references, labels

    def _on_step(self, done: int, steps: int) -> None:
        if self._closing:
            raise _Stopped
        with self._lock:
            self._progress = (done, steps)


def _derives(references: list[Reference]) -> bool:
    """Whether a reference has an object without clicked points: the prompter derives its
    prompts from the mask with SAM."""
    return any(_unclicked(ref.ids, ref.points) for ref in references)


def _unclicked(ids: np.ndarray, points: dict[int, np.ndarray] | None) -> bool:
    """Whether id map ``ids`` holds an object without clicked ``points``."""
    clicked = {k for k, v in (points or {}).items() if len(v)}
    return bool(set(object_ids(ids)) - clicked)
