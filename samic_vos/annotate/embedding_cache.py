"""SAM image embeddings cached on disk, keyed by the image's content hash and the model.

Computing an embedding is the slow part of annotating (seconds per image for ViT-B on a CPU);
it is done once per image and model, saved under ``folder/<model key>/<sha256>.pt``, and the
next images are encoded by a background thread while the person works on the current one. That
thread runs at the lowest CPU priority, its torch workers too
(:func:`~samic_vos.runtime.thread_priority.lower_this_thread`): a click decoded meanwhile gets
the cores, the encoding what is left. It also steps aside: it waits at the start of each of the
encoder's blocks while a click is served and shortly after (``gate``,
:class:`~samic_vos.runtime.thread_priority.ForegroundGate`; the server marks its clicks), and
gives up there when the person's own request has computed that image meanwhile.
Revisiting an image, or restarting the server, loads the embedding instead of encoding.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections import OrderedDict
from collections.abc import Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import torch

from samic_vos.annotate.image_folder import content_hash, load_rgb
from samic_vos.runtime.atomic import atomic_path
from samic_vos.runtime.errors import UserError
from samic_vos.runtime.thread_priority import ForegroundGate, lower_this_thread
from samic_vos.sam.encoder import add_pause_points
from samic_vos.sam.segmenter import ImageEmbedding, SamSegmenter

logger = logging.getLogger(__name__)

# Embeddings kept in memory besides the disk cache (ViT-B: 4 MiB each).
MEMORY_ITEMS = 4
# Elements hashed per encoder tensor for the model key: enough to tell checkpoints apart
# (fine-tuning changes every weight) without reading gigabytes at start-up.
_FINGERPRINT_SAMPLES = 4096


def model_key(sam: torch.nn.Module, precision: str) -> str:
    """A short key of ``sam``'s image encoder weights and ``precision`` (the segmenter's family
    and the encoder's compute dtype, e.g. ``"medsam/torch.float32"``: MedSAM and SAM differ in
    pre-processing, not in architecture): embeddings from another model, family or precision
    never hit the cache."""
    digest = hashlib.sha256(f"precision={precision}".encode())
    for name, tensor in sam.image_encoder.state_dict().items():
        flat = tensor.detach().flatten()
        step = max(1, flat.numel() // _FINGERPRINT_SAMPLES)
        digest.update(f"{name}{tuple(tensor.shape)}".encode())
        digest.update(flat[::step].float().cpu().numpy().tobytes())
    return digest.hexdigest()[:16]


class EmbeddingCache:
    """Embeddings of image files, from memory, disk, a running background job, or SAM.

    Args:
        folder: the cache's root; entries go to ``folder/<model key>/``.
        segmenter: computes missing embeddings (:meth:`SamSegmenter.embed`).
        key: the model key (:func:`model_key`).

    ``encoded`` counts the embeddings this cache computed (the encoder's calls); ``gate``: the
    work its background encodings step aside for (:meth:`ForegroundGate.foreground`).
    Thread-safe.
    """

    def __init__(self, folder: Path, segmenter: SamSegmenter, key: str) -> None:
        self.folder = folder / key
        self.segmenter = segmenter
        self.encoded = 0
        self._lock = threading.Lock()
        self._memory: OrderedDict[str, ImageEmbedding] = OrderedDict()
        self._pending: dict[str, Future[ImageEmbedding]] = {}
        self._jobs: dict[str, Future[None]] = {}  # the background thread's job per digest
        self._hashes: dict[tuple[Path, int, int], str] = {}
        self.gate = ForegroundGate()
        self._filling = threading.local()  # .future: what the background thread computes
        self._remove_pause_points = add_pause_points(segmenter.sam, self._pause_point)
        self._background = ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="sambox-encode", initializer=self._background_thread
        )

    def _background_thread(self) -> None:
        lower_this_thread()
        self.gate.mark_background()

    def _pause_point(self) -> None:
        """At each encoder block: the background thread waits while a person is served, then
        stops its encoding where the person's own request has computed it meanwhile."""
        self.gate.pause_point()
        future = getattr(self._filling, "future", None)
        if future is not None and future.done():
            raise _Superseded  # caught by _fill: the future is already set

    def get(self, image: Path) -> ImageEmbedding:
        """The embedding of the image file ``image`` (waits for it if it is being computed)."""
        return self._future(image).result()

    def prefetch(self, images: Iterable[Path]) -> None:
        """Compute the embeddings of ``images`` in the background, if not cached yet."""
        for image in images:
            self._future(image, background=True)

    def wait(self) -> None:
        """Wait until every embedding being computed is done (cached)."""
        with self._lock:
            pending = list(self._pending.values())
        for future in pending:
            future.exception()

    def close(self) -> None:
        """Stop the background thread (jobs not started are dropped; a paused one goes on)."""
        self.gate.stop_pausing()
        self._background.shutdown(wait=True, cancel_futures=True)
        self._remove_pause_points()

    def _hash(self, image: Path) -> str:
        try:
            stat = image.stat()
        except OSError as err:
            raise UserError(f"{image}: cannot read the image ({err.strerror})") from err
        marker = (image, stat.st_mtime_ns, stat.st_size)
        with self._lock:
            known = self._hashes.get(marker)
        if known is None:
            known = content_hash(image)
            with self._lock:
                self._hashes[marker] = known
        return known

    def _future(self, image: Path, background: bool = False) -> Future[ImageEmbedding]:
        digest = self._hash(image)
        with self._lock:
            if digest in self._memory:
                self._memory.move_to_end(digest)
                done: Future[ImageEmbedding] = Future()
                done.set_result(self._memory[digest])
                return done
            pending = self._pending.get(digest)
            job = self._jobs.get(digest)
            if pending is not None and (background or job is None):
                return pending
            if pending is None:
                pending = self._pending[digest] = Future()
            if background:  # under the lock: the job cannot forget itself before it is known
                job = self._background.submit(self._fill_behind, image, digest, pending)
                self._jobs[digest] = job
                return pending
            self._jobs.pop(digest, None)  # computed here now: later requests wait for this one
        if job is None or job.cancel():
            self._fill(image, digest, pending)  # nobody else computes it
        elif not pending.done():
            # Being encoded ahead, at the lowest priority: a person waits for it now, so it is
            # computed here at the person's priority too, and the first to finish answers.
            self._fill(image, digest, pending)
        return pending

    def _fill_behind(self, image: Path, digest: str, future: Future[ImageEmbedding]) -> None:
        """:meth:`_fill` in the background thread, which gives up at its next pause point once
        ``future`` is set by a person's request (:meth:`_pause_point`)."""
        self._filling.future = future
        try:
            self._fill(image, digest, future)
        finally:
            self._filling.future = None

    def _fill(self, image: Path, digest: str, future: Future[ImageEmbedding]) -> None:
        """Compute ``future`` (its embedding, or the error); where the foreground and the
        background both computed it, the first to finish sets it."""
        try:
            embedding = self._load(digest)
            if embedding is None:
                embedding = self._encode(image, digest)
        except BaseException as err:  # handed to whoever waits for it
            with self._lock:
                if future.done():
                    return
                self._forget(digest, future)
                future.set_exception(err)
            return
        with self._lock:
            if future.done():
                return
            self._memory[digest] = embedding
            while len(self._memory) > MEMORY_ITEMS:
                self._memory.popitem(last=False)
            self._forget(digest, future)
            future.set_result(embedding)

    def _forget(self, digest: str, future: Future[ImageEmbedding]) -> None:
        """No job for ``digest`` any more (``self._lock`` held)."""
        if self._pending.get(digest) is future:
            del self._pending[digest]
            self._jobs.pop(digest, None)

    def _path(self, digest: str) -> Path:
        return self.folder / f"{digest}.pt"

    def _load(self, digest: str) -> ImageEmbedding | None:
        path = self._path(digest)
        if not path.is_file():
            return None
        try:
            data = torch.load(path, map_location="cpu", weights_only=True)
            return ImageEmbedding(
                features=data["features"],
                input_size=tuple(data["input_size"]),
                original_size=tuple(data["original_size"]),
                extras=tuple(data.get("extras", ())),
            )
        except Exception as err:  # a damaged entry is recomputed, never fatal
            logger.warning("ignoring the damaged cached embedding %s (%s)", path, err)
            return None

    def _encode(self, image: Path, digest: str) -> ImageEmbedding:
        logger.info("encoding %s with SAM's image encoder", image.name)
        embedding = self.segmenter.embed(load_rgb(image))
        with self._lock:
            self.encoded += 1
        self.folder.mkdir(parents=True, exist_ok=True)
        payload = {
            "features": embedding.features.cpu().clone(),
            "input_size": list(embedding.input_size),
            "original_size": list(embedding.original_size),
            "extras": [t.cpu().clone() for t in embedding.extras],
        }
        with atomic_path(self._path(digest)) as tmp:
            torch.save(payload, tmp)
        return embedding


class _Superseded(Exception):
    """A background encoding given up: the image's embedding was computed meanwhile."""
