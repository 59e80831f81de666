"""The data layer: dataset readers (DAVIS, few-shot sets, SAMBOX format), frame sources, mask and
video I/O. Imports only the runtime layer."""
