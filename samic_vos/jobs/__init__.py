"""The jobs layer: what more than one pipeline runs (job configs, the loop that tracks a video into
files, segment's inputs and records). Imports only the layers below it."""
