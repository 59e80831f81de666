"""The frozen ResNet-50 feature pyramid SAMIC correlates, and image preprocessing for it.

The pyramid is HSNet's: the outputs of the 13 bottleneck blocks of ResNet-50's layer2 (4 blocks,
stride 8, 512 channels), layer3 (6 blocks, stride 16, 1024 channels) and layer4 (3 blocks,
stride 32, 2048 channels), each taken after the residual addition and before the block's final
ReLU. The backbone never trains: its parameters are frozen and it stays in eval mode (batch-norm
running statistics fixed) even when the model around it is put in training mode.
"""

from __future__ import annotations

import logging
import os

import cv2
import numpy as np
import torch
from PIL import Image
from torch import Tensor, nn
from torchvision.models import resnet50
from torchvision.models.resnet import Bottleneck

from samic_vos.runtime.errors import UserError

log = logging.getLogger(__name__)

IMAGENET_MEAN = (0.485, 0.456, 0.406)  # RGB, for images scaled to [0, 1]
IMAGENET_STD = (0.229, 0.224, 0.225)
# Blocks per pyramid level (layer2, layer3, layer4) and their channels, fine to coarse.
LEVEL_BLOCKS = (4, 6, 3)
LEVEL_CHANNELS = (512, 1024, 2048)
NUM_FEATURES = sum(LEVEL_BLOCKS)
BACKBONE_KINDS = ("imagenet", "random")
# How an image is resized to the network input: "cv2" (cv2 area when shrinking, no aliasing on
# large video frames; linear when enlarging) or "pil_bilinear" (PIL's antialiased bilinear, what
# HSNet's torchvision Resize does). They change the features of one image by 4–8%.
RESIZE_MODES = ("cv2", "pil_bilinear")


def preprocess(
    image_rgb: np.ndarray, input_size: tuple[int, int], resize: str = RESIZE_MODES[0]
) -> Tensor:
    """An RGB image as the network's input batch.

    Args:
        image_rgb: ``(H, W, 3)`` uint8 RGB image, any size.
        input_size: ``(h, w)`` network input size; the image is resized to exactly this size
            (anisotropically: aspect ratio not kept).
        resize: one of :data:`RESIZE_MODES`: ``"cv2"``, area interpolation when shrinking,
            bilinear when enlarging; ``"pil_bilinear"``, PIL's bilinear filter (HSNet's).

    Returns:
        ``(1, 3, h, w)`` float32 tensor on the CPU, ImageNet-normalised (``(x/255 - mean) / std``).
    """
    if image_rgb.dtype != np.uint8 or image_rgb.ndim != 3 or image_rgb.shape[2] != 3:
        raise ValueError(
            f"preprocess expects an (H, W, 3) uint8 RGB image, got {image_rgb.dtype} "
            f"{image_rgb.shape}"
        )
    h, w = (int(v) for v in input_size)
    if resize == "pil_bilinear":
        resized = np.array(Image.fromarray(image_rgb).resize((w, h), Image.BILINEAR))
    elif resize == "cv2":
        shrink = h <= image_rgb.shape[0] and w <= image_rgb.shape[1]
        resized = cv2.resize(
            image_rgb, (w, h), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR
        )
    else:
        raise ValueError(f"unknown resize '{resize}' (choose one of: {', '.join(RESIZE_MODES)})")
    x = torch.from_numpy(np.ascontiguousarray(resized)).permute(2, 0, 1).float().div_(255.0)
    mean = torch.tensor(IMAGENET_MEAN).view(3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(3, 1, 1)
    return ((x - mean) / std).unsqueeze(0)


def _bottleneck_before_relu(block: Bottleneck, x: Tensor) -> Tensor:
    """A torchvision bottleneck block's output after the residual addition, before its ReLU."""
    out = block.relu(block.bn1(block.conv1(x)))
    out = block.relu(block.bn2(block.conv2(out)))
    out = block.bn3(block.conv3(out))
    identity = x if block.downsample is None else block.downsample(x)
    return out + identity


class ResNet50Pyramid(nn.Module):
    """Frozen ResNet-50 returning the 13 bottleneck feature maps of layer2–layer4.

    Built from a torchvision ``resnet50``; its classifier head (avgpool, fc) is dropped.
    """

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.stem = nn.Sequential(net.conv1, net.bn1, net.relu, net.maxpool)
        self.layer1, self.layer2 = net.layer1, net.layer2
        self.layer3, self.layer4 = net.layer3, net.layer4
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> ResNet50Pyramid:
        """Always eval mode: the frozen batch norms keep their ImageNet statistics."""
        return super().train(False)

    @torch.no_grad()
    def forward(self, images: Tensor) -> list[Tensor]:
        """Feature pyramid of ImageNet-normalised images.

        Args:
            images: ``(B, 3, H, W)`` float, ImageNet-normalised; any H, W ≥ 32.

        Returns:
            13 float tensors, fine to coarse: 4 of ``(B, 512, ⌈H/8⌉, ⌈W/8⌉)``, 6 of
            ``(B, 1024, ⌈H/16⌉, ⌈W/16⌉)``, 3 of ``(B, 2048, ⌈H/32⌉, ⌈W/32⌉)`` (pre-ReLU values).
        """
        if images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"expected images of shape (B, 3, H, W), got {tuple(images.shape)}")
        x = self.layer1(self.stem(images))
        feats: list[Tensor] = []
        for layer in (self.layer2, self.layer3, self.layer4):
            for block in layer:
                pre_relu = _bottleneck_before_relu(block, x)
                feats.append(pre_relu)
                x = torch.relu(pre_relu)
        return feats


def build_backbone(
    kind: str, seed: int = 0, weights: str | os.PathLike[str] | None = None
) -> ResNet50Pyramid:
    """The frozen ResNet-50 pyramid.

    Args:
        kind: ``"imagenet"``: torchvision's ImageNet weights, from ``weights`` or else through
            the weights registry (downloaded into the cache when online; offline, a one-line
            UserError naming the ``backbone_weights`` argument). ``"random"``: torchvision's random
            initialisation drawn from ``seed`` (the global RNG is left untouched), with a loud
            warning that the backbone is untrained.
        seed: seed of the random initialisation (``kind="random"`` only).
        weights: path of a ResNet-50 state dict (``kind="imagenet"`` only).
    """
    if kind == "imagenet":
        from samic_vos.hub.weights import load_checkpoint, resolve

        flag = "`backbone_weights`"
        path = resolve("resnet50_imagenet", path=weights, flag=flag)
        state = load_checkpoint(path, map_location="cpu")
        net = resnet50(weights=None)
        try:
            net.load_state_dict(state)
        except RuntimeError as err:
            raise UserError(
                f"{path}: not a torchvision ResNet-50 state dict (keys or shapes differ); "
                f"pass torchvision's ResNet-50 ImageNet weights with {flag}"
            ) from err
        return ResNet50Pyramid(net)
    if kind == "random":
        if weights is not None:
            raise UserError(
                f"backbone weights given for a random backbone (rebuilt from seed {seed}); "
                "drop `backbone_weights`"
            )
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            net = resnet50(weights=None)
        message = (
            f"SAMIC backbone is RANDOMLY INITIALISED (seed {seed}), NOT ImageNet-trained: "
            "results are for tests and experiments only"
        )
        log.warning(message)
        return ResNet50Pyramid(net)
    raise UserError(f"unknown backbone '{kind}' (choose one of: {', '.join(BACKBONE_KINDS)})")
