"""SAMBOX's web server: a FastAPI app over an :class:`~samic_vos.annotate.annotator.Annotator`.

:func:`create_app` builds the app (the tests drive it with FastAPI's ``TestClient``);
:func:`serve` runs it with uvicorn on 127.0.0.1 only. The page (``static/``: plain HTML, CSS
and JavaScript, no build step) talks to this JSON API:

- ``GET /api/images``: the images with their status, the progress count and the class list;
- ``GET /api/image?name=N``: image N, upright, as a PNG;
- ``GET /api/state?name=N``: its objects, instances, clicks, confidences and mask (PNG,
  base64; palette indices are object ids, 0 transparent);
- ``POST /api/action`` ``{"image": N, "action": {...}, "revision": R, "mask_token": T}``: a
  click, box, new instance or object, select, label, reset, undo or redo; answers the new state;
- ``POST /api/save`` ``{"image": N, "revision": R, "nothing_here": false, "mask_token": T}``:
  writes the SAMBOX JSON and the palette mask (``nothing_here``: the explicit mark of an
  image without objects);
- ``POST /api/export`` ``{"format": "coco|yolo|labelme|voc", "coco_masks": "rle|polygons"}``:
  the saved annotations exported by `samic-vos export`'s writers into
  ``ANNOTATIONS_DIR/exports/<format>/``; answers where they went.
- ``GET /api/suggest``: SAMIC's progress (idle, adapting k/n, ready) and the clicks per image
  with and without suggestions (:mod:`.suggest`; ``{"phase": "off"}`` when not enabled);
- ``POST /api/suggest`` ``{"image": N}``: SAMIC's suggested points on image N, not yet in its
  state (the action ``accept_suggestion`` adds them); 409 while no network is ready.

``revision`` (optional) is the one of the state the page shows: when another tab changed the
image since, the request is refused (409, with the current ``revision``) and the page reloads.
``mask_token`` (optional, action and save) names the mask the page holds (the ``mask_token``
of an earlier answer): the answer then carries only the box that changed (``mask_patch``)
instead of the whole mask (``mask_png``), :mod:`.mask_answer`.
Only the browser tab opened with the launch's token gets this far (:mod:`.access`: Host,
token, Origin, JSON, body size). A request naming a path outside the folders is refused (403)
and logged; a malformed one gets a 4xx with a message (``{"detail": ...}``); a failure of the
server's own (a folder that became unwritable) a 500 with its one-line message, which the page
shows.
"""

from __future__ import annotations

import html
import io
import json
import logging
import os
import socket
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Annotated, Any

from fastapi import Body, FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from PIL import Image

from samic_vos.annotate.access import LocalAccess, new_token
from samic_vos.annotate.annotator import STATE_FOLDER, Annotator, UnknownImage
from samic_vos.annotate.classes import AnnotationClass, parse_classes
from samic_vos.annotate.image_folder import PathRefused, load_rgb
from samic_vos.annotate.session_store import ActionError, StaleRevision
from samic_vos.annotate.suggest import DEFAULT_REFERENCES, NotReady, Suggester, SuggestSetup
from samic_vos.data.mask_io import PNG_COMPRESS_LEVEL
from samic_vos.inference.prompter import TrackerConfig
from samic_vos.model.samic_net import SamicNetConfig
from samic_vos.runtime.config import require
from samic_vos.runtime.errors import UserError
from samic_vos.sam.encoder import EncoderConfig
from samic_vos.sam.models import require_models
from samic_vos.sam.segmenter import SamSegmenter
from samic_vos.training.first_frame_adaptation import AdaptationConfig

logger = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).parent / "static"
HOST = "127.0.0.1"  # local only: the page and the API are never exposed to the network


JsonBody = Annotated[dict[str, Any], Body()]


