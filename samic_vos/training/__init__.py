"""The training layer: training pairs, optical flow, losses, the trainer, first-frame adaptation
and the training job. Imports only the layers below it."""
