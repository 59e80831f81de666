"""The reports layer: overlays and HTML reports with figures. Imports only the layers below it
(scoring included)."""
