"""Shared by the SAMBOX tests: a tiny random-weight SAM and a folder of synthetic images."""

from __future__ import annotations

import base64
import io
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from samic_vos.sam.models import build_sam
from samic_vos.sam.segmenter import SamSegmenter

HEIGHT, WIDTH = 60, 80
NAMES = ["a.png", "b.jpg", "c.bmp", "d.tif"]


def tiny_segmenter() -> SamSegmenter:
    torch.manual_seed(0)
    return SamSegmenter(build_sam("tiny", random_init=True), "cpu")


def synthetic_image(seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 60, (HEIGHT, WIDTH, 3), dtype=np.uint8)
    image[10:40, 10:40] = (220, 40, 40)
    image[30:55, 45:75] = (40, 40, 220)
    return image


def make_images(folder: Path) -> Path:
    """Four synthetic HEIGHT x WIDTH images, one per format (PNG, JPEG, BMP, TIFF)."""
    folder.mkdir(parents=True, exist_ok=True)
    for seed, name in enumerate(NAMES):
        Image.fromarray(synthetic_image(seed)).save(folder / name)
    return folder


def decode_png(data: str | bytes) -> np.ndarray:
    """The pixel indices of a (base64) palette PNG."""
    raw = base64.b64decode(data) if isinstance(data, str) else data
    with Image.open(io.BytesIO(raw)) as image:
        assert image.mode == "P"
        return np.asarray(image).copy()


def saved_mask(annotations: Path, stem: str) -> np.ndarray:
    """The id map of image ``stem``'s saved mask: the one its JSON names, which must be the
    only mask of that image in ``annotations/masks``."""
    from samic_vos.data.mask_io import read_mask
    from samic_vos.data.sambox_format import read_annotation

    annotation = read_annotation(annotations / f"{stem}.sambox.json")
    (named,) = {annotation.mask_path(o) for o in annotation.objects}
    assert sorted((annotations / "masks").glob(f"{stem}.*.png")) == [named]
    return read_mask(named)


def near(points: list[tuple[float, float]], radius: float) -> np.ndarray:
    """(HEIGHT, WIDTH) bool: pixel centres within ``radius`` of the polyline ``points``,
    by brute force over every pixel and segment (independent of the server's rasteriser)."""
    out = np.zeros((HEIGHT, WIDTH), dtype=bool)
    pairs = list(zip(points, points[1:], strict=False)) or [(points[0], points[0])]
    for y in range(HEIGHT):
        for x in range(WIDTH):
            for (ax, ay), (bx, by) in pairs:
                dx, dy = bx - ax, by - ay
                length2 = dx * dx + dy * dy
                along = 0.0 if length2 == 0 else ((x - ax) * dx + (y - ay) * dy) / length2
                t = min(1.0, max(0.0, along))
                if (x - ax - t * dx) ** 2 + (y - ay - t * dy) ** 2 <= radius * radius:
                    out[y, x] = True
    return out


# SAMIC's suggestions kept to seconds: the tiny head on a random backbone, a few steps, the
# state saved at every step (so that a stopped adaptation is continued from where it stopped).
TINY_ADAPTATION = {"views": 3, "steps": 3, "batch_size": 2, "checkpoint_seconds": 0}


def tiny_suggest_setup(
    segmenter: SamSegmenter, samic: Path | None = None, references: int = 10, **adaptation
):
    """SAMIC's suggestions for SAMBOX on ``segmenter``: the checkpoint ``samic``, or a fresh
    tiny network adapted on the saved annotations (``adaptation`` overrides TINY_ADAPTATION),
    from the ``references`` annotations saved last."""
    from tiny_models import TINY_NET

    from samic_vos.annotate.suggest import SuggestSetup
    from samic_vos.api.models import Models
    from samic_vos.inference.prompter import TrackerConfig
    from samic_vos.sam.encoder import EncoderConfig
    from samic_vos.training.adapted import samic_network
    from samic_vos.training.first_frame_adaptation import AdaptationConfig

    torch.manual_seed(0)
    net = samic_network(samic, None, TINY_NET, segmenter.device)
    models = Models(segmenter, net, "samic", samic, None, EncoderConfig())
    config = AdaptationConfig(**{**TINY_ADAPTATION, **adaptation})
    return SuggestSetup(models, TrackerConfig(), config, references)
