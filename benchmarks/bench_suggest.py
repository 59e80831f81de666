"""Benchmark of SAMIC's suggestions in SAMBOX (issue 21 §4): clicks per image with and without
them, on a short real sequence, by a simulated annotator.

The annotator clicks as interactive-segmentation benchmarks do: while the mask SAMBOX shows has
an IoU below ``--target-iou`` with the DAVIS ground truth and fewer than ``--max-clicks`` clicks
were spent, one click at the interior point of the larger error (missed object: a positive
point; spill: a negative one), then it saves. Two runs on the same frames, through the HTTP
API (FastAPI's TestClient, in process):

1. without suggestions: every image from clicks alone;
2. with suggestions: the first image from clicks; on each next one, SAMIC (adapted in the
   background on the images saved so far, or ``--samic``) suggests points, which the annotator
   accepts and then corrects with clicks as above; if the accepted points leave the mask worse
   than ``--reject-below`` IoU, they are undone (rejected) before clicking. After each save,
   the run waits for the adaptation to finish (a person would keep working meanwhile), so each
   image gets the network learned from all the images before it.

Reported: clicks per image in each run (the first image is the same in both and left out of
the comparison), the final IoUs, the accepted and rejected suggestions, the latency of a
suggestion, and the time of each adaptation.

Without weights (``--sam-checkpoint``, ``--samic`` or ``--backbone-weights``) the models are
random: the clicks then measure nothing about SAMIC's quality, only that the loop runs and what
it costs. A GPU user with SAM's ViT-B and a trained SAMIC re-takes the figure with
``--sam-model vit_b --sam-checkpoint sam_vit_b_01ec64.pth --samic samic.pt --device cuda``
(or ``--backbone-weights`` and no ``--samic`` for the adapted network).

Usage: .venv/bin/python -u benchmarks/bench_suggest.py [--sequence bear] [--frames 5]
    [--stride 10] [--adapt-steps 20] [--threads 1]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from samic_vos.annotate.browser import script_client
from samic_vos.annotate.server import create_app
from samic_vos.annotate.suggest import SuggestSetup
from samic_vos.api.models import Models, load_segmenter
from samic_vos.data.mask_io import read_mask
from samic_vos.inference.prompter import TrackerConfig
from samic_vos.model.samic_net import SamicNetConfig
from samic_vos.prompts.mask_points import largest_error_point
from samic_vos.sam.encoder import EncoderConfig
from samic_vos.sam.models import build_sam
from samic_vos.sam.segmenter import SamSegmenter
from samic_vos.training.adapted import samic_network
from samic_vos.training.first_frame_adaptation import AdaptationConfig

DAVIS = Path(__file__).resolve().parents[2] / "shared/data/DAVIS"
# The tests' small SAMIC head on a random backbone: seconds per adaptation step on a CPU.
TINY_NET = SamicNetConfig(input_size=(64, 64), backbone="random", channels=(8, 16, 32))


def iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else 1.0


def shown_mask(view: dict[str, Any]) -> np.ndarray:
    """The (H, W) bool union of the objects the page shows."""
    import base64
    import io

    from PIL import Image

    with Image.open(io.BytesIO(base64.b64decode(view["mask_png"]))) as image:
        return np.asarray(image) > 0


def post(client, path: str, body: dict[str, Any]) -> dict[str, Any]:
    response = client.post(path, json=body)
    assert response.status_code == 200, response.text
    return response.json()


def click_until(client, name: str, truth: np.ndarray, view: dict, args) -> tuple[int, float]:
    """The simulated annotator's clicks on image ``name``: (clicks, final IoU)."""
    clicks = 0
    while iou(shown_mask(view), truth) < args.target_iou and clicks < args.max_clicks:
        current = shown_mask(view)
        missed, spilled = truth & ~current, current & ~truth
        positive = missed.sum() >= spilled.sum()
        point = largest_error_point(truth, current) if positive else None
        if not positive:
            point = largest_error_point(~truth, ~current)
        if point is None:
            break
        action = {"type": "point", "x": point[0], "y": point[1], "positive": bool(positive)}
        view = post(client, "/api/action", {"image": name, "action": action})
        clicks += 1
    return clicks, iou(shown_mask(view), truth)


def wait_ready(client, learned: int, timeout: float) -> float:
    """Seconds until SAMIC suggests from ``learned`` images."""
    started = time.perf_counter()
    while time.perf_counter() - started < timeout:
        status = client.get("/api/suggest").json()
        if status["phase"] == "ready" and status["learned_from"] == learned:
            return time.perf_counter() - started
        if status["phase"] == "failed":
            raise RuntimeError(status["message"])
        time.sleep(0.05)
    raise TimeoutError(f"SAMIC did not learn from {learned} images in {timeout:.0f} s")