class Refusal(JSONResponse):
    """A 4xx/5xx answer ``{"detail": ...}`` as ASCII JSON: its message may quote text of the
    request that is no valid Unicode (a JSON string holding a lone surrogate such as
    ``"\\udcff"``), which UTF-8 cannot encode; escaped, it is still an answer, not a crash."""

    def render(self, content: Any) -> bytes:
        return json.dumps(content, ensure_ascii=True, separators=(",", ":")).encode("ascii")


def _check_keys(payload: dict[str, Any], keys: frozenset[str]) -> None:
    """Refuse a POST body holding a key other than ``keys``."""
    unknown = sorted(set(payload) - keys)
    if unknown:
        raise ActionError(
            f"unknown key '{unknown[0][:40]}' in the request (it takes {', '.join(sorted(keys))})"
        )


def _held(payload: dict[str, Any]) -> str | None:
    """The ``mask_token`` of the mask the page holds (``None``: none)."""
    held = payload.get("mask_token")
    if held is not None and not isinstance(held, str):
        raise ActionError("'mask_token' must be a string (the one of the mask shown)")
    return held


def _request(payload: dict[str, Any], keys: frozenset[str]) -> tuple[str, int | None]:
    """The image name and revision of a POST body, which may hold only ``keys``."""
    _check_keys(payload, keys)
    name = payload.get("image")
    if not isinstance(name, str):
        raise ActionError("the request needs 'image', the name of an image")
    revision = payload.get("revision")
    if revision is not None and (isinstance(revision, bool) or not isinstance(revision, int)):
        raise ActionError("'revision' must be an integer (the one of the state shown)")
    return name, revision


_ACTION_KEYS = frozenset({"image", "action", "revision", "mask_token"})
_SAVE_KEYS = frozenset({"image", "revision", "nothing_here", "mask_token"})
_EXPORT_KEYS = frozenset({"format", "coco_masks"})
_SUGGEST_KEYS = frozenset({"image"})


