"""The SAM layer: Segment Anything models, how their image encoder runs, and the segmenter over
them. Imports only the layers below it."""
