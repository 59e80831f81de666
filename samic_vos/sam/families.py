"""The segmenter families beside SAM: HQ-SAM, MedSAM, SAM 2.1 (names: :mod:`samic_vos.sam.names`).

Each family is a :class:`~samic_vos.sam.segmenter.SamSegmenter` whose model-specific steps
(pre-processing, encoder, prompt frame, decoder, upscaling) are those of the family's own
predictor, so masks, logits and scores equal it (tests/test_families.py):

- :class:`HqSegmenter`: ``segment_anything_hq``'s ``SamPredictor`` (SAM's pre-processing; the
  encoder also gives the ViT features after its first global block, which the HQ decoder
  reads; the SAM + HQ mask sum, ``hq_token_only=False``, the package's default). Its encoder
  is the package's own forward (``encoder.implementation`` does not apply), under
  ``encoder.precision``.
- :class:`MedSamSegmenter`: MedSAM's inference recipe (``MedSAM_Inference.py``): the image
  resized to 1024² by scikit-image (bicubic, anti-aliased), min-max scaled to [0, 1], no mean or
  std; prompts scaled by 1024 / (W, H); the decoder's low-resolution probabilities (sigmoid)
  resized bilinearly to the image, a pixel in the mask when its probability exceeds 0.5. Our
  logits are ``logit(p)`` of those probabilities (clamped to 1e-6), so ``logits > 0`` is
  exactly MedSAM's mask. Its encoder is ours (SAM's ViT-B).
- :class:`Sam2Segmenter`: ``sam2``'s ``SAM2ImagePredictor``: its transforms (1024² resize,
  ImageNet normalisation), ``forward_image`` with the "no memory" embedding added, the image
  embedding plus two high-resolution feature maps, boxes prompted as SAM 2's corner points, the
  mask decoder's stability fallback of ``build_sam2``. Nothing of the video memory runs. The
  neck's sine position encodings (read by the video memory only) are kept once per map size
  and dtype and handed out as views (:class:`SharedPositions`) instead of copied per image.

Model builders for the random-weight models (tests) and the official sizes are here too.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from samic_vos.runtime.errors import UserError
from samic_vos.sam.encoder import EncoderConfig, SamImageEncoder, resolve_precision
from samic_vos.sam.names import FAMILY_EXTRAS
from samic_vos.sam.segmenter import ImageEmbedding, SamSegmenter
from samic_vos.sam.vit_sam import PIXEL_MEAN, assemble_sam

# SAM 2.1 at test size: each hydra key of the package's tiny config shrunk (Hiera of 5 blocks,
# 128-pixel input, 32 channels); the memory modules are shrunk too, though never run here.
TINY_SAM2_OVERRIDES: tuple[str, ...] = (
    "++model.image_size=128",
    "++model.image_encoder.trunk.embed_dim=8",
    "++model.image_encoder.trunk.num_heads=1",
    "++model.image_encoder.trunk.stages=[1,1,2,1]",
    "++model.image_encoder.trunk.global_att_blocks=[3]",
    "++model.image_encoder.trunk.window_spec=[4,4,4,2]",
    "++model.image_encoder.trunk.window_pos_embed_bkg_spatial_size=[2,2]",
    "++model.image_encoder.neck.backbone_channel_list=[64,32,16,8]",
    "++model.image_encoder.neck.d_model=32",
    "++model.image_encoder.neck.position_encoding.num_pos_feats=32",
    "++model.memory_attention.d_model=32",
    "++model.memory_attention.num_layers=1",
    "++model.memory_attention.layer.d_model=32",
    "++model.memory_attention.layer.dim_feedforward=32",
    "++model.memory_attention.layer.self_attention.embedding_dim=32",
    "++model.memory_attention.layer.self_attention.feat_sizes=[8,8]",
    "++model.memory_attention.layer.cross_attention.embedding_dim=32",
    "++model.memory_attention.layer.cross_attention.feat_sizes=[8,8]",
    "++model.memory_attention.layer.cross_attention.kv_in_dim=16",
    "++model.memory_encoder.in_dim=32",
    "++model.memory_encoder.out_dim=16",
    "++model.memory_encoder.position_encoding.num_pos_feats=16",
    "++model.memory_encoder.mask_downsampler.embed_dim=32",
    "++model.memory_encoder.fuser.layer.dim=32",
)
TINY_SAM2_CONFIG = "configs/sam2.1/sam2.1_hiera_t.yaml"
# MedSAM's recipe keeps probabilities; logits are recovered with this clamp (|logit| <= 13.8).
_MEDSAM_EPS = 1e-6


def require_package(family: str) -> None:
    """Import ``family``'s package (first, here: its import-time notices are not the user's to
    act on — segment_anything_hq's timm imports warn of timm's own deprecations and registry
    names, five lines on every run); :class:`UserError` in one line when it is not installed."""
    module = {"hq": "segment_anything_hq", "medsam": "skimage", "sam2": "sam2"}.get(family)
    if module is None:
        return
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            warnings.filterwarnings("ignore", "Overwriting .* in registry", UserWarning)
            __import__(module)
    except ImportError as err:
        raise UserError(
            f"the {family} segmenters need the {module} package: pip install "
            f"'samic-vos[{FAMILY_EXTRAS[family]}]'"
        ) from err


def make_hq(arch: Any) -> torch.nn.Module:
    """An untrained HQ-SAM of ``arch`` (a :class:`~samic_vos.sam.models.SamArch`), from
    ``segment_anything_hq``'s own modules as its ``build_sam`` assembles them."""
    import segment_anything_hq.modeling as modeling

    decoder = modeling.MaskDecoderHQ
    return assemble_sam(arch, modeling, decoder, vit_dim=arch.encoder_embed_dim).eval()


