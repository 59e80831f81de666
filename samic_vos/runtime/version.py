"""The package version (one place: ``pyproject.toml`` reads it, run manifests record it)."""

__version__ = "0.1.0"
