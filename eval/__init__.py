"""Scoring (installed as ``samic_vos.eval``): DAVIS J&F identical to the official toolkit."""
