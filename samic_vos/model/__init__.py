"""The model layer: the SAMIC network (backbone, 4D convolution, learner, decoder) and its
checkpoints. Imports only the layers below it."""