def create_app(
    images_dir: Path,
    annotations_dir: Path,
    segmenter: SamSegmenter,
    import_masks: Path | None = None,
    token: str | None = None,
    classes: list[AnnotationClass] | None = None,
    import_as: str = "clicks",
    suggest: SuggestSetup | None = None,
) -> FastAPI:
    """The SAMBOX app for ``images_dir``, saving into ``annotations_dir`` (see
    :class:`~samic_vos.annotate.annotator.Annotator`, which locks the folder until shutdown);
    ``app.state.annotator`` is its work, ``app.state.token`` the secret a client must send
    (``token``, or a new one); ``classes``: the page's class list (number keys);
    ``import_as``: what ``import_masks`` become, ``"clicks"`` or ``"masks"``; ``suggest``:
    SAMIC's suggestions (``app.state.suggester``; ``None``: none)."""
    class_list = [{"name": c.name, "color": list(c.color)} for c in classes or []]
    annotator = Annotator(images_dir, annotations_dir, segmenter, import_masks, import_as)
    app = FastAPI(title="SAMBOX", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.annotator = annotator
    app.state.token = token or new_token()
    app.add_middleware(LocalAccess, token=app.state.token)
    suggester = None
    if suggest is not None:
        suggester = Suggester(annotator, suggest)
        annotator.after_save = suggester.saved
        app.router.add_event_handler("shutdown", suggester.close)
    app.state.suggester = suggester
    app.router.add_event_handler("shutdown", annotator.close)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, err: RequestValidationError) -> Refusal:
        return Refusal({"detail": jsonable_encoder(err.errors())}, status_code=422)

    @app.exception_handler(PathRefused)
    async def refused(request: Request, err: PathRefused) -> Refusal:
        logger.warning("refused %s %s: %s", request.method, request.url.path, err)
        return Refusal({"detail": f"refused: {err}"}, status_code=403)

    @app.exception_handler(UnknownImage)
    async def unknown(request: Request, err: UnknownImage) -> Refusal:
        return Refusal({"detail": str(err)}, status_code=404)

    @app.exception_handler(StaleRevision)
    async def stale(request: Request, err: StaleRevision) -> Refusal:
        return Refusal({"detail": str(err), "revision": err.current}, status_code=409)

    @app.exception_handler(NotReady)
    async def not_ready(request: Request, err: NotReady) -> Refusal:
        return Refusal({"detail": str(err)}, status_code=409)

    @app.exception_handler(ActionError)
    async def bad_action(request: Request, err: ActionError) -> Refusal:
        return Refusal({"detail": str(err)}, status_code=400)

    @app.exception_handler(UserError)
    async def user_error(request: Request, err: UserError) -> Refusal:
        return Refusal({"detail": str(err)}, status_code=400)

    @app.exception_handler(OSError)
    async def failure(request: Request, err: OSError) -> Refusal:
        # The disk failed us (a folder that became unwritable, a full disk): the page shows
        # the message and the terminal gets one line; the traceback only with -v.
        message = f"{request.url.path} failed: {describe_failure(err)}"
        logger.error(message)
        logger.debug("traceback of the failure", exc_info=err)
        return Refusal({"detail": message}, status_code=500)

    @app.get("/", include_in_schema=False)
    def index() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html")

    @app.get("/api/images")
    def images() -> dict[str, Any]:
        return {**annotator.listing(), "classes": class_list}

    @app.get("/api/image")
    def image(name: str) -> Response:
        rgb = load_rgb(annotator.image_path(name))
        buffer = io.BytesIO()
        Image.fromarray(rgb).save(buffer, format="PNG", compress_level=PNG_COMPRESS_LEVEL)
        return Response(buffer.getvalue(), media_type="image/png")

    @app.get("/api/state")
    def state(name: str) -> dict[str, Any]:
        return annotator.view(name)

    @app.post("/api/action")
    def action(payload: JsonBody) -> dict[str, Any]:
        name, revision = _request(payload, _ACTION_KEYS)
        return annotator.act(name, payload.get("action"), revision, _held(payload))

    @app.post("/api/save")
    def save(payload: JsonBody) -> dict[str, Any]:
        name, revision = _request(payload, _SAVE_KEYS)
        nothing_here = payload.get("nothing_here", False)
        if not isinstance(nothing_here, bool):
            raise ActionError("'nothing_here' must be true or false")
        return annotator.save(name, revision, nothing_here, _held(payload))

    @app.post("/api/export")
    def export(payload: JsonBody) -> dict[str, Any]:
        _check_keys(payload, _EXPORT_KEYS)
        return annotator.export(payload.get("format"), payload.get("coco_masks", "rle"))

    @app.get("/api/suggest")
    def suggest_status() -> dict[str, Any]:
        return {"phase": "off"} if suggester is None else suggester.status()

    @app.post("/api/suggest")
    def suggest_prompts(payload: JsonBody) -> dict[str, Any]:
        name, _ = _request(payload, _SUGGEST_KEYS)
        if suggester is None:
            raise ActionError("suggestions are off: start annotate with --samic CKPT or --suggest")
        return suggester.suggest(name)

    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    return app


DEFAULT_PORT = 8765


