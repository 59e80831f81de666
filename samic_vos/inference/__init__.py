"""The inference layer: prompters (SAMIC, PerSAM, previous mask), the causal tracker and the few-
shot engine. Imports only the layers below it."""
