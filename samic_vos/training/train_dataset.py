"""The training dataset: (reference, target) image pairs with their heat maps, augmented.

One item of :class:`PairDataset` is one :class:`~samic_vos.training.training_pairs.TrainingPair`
made ready for the network: both frames are read, the *same* augmentation (horizontal flip, a random
crop that keeps every point inside, colour jitter) is applied to both frames and to their points,
the crops are resized to the network input size, and the heat maps are drawn at that size from
the rescaled points (heat maps are never resized themselves, so Gaussians stay round in the
original image).

Randomness is a pure function of ``(seed, epoch, index)``: an item is the same whichever process,
data-loader worker or batch draws it, which keeps one-process and multi-process (DDP) training
identical, and lets ``--resume`` continue exactly.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import Dataset

from samic_vos.data.davis import read_image
from samic_vos.model.backbone import RESIZE_MODES
from samic_vos.model.samic_net import preprocess
from samic_vos.prompts.heatmaps import DEFAULT_SIGMA, fixation_map, points_to_heatmap
from samic_vos.runtime.config import require
from samic_vos.training.training_pairs import TrainingPair


@dataclass
class AugmentConfig:
    """Training augmentation; one draw is shared by the reference and the target frame."""

    enabled: bool = True
    flip_prob: float = 0.5  # probability of a horizontal flip
    # Zoom: a crop with the image's aspect ratio whose side is drawn uniformly from
    # [min_scale, 1] of the image side, placed so that all points stay inside; it grows when
    # the points need more room, so no pair is ever dropped.
    min_scale: float = 0.6
    crop_margin: float = 0.02  # points keep this share of the crop side from the crop border
    # Colour jitter: brightness, contrast and saturation factors drawn from [1 - v, 1 + v].
    brightness: float = 0.25
    contrast: float = 0.25
    saturation: float = 0.25

    def __post_init__(self) -> None:
        require(0 <= self.flip_prob <= 1, "flip_prob", "in [0, 1]", self.flip_prob)
        require(0 < self.min_scale <= 1, "min_scale", "in (0, 1]", self.min_scale)
        require(0 <= self.crop_margin < 0.5, "crop_margin", "in [0, 0.5)", self.crop_margin)
        for name in ("brightness", "contrast", "saturation"):
            require(0 <= getattr(self, name) < 1, name, "in [0, 1)", getattr(self, name))


@dataclass
class Geometry:
    """One geometric draw: crop box ``(x0, y0, width, height)`` in pixels, then a flip."""

    x0: int
    y0: int
    width: int
    height: int
    flip: bool

    def points(self, points_xy: np.ndarray) -> np.ndarray:
        """(N, 2) float (x, y) image pixels → (x, y) pixels of the (flipped) crop."""
        out = np.asarray(points_xy, dtype=np.float64).reshape(-1, 2) - (self.x0, self.y0)
        if self.flip:
            out[:, 0] = (self.width - 1) - out[:, 0]
        return out

    def image(self, image: np.ndarray) -> np.ndarray:
        """uint8 (H, W, 3) → the (flipped) crop, uint8 (height, width, 3), contiguous."""
        crop = image[self.y0 : self.y0 + self.height, self.x0 : self.x0 + self.width]
        return np.ascontiguousarray(crop[:, ::-1] if self.flip else crop)


def identity_geometry(image_size: tuple[int, int]) -> Geometry:
    """The whole image, unflipped; ``image_size`` is (H, W)."""
    return Geometry(0, 0, int(image_size[1]), int(image_size[0]), False)


def _crop_start(
    rng: np.random.Generator, lo_pt: float, hi_pt: float, side: int, crop: int, margin: float
) -> int:
    """A start in [0, side - crop] keeping [lo_pt, hi_pt] inside the crop (with margin)."""
    lo = max(0.0, hi_pt + margin * crop - (crop - 1))
    hi = min(float(side - crop), lo_pt - margin * crop)
    first, last = int(np.ceil(lo)), int(np.floor(hi))
    if first <= last:
        return int(rng.integers(first, last + 1))
    # The margin cannot be kept (the crop is the whole side): centre the points' extent.
    return int(min(max(round((lo_pt + hi_pt - crop + 1) / 2), 0), side - crop))


def draw_geometry(
    rng: np.random.Generator,
    image_size: tuple[int, int],
    points_xy: np.ndarray,
    config: AugmentConfig,
) -> Geometry:
    """A random crop (aspect ratio kept) containing every point of ``points_xy``, and a flip.

    ``image_size`` is (H, W); ``points_xy`` is (N, 2) (x, y) pixels, all points of both frames.
    """
    height, width = int(image_size[0]), int(image_size[1])
    pts = np.asarray(points_xy, dtype=np.float64).reshape(-1, 2)
    scale = rng.uniform(min(config.min_scale, 1.0), 1.0)
    if len(pts):
        room = 1.0 - 2.0 * config.crop_margin
        extent_x = (pts[:, 0].max() - pts[:, 0].min() + 1) / (width * room)
        extent_y = (pts[:, 1].max() - pts[:, 1].min() + 1) / (height * room)
        scale = max(scale, extent_x, extent_y)
    scale = min(scale, 1.0)
    crop_w = min(width, max(1, round(scale * width)))
    crop_h = min(height, max(1, round(scale * height)))
    if len(pts):
        x0 = _crop_start(rng, pts[:, 0].min(), pts[:, 0].max(), width, crop_w, config.crop_margin)
        y0 = _crop_start(rng, pts[:, 1].min(), pts[:, 1].max(), height, crop_h, config.crop_margin)
    else:
        x0 = int(rng.integers(0, width - crop_w + 1))
        y0 = int(rng.integers(0, height - crop_h + 1))
    flip = bool(rng.random() < config.flip_prob)
    return Geometry(x0, y0, crop_w, crop_h, flip)


def jitter_colours(image: np.ndarray, factors: Sequence[float]) -> np.ndarray:
    """uint8 (H, W, 3) RGB with ``factors`` = (brightness, contrast, saturation) → uint8 RGB.

    Brightness scales every value; contrast scales the distance to the mean grey level;
    saturation scales each pixel's distance to its own grey level (ITU-R 601 luma).
    """
    brightness, contrast, saturation = factors
    out = image.astype(np.float32) * brightness
    grey = out @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    out = (out - grey.mean()) * contrast + grey.mean()
    grey = out @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    out = grey[..., None] + (out - grey[..., None]) * saturation
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


class PairDataset(Dataset):
    """Training pairs → tensors at the network input size.

    ``input_size`` is the network input (h, w), ``resize`` the image resize mode
    (:data:`samic_vos.model.backbone.RESIZE_MODES`). An item is a dict:

    - ``ref_image``, ``tgt_image``: float32 (3, h, w), normalised as the backbone expects
      (only when ``with_images``);
    - ``ref_heat``, ``tgt_heat``: float32 (1, h, w) in [0, 1], Gaussians at the points;
    - ``tgt_fix``: float32 (1, h, w), the target's binary fixation (point) map.

    Augmentation is drawn from ``(seed, epoch, index)``; call :meth:`set_epoch` every epoch.
    """

    def __init__(
        self,
        pairs: Sequence[TrainingPair],
        input_size: tuple[int, int],
        augment: AugmentConfig | None = None,
        heat_sigma: float = DEFAULT_SIGMA,
        seed: int = 0,
        resize: str = RESIZE_MODES[0],
    ) -> None:
        self.pairs = list(pairs)
        self.input_size = (int(input_size[0]), int(input_size[1]))
        self.augment = augment if augment is not None else AugmentConfig(enabled=False)
        self.heat_sigma = heat_sigma
        self.seed = seed
        self.resize = resize
        self.epoch = 0

    def __len__(self) -> int:
        return len(self.pairs)

    @property
    def deterministic(self) -> bool:
        """True when items never change between epochs (no augmentation): cacheable."""
        return not self.augment.enabled

    def set_epoch(self, epoch: int) -> None:
        """Select the augmentation draws of ``epoch``."""
        self.epoch = int(epoch)

    def frame_keys(self, index: int) -> tuple[str, str]:
        """Identifiers of the reference and target frames of item ``index`` (for caching)."""
        pair = self.pairs[index]
        return str(pair.ref_frame), str(pair.tgt_frame)

    def __getitem__(self, index: int) -> dict[str, object]:
        return self.item(index, with_images=True)

    def item(self, index: int, with_images: bool = True) -> dict[str, object]:
        """Item ``index`` (see the class docstring); images are skipped unless ``with_images``."""
        pair = self.pairs[index]
        ref_pts = np.asarray(pair.ref_points, dtype=np.float64).reshape(-1, 2)
        tgt_pts = np.asarray(pair.tgt_points, dtype=np.float64).reshape(-1, 2)
        image_size = (int(pair.image_size[0]), int(pair.image_size[1]))
        if self.augment.enabled:
            rng = np.random.default_rng([self.seed, self.epoch, index])
            geometry = draw_geometry(rng, image_size, np.vstack([ref_pts, tgt_pts]), self.augment)
            spans = (self.augment.brightness, self.augment.contrast, self.augment.saturation)
            factors = [rng.uniform(1.0 - v, 1.0 + v) for v in spans]
        else:
            geometry, factors = identity_geometry(image_size), None
        crop_size = (geometry.height, geometry.width)
        ref_xy, tgt_xy = geometry.points(ref_pts), geometry.points(tgt_pts)
        item: dict[str, object] = {
            "ref_heat": self._heat(ref_xy, crop_size),
            "tgt_heat": self._heat(tgt_xy, crop_size),
            "tgt_fix": torch.from_numpy(fixation_map(tgt_xy, crop_size, self.input_size))[None],
        }
        if with_images:
            for key, path in (("ref_image", pair.ref_frame), ("tgt_image", pair.tgt_frame)):
                image = geometry.image(read_image(path, upright=pair.upright))
                if factors is not None:
                    image = jitter_colours(image, factors)
                item[key] = preprocess(image, self.input_size, self.resize)[0]
        return item

    def _heat(self, points_xy: np.ndarray, crop_size: tuple[int, int]) -> torch.Tensor:
        heat = points_to_heatmap(points_xy, crop_size, self.input_size, sigma=self.heat_sigma)
        return torch.from_numpy(np.asarray(heat, dtype=np.float32))[None]