def make_sam2(config: str) -> torch.nn.Module:
    """An untrained SAM 2.1 model by ``sam2``'s own builder (``build_sam2``, with its default
    post-processing: the decoder's multimask fallback for unstable single masks); ``config``:
    the package's hydra config, or ``tiny`` for the tests' model."""
    from sam2.build_sam import build_sam2

    overrides = list(TINY_SAM2_OVERRIDES) if config == "tiny" else []
    name = TINY_SAM2_CONFIG if config == "tiny" else config
    return build_sam2(name, None, device="cpu", hydra_overrides_extra=overrides)


def detect_family(state_dict: dict[str, Any]) -> str:
    """The family a checkpoint's state dict belongs to, by its keys: ``sam2`` (a Hiera trunk),
    ``hq`` (the HQ token), else ``sam`` (MedSAM's weights have SAM's keys and shapes, so a
    MedSAM file is told from a SAM one only by its name in the registry)."""
    if any(key.startswith("image_encoder.trunk.") for key in state_dict):
        return "sam2"
    if "mask_decoder.hf_token.weight" in state_dict:
        return "hq"
    return "sam"


def _precision_encoder(
    forward: Any, config: EncoderConfig, device: torch.device
) -> SamImageEncoder:
    """The package's own encoder forward, under ``config``'s precision (autocast; ``auto`` as
    :func:`~samic_vos.sam.encoder.resolve_precision` picks it: on an AVX512-BF16 CPU, bf16
    autocast measured 1.55x faster than fp32 for SAM 2.1 hiera tiny and 1.8x for HQ-SAM ViT-B,
    BENCHMARKS.md "bf16 for every family")."""
    return SamImageEncoder(forward, device, resolve_precision(config.precision, device), False)