@dataclass
class AnnotateConfig:
    """Everything `samic-vos annotate` can be told (defaults; YAML and flags override)."""

    # vit_b | vit_l | vit_h (tiny: tests); None: the SAM checkpoint's own (vit_b to download).
    sam_model: str | None = None
    device: str = "auto"  # auto | cuda | cuda:N | mps | cpu
    port: int = DEFAULT_PORT  # on 127.0.0.1 only
    encoder: EncoderConfig = field(default_factory=EncoderConfig)  # how SAM's encoder runs
    # The page's classes, number keys 1-9: NAME or NAME=#RRGGBB (see annotate/classes.py).
    classes: list[str] = field(default_factory=list)
    # SAMIC suggests the prompts (annotate/suggest.py): on with --samic CKPT, or with a fresh
    # network adapted on the saved annotations (`network`, `adaptation`, as `segment`'s).
    suggest: bool = False
    tracker: TrackerConfig = field(default_factory=TrackerConfig)  # heat σ, peaks of suggestions
    network: SamicNetConfig = field(default_factory=SamicNetConfig)
    adaptation: AdaptationConfig = field(default_factory=AdaptationConfig)
    suggest_references: int = DEFAULT_REFERENCES  # the annotations saved last are SAMIC's refs

    def __post_init__(self) -> None:
        require_models(self.sam_model, self.device)
        require(
            isinstance(self.classes, list) and all(isinstance(c, str) for c in self.classes),
            "classes",
            "a list of NAME or NAME=#RRGGBB",
            self.classes,
        )
        parse_classes(self.classes)
        require(isinstance(self.suggest, bool), "suggest", "true or false", self.suggest)
        references = self.suggest_references
        ok = isinstance(references, int) and not isinstance(references, bool) and references >= 1
        require(ok, "suggest_references", "an integer >= 1", references)
        require(
            not isinstance(self.port, bool)
            and isinstance(self.port, int)
            and 1 <= self.port <= 65535,
            "port",
            "an integer in 1..65535",
            self.port,
        )


def check_port_free(port: int) -> None:
    """Raise :class:`UserError` if 127.0.0.1:``port`` cannot be listened on.

    Binds as uvicorn does, with ``SO_REUSEADDR``: the connections of a server stopped a moment
    ago (TIME_WAIT, up to a minute) do not hold the port, a listening server does."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((HOST, port))
        except OSError as err:
            raise UserError(
                f"port {port} on {HOST} is in use ({err.strerror}); pass another `port`"
            ) from err


def describe_failure(err: OSError) -> str:
    """One line for a failed read or write: the file and the OS's reason."""
    where = f"{err.filename}: " if err.filename else ""
    return f"{where}{err.strerror or err}"


def page_url(port: int, token: str) -> str:
    """The URL that opens the page: it hands the browser the launch's token."""
    return f"http://{HOST}:{port}/?token={token}"


OPENER = "open.html"  # in ANNOTATIONS_DIR/.sambox/: the page the browser is started on


def write_opener(annotations_dir: Path, url: str) -> Path:
    """A page that moves on to ``url`` (it holds the token), readable by this user only:
    ``annotations_dir/.sambox/open.html``, the file the browser is started on (the caller
    removes it when the server stops).

    A browser started on the URL itself holds the token in its command line, which every user
    of the machine can read (``ps``) as long as it runs; started on this file, it names the
    file (as Jupyter does). The folder is the annotations' own, not /tmp: browsers packaged as
    snaps see a /tmp of their own."""
    path = annotations_dir / STATE_FOLDER / OPENER
    path.unlink(missing_ok=True)  # an earlier run's; O_EXCL below never follows a link
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    address = html.escape(url)
    with os.fdopen(fd, "w", encoding="utf-8") as file:
        file.write(
            '<!doctype html>\n<meta charset="utf-8">\n'
            f'<meta http-equiv="refresh" content="0; url={address}">\n'
            f'<title>SAMBOX</title>\n<p><a href="{address}">Open SAMBOX</a></p>\n'
        )
    return path


def serve(app: FastAPI, port: int) -> int | None:
    """Run ``app`` on http://127.0.0.1:``port`` until Ctrl-C or SIGTERM; returns the signal
    that stopped it (uvicorn shuts down gracefully and swallows it; the caller exits with the
    signal's status), or ``None``."""
    import uvicorn

    class Server(uvicorn.Server):
        stopped_by: int | None = None

        def handle_exit(self, sig: int, frame: FrameType | None) -> None:
            self.stopped_by = sig
            super().handle_exit(sig, frame)

    server = Server(uvicorn.Config(app, host=HOST, port=port, log_level="warning"))
    try:
        server.run()
    except KeyboardInterrupt:  # the signal uvicorn raises again once it has shut down
        pass
    return server.stopped_by
