"""The names of the segmenters (``--sam-model``, YAML ``sam_model``, the Python API's
``sam_model``): one table, light (no torch, no model package), so that the command-line parser
can list them without importing any model.

Each name is one model of one *family*, the package that builds and runs it:

- ``sam``: Meta's ``segment-anything`` (ViT-B/L/H);
- ``hq``: HQ-SAM, through its official ``segment-anything-hq`` package (ViT-B/L/H);
- ``medsam``: MedSAM, SAM ViT-B weights fine-tuned on medical images, run in SAM's
  architecture with MedSAM's own pre-processing (``segment-anything`` and ``scikit-image``);
- ``sam2``: SAM 2.1's image models through Meta's ``sam2`` package (hiera tiny, small, base+,
  large), used as an image predictor, never its video memory.

The ``tiny*`` names are the tests' random-weight models of each family (no downloadable weights).
"""

from __future__ import annotations

from dataclasses import dataclass

FAMILIES: tuple[str, ...] = ("sam", "hq", "medsam", "sam2")

# The pip extra that installs each family's package (``sam`` is a core dependency).
FAMILY_EXTRAS: dict[str, str | None] = {"sam": None, "hq": "hq", "medsam": "medsam", "sam2": "sam2"}


@dataclass(frozen=True)
class ModelName:
    """One segmenter a user can name.

    Attributes:
        family: one of :data:`FAMILIES`.
        size: the family's own size name (``vit_b``, ``tiny`` ...; for SAM 2.1 the hydra config
            in the ``sam2`` package: ``configs/sam2.1/sam2.1_hiera_t.yaml`` ...).
        weights: the weights registry entry of its official checkpoint, ``None`` for the
            tests' random models.
    """

    family: str
    size: str
    weights: str | None


SAM_MODELS: dict[str, ModelName] = {
    "vit_b": ModelName("sam", "vit_b", "sam_vit_b"),
    "vit_l": ModelName("sam", "vit_l", "sam_vit_l"),
    "vit_h": ModelName("sam", "vit_h", "sam_vit_h"),
    "hq_vit_b": ModelName("hq", "vit_b", "sam_hq_vit_b"),
    "hq_vit_l": ModelName("hq", "vit_l", "sam_hq_vit_l"),
    "hq_vit_h": ModelName("hq", "vit_h", "sam_hq_vit_h"),
    "medsam_vit_b": ModelName("medsam", "vit_b", "medsam_vit_b"),
    "sam2.1_hiera_tiny": ModelName("sam2", "configs/sam2.1/sam2.1_hiera_t.yaml", "sam2.1_hiera_t"),
    "sam2.1_hiera_small": ModelName("sam2", "configs/sam2.1/sam2.1_hiera_s.yaml", "sam2.1_hiera_s"),
    "sam2.1_hiera_base_plus": ModelName(
        "sam2", "configs/sam2.1/sam2.1_hiera_b+.yaml", "sam2.1_hiera_b+"
    ),
    "sam2.1_hiera_large": ModelName("sam2", "configs/sam2.1/sam2.1_hiera_l.yaml", "sam2.1_hiera_l"),
    # The tests' random-weight models, one per family (built at reduced sizes by each
    # package's own builder; see samic_vos.sam.families).
    "tiny": ModelName("sam", "tiny", None),
    "tiny_hq": ModelName("hq", "tiny", None),
    "tiny_medsam": ModelName("medsam", "tiny", None),
    "tiny_sam2": ModelName("sam2", "tiny", None),
}

OFFICIAL_MODELS: tuple[str, ...] = tuple(n for n, m in SAM_MODELS.items() if m.weights)
DEFAULT_SAM_MODEL = "vit_b"


def family_of(name: str) -> str:
    """The family (:data:`FAMILIES`) of the model ``name`` (a key of :data:`SAM_MODELS`)."""
    return SAM_MODELS[name].family


# The encoder's precisions (``--precision``, ``encoder.precision``): ``auto`` picks per device.
PRECISIONS: tuple[str, ...] = ("auto", "fp32", "bf16", "fp16")