class HqSegmenter(SamSegmenter):
    """HQ-SAM (``segment_anything_hq``) as a segmenter; see the module docstring."""

    family = "hq"

    def _build_encoder(self, config: EncoderConfig) -> SamImageEncoder:
        from segment_anything_hq.utils.transforms import ResizeLongestSide

        self.transform = ResizeLongestSide(self.sam.image_encoder.img_size)

        def forward(images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            features, interm = self.sam.image_encoder(images)
            return features, interm[0]  # the HQ decoder reads the first global block's only

        return _precision_encoder(forward, config, self.device)

    def _encode(self, rgb: np.ndarray) -> ImageEmbedding:
        pixels = self._resized(rgb)
        features, vit = self.encoder(self.sam.preprocess(pixels))
        return ImageEmbedding(
            features=features,
            input_size=(int(pixels.shape[-2]), int(pixels.shape[-1])),
            original_size=(int(rgb.shape[0]), int(rgb.shape[1])),
            extras=(vit,),
        )

    def _mask_decoder(
        self, sparse: torch.Tensor, dense: torch.Tensor, multimask: bool
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """HQ's decoder picks the best of the three masks itself: (B, 1, 4h, 4w), (B, 1)."""
        if self._image_pe is None:
            self._image_pe = self.sam.prompt_encoder.get_dense_pe()
        embedding = self.embedding
        return self.sam.mask_decoder(
            image_embeddings=embedding.features,
            image_pe=self._image_pe,
            sparse_prompt_embeddings=sparse,
            dense_prompt_embeddings=dense,
            multimask_output=multimask,
            hq_token_only=False,
            interm_embeddings=list(embedding.extras),
        )


class _SquareResize(SamSegmenter):
    """A family whose encoder input is the image resized to a square (no padding)."""

    def _side(self) -> int:
        raise NotImplementedError

    def _to_input_frame(self, xy: np.ndarray) -> np.ndarray:
        rows, cols = self.embedding.original_size
        scale = np.array([cols, rows], dtype=np.float32)
        return (np.asarray(xy, np.float32) / scale * np.float32(self._side())).astype(np.float32)

    def mask_as_image(self, mask: np.ndarray, value: int) -> torch.Tensor:
        """PerSAM's reading of a mask (``SamSegmenter.mask_as_image``) for a square family: the
        mask resized bilinearly to the input square, times ``value``, less SAM's red pixel mean
        (SAM 2 normalises by the same ImageNet mean; ours: PerSAM defines it for SAM's
        pre-processing only)."""
        side = self._side()
        resized = F.interpolate(
            torch.from_numpy(mask.astype(np.float32))[None, None],
            size=(side, side),
            mode="bilinear",
        )
        return (resized[0, 0] * value - PIXEL_MEAN[0]).to(self.device)


class MedSamSegmenter(_SquareResize):
    """MedSAM (SAM ViT-B weights, MedSAM's pre- and post-processing); see the module docstring."""

    family = "medsam"

    def _side(self) -> int:
        return int(self.sam.image_encoder.img_size)

    def _encode(self, rgb: np.ndarray) -> ImageEmbedding:
        from skimage import transform

        side = self._side()
        square = transform.resize(
            rgb, (side, side), order=3, preserve_range=True, anti_aliasing=True
        ).astype(np.uint8)
        scaled = (square - square.min()) / np.clip(square.max() - square.min(), 1e-8, None)
        pixels = torch.tensor(scaled).float().permute(2, 0, 1)[None].to(self.device)
        return ImageEmbedding(
            features=self.encoder(pixels),
            input_size=(side, side),
            original_size=(int(rgb.shape[0]), int(rgb.shape[1])),
        )

    def upscale(self, low_res: torch.Tensor, embedding: ImageEmbedding) -> torch.Tensor:
        probability = F.interpolate(
            torch.sigmoid(low_res),
            size=embedding.original_size,
            mode="bilinear",
            align_corners=False,
        )
        return torch.logit(probability, eps=_MEDSAM_EPS)


class SharedPositions(torch.nn.Module):
    """SAM 2's neck position encoding, computed once per feature-map size, dtype and device and
    returned as an expanded view.

    ``sam2``'s ``PositionEmbeddingSine`` caches each map's encoding but returns a fresh copy of
    it per image (``repeat``) that the neck then casts to the map's dtype (a second copy under
    autocast): ~0.1 s a frame on a 2-core CPU for the 256×256×256 map alone, for encodings the
    image path never reads. The values are the package's own. No parameters: the model's
    ``state_dict`` is unchanged.
    """

    def __init__(self, inner: torch.nn.Module) -> None:
        super().__init__()
        self.inner = inner
        self._kept: dict[tuple, torch.Tensor] = {}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) feature map → (B, D, H, W) encoding: a view of one (1, D, H, W)."""
        key = (x.shape[-2], x.shape[-1], x.dtype, x.device)
        kept = self._kept.get(key)
        if kept is None:
            kept = self._kept[key] = self.inner(x[:1]).to(x.dtype)
        return kept.expand(x.shape[0], -1, -1, -1)


class Sam2Segmenter(_SquareResize):
    """SAM 2.1's image model (``sam2``) as a segmenter; see the module docstring."""

    family = "sam2"

    def _side(self) -> int:
        return int(self.sam.image_size)

    def _build_encoder(self, config: EncoderConfig) -> SamImageEncoder:
        from sam2.utils.transforms import SAM2Transforms

        side = self._side()
        with warnings.catch_warnings():  # sam2 scripts its transforms; torch 2.14 warns of it
            warnings.filterwarnings("ignore", ".*torch.jit.script.* is deprecated", FutureWarning)
            self.transforms = SAM2Transforms(resolution=side, mask_threshold=0.0)
        sizes = [(side // 4, side // 4), (side // 8, side // 8), (side // 16, side // 16)]
        model = self.sam
        neck = model.image_encoder.neck
        if not isinstance(neck.position_encoding, SharedPositions):  # a second segmenter
            neck.position_encoding = SharedPositions(neck.position_encoding)

        def forward(images: torch.Tensor) -> tuple[torch.Tensor, ...]:
            _, feats, _, _ = model._prepare_backbone_features(model.forward_image(images))
            if model.directly_add_no_mem_embed:
                feats[-1] = feats[-1] + model.no_mem_embed
            maps = [
                f.permute(1, 2, 0).view(1, -1, *size)
                for f, size in zip(feats[::-1], sizes[::-1], strict=True)
            ][::-1]
            return (maps[-1], *maps[:-1])

        return _precision_encoder(forward, config, self.device)

    def _encode(self, rgb: np.ndarray) -> ImageEmbedding:
        # torchvision's ToTensor warns (once, on the user's terminal) of a read-only array, as
        # decoded frames are: the same pixels, writable
        writable = rgb if rgb.flags.writeable else rgb.copy()
        pixels = self.transforms(writable)[None].to(self.device)
        features, *high_res = self.encoder(pixels)
        side = self._side()
        return ImageEmbedding(
            features=features,
            input_size=(side, side),
            original_size=(int(rgb.shape[0]), int(rgb.shape[1])),
            extras=tuple(high_res),
        )

    def _prompt_embeddings(
        self,
        points: tuple[torch.Tensor, torch.Tensor] | None,
        boxes: torch.Tensor | None,
        masks: torch.Tensor | None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """SAM 2 prompts a box as two corner points (labels 2, 3) before the points."""
        if boxes is not None:
            corners = boxes.reshape(-1, 2, 2)
            labels = torch.tensor([[2, 3]], dtype=torch.int, device=boxes.device)
            labels = labels.repeat(boxes.shape[0], 1)
            if points is not None:
                points = (torch.cat([corners, points[0]], 1), torch.cat([labels, points[1]], 1))
            else:
                points = (corners, labels)
        return self.sam.sam_prompt_encoder(points=points, boxes=None, masks=masks)

    def _mask_decoder(
        self, sparse: torch.Tensor, dense: torch.Tensor, multimask: bool
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if self._image_pe is None:
            self._image_pe = self.sam.sam_prompt_encoder.get_dense_pe()
        embedding = self.embedding
        low_res, iou, _, _ = self.sam.sam_mask_decoder(
            image_embeddings=embedding.features,
            image_pe=self._image_pe,
            sparse_prompt_embeddings=sparse,
            dense_prompt_embeddings=dense,
            multimask_output=multimask,
            repeat_image=sparse.shape[0] > 1,
            high_res_features=list(embedding.extras),
        )
        return low_res, iou

    def _decoder_transformer(self) -> torch.nn.Module:
        return self.sam.sam_mask_decoder.transformer

    def upscale(self, low_res: torch.Tensor, embedding: ImageEmbedding) -> torch.Tensor:
        return self.transforms.postprocess_masks(low_res, embedding.original_size)


SEGMENTERS: dict[str, type[SamSegmenter]] = {
    "sam": SamSegmenter,
    "hq": HqSegmenter,
    "medsam": MedSamSegmenter,
    "sam2": Sam2Segmenter,
}
