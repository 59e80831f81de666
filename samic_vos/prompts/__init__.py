"""The prompts layer: heat maps, peaks and points from masks (all in (x, y) pixels). Imports only
the layers below it."""
