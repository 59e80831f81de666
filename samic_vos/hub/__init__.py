"""The hub layer: the weights registry and dataset downloads (resumable, verified). Imports only
the layers below it."""