def run(
    images: Path, out: Path, segmenter: SamSegmenter, setup: SuggestSetup | None, truths, args
) -> dict[str, Any]:
    rows, suggest_ms, adapt_s = [], [], []
    app = create_app(images, out, segmenter, suggest=setup)
    with script_client(app) as client:
        for index, name in enumerate(sorted(truths)):
            truth = truths[name]
            view = client.get(f"/api/state?name={name}").json()
            accepted = rejected = 0
            inside = None
            if setup is not None and index > 0:
                found = post(client, "/api/suggest", {"image": name})
                suggest_ms.append(found["ms"])
                points = [p for o in found["objects"] for p in o["points"]]
                if points:  # SAMIC's own quality, whatever SAM makes of the points
                    inside = np.mean([truth[round(y), round(x)] for x, y in points])
                objects = [
                    {k: o[k] for k in ("object", "label", "points")} for o in found["objects"]
                ]
                if objects:
                    action = {"type": "accept_suggestion", "objects": objects}
                    view = post(client, "/api/action", {"image": name, "action": action})
                    accepted = sum(len(o["points"]) for o in objects)
                    if iou(shown_mask(view), truth) < args.reject_below:
                        action = {"type": "undo"}
                        view = post(client, "/api/action", {"image": name, "action": action})
                        accepted, rejected = 0, 1
            clicks, final = click_until(client, name, truth, view, args)
            post(client, "/api/save", {"image": name})
            rows.append(
                {
                    "image": name,
                    "clicks": clicks,
                    "iou": final,
                    "accepted": accepted,
                    "rejected": rejected,
                    "inside": inside,
                    "area": float(truth.mean()),
                }
            )
            if setup is not None:
                adapt_s.append(wait_ready(client, index + 1, args.timeout))
        stats = client.get("/api/suggest").json()
    return {"rows": rows, "suggest_ms": suggest_ms, "adapt_s": adapt_s, "stats": stats}


def models(args) -> tuple[SamSegmenter, Models]:
    torch.manual_seed(0)
    if args.sam_checkpoint is not None:
        segmenter = load_segmenter(args.sam_model, args.sam_checkpoint, device=args.device)
    else:
        segmenter = SamSegmenter(build_sam(args.sam_model, random_init=True), args.device)
    trained = args.samic is not None or args.backbone_weights is not None
    network = SamicNetConfig() if trained else TINY_NET
    net = samic_network(args.samic, args.backbone_weights, network, segmenter.device)
    return segmenter, Models(
        segmenter, net, "samic", args.samic, args.backbone_weights, EncoderConfig()
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sequence", default="bear")
    parser.add_argument("--frames", type=int, default=5)
    parser.add_argument("--stride", type=int, default=10, help="DAVIS frames between images")
    parser.add_argument("--sam-model", default="tiny")
    parser.add_argument("--sam-checkpoint", type=Path)
    parser.add_argument("--samic", type=Path)
    parser.add_argument("--backbone-weights", type=Path)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--adapt-steps", type=int, default=20)
    parser.add_argument("--target-iou", type=float, default=0.85)
    parser.add_argument("--max-clicks", type=int, default=10)
    parser.add_argument("--reject-below", type=float, default=0.3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--timeout", type=float, default=1800.0)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    frames = sorted((DAVIS / "JPEGImages/480p" / args.sequence).glob("*.jpg"))
    chosen = frames[:: args.stride][: args.frames]
    segmenter, loaded = models(args)
    adaptation = AdaptationConfig(steps=args.adapt_steps, max_seconds=None)
    setup = SuggestSetup(loaded, TrackerConfig(), adaptation)
    with tempfile.TemporaryDirectory(prefix="bench-suggest-") as tmp:
        images = Path(tmp) / "images"
        images.mkdir()
        truths = {}
        for path in chosen:
            shutil.copy(path, images / path.name)
            mask = DAVIS / "Annotations/480p" / args.sequence / f"{path.stem}.png"
            truths[path.name] = read_mask(mask) > 0
        # The embeddings are computed once and shared by both runs.
        embeddings = Path(tmp) / "embeddings"
        results = {}
        for label, use in (("without", None), ("with", setup)):
            out = Path(tmp) / label
            if embeddings.is_dir():
                shutil.copytree(embeddings, out / ".sambox/embeddings")
            started = time.perf_counter()
            results[label] = run(images, out, segmenter, use, truths, args)
            results[label]["seconds"] = time.perf_counter() - started
            if not embeddings.is_dir():
                shutil.copytree(out / ".sambox/embeddings", embeddings)
    report(results, args, [p.name for p in chosen])


def report(results: dict[str, Any], args, names: list[str]) -> None:
    print(
        f"\n{args.sequence}: {', '.join(names)}; SAM {args.sam_model} "
        f"({'checkpoint' if args.sam_checkpoint else 'random weights'}), SAMIC "
        f"{args.samic or ('adapted, ' + str(args.adapt_steps) + ' steps')}; target IoU "
        f"{args.target_iou}, at most {args.max_clicks} clicks\n"
    )
    print(
        "| image | clicks without | IoU without | clicks with | accepted points | rejected "
        "| IoU with | suggested points on the object | object's share of the image |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for a, b in zip(results["without"]["rows"], results["with"]["rows"], strict=True):
        inside = "–" if b["inside"] is None else f"{b['inside']:.0%}"
        print(
            f"| {a['image']} | {a['clicks']} | {a['iou']:.3f} | {b['clicks']} | "
            f"{b['accepted']} | {b['rejected']} | {b['iou']:.3f} | {inside} | {b['area']:.0%} |"
        )
    later = {k: [r["clicks"] for r in v["rows"][1:]] for k, v in results.items()}
    print(
        f"\nclicks per image after the first: {statistics.mean(later['with']):.2f} with "
        f"suggestions vs {statistics.mean(later['without']):.2f} without"
    )
    print(f"page's statistic (with run): {results['with']['stats']['clicks']}")
    ms = results["with"]["suggest_ms"]
    print(
        f"suggest latency: median {statistics.median(ms):.0f} ms, max {max(ms):.0f} ms "
        f"({len(ms)} suggestions)"
    )
    seconds = results["with"]["adapt_s"]
    print("adaptation after each save (s): " + ", ".join(f"{s:.1f}" for s in seconds))
    print(
        f"run wall time: {results['without']['seconds']:.1f} s without, "
        f"{results['with']['seconds']:.1f} s with"
    )


if __name__ == "__main__":
    main()
