"""The names the SAM layer accepts (architectures, encoder precisions), apart from the torch
code so that the command-line parser can offer them without importing torch."""

from __future__ import annotations

OFFICIAL_MODELS: tuple[str, ...] = ("vit_b", "vit_l", "vit_h")
PRECISIONS: tuple[str, ...] = ("auto", "fp32", "bf16", "fp16")
