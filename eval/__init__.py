"""Scoring (installed as ``samic_vos.eval``): DAVIS J&F identical to the official toolkit, and
few-shot mIoU / FB-IoU as HSNet and PerSAM define them."""
