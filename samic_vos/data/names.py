"""The names the data layer accepts (DAVIS years and resolutions, frame decoders, few-shot
layouts), apart from the readers so that the command-line parser can offer them without
importing numpy, Pillow or a decoder. The readers import them from here."""

from __future__ import annotations

# DAVIS (samic_vos.data.davis).
YEARS: tuple[str, ...] = ("2016", "2017")
DEFAULT_YEAR = "2017"  # every job's default (the benchmark of the official toolkit)
RESOLUTIONS: tuple[str, ...] = ("480p", "Full-Resolution")

# Frame sources (samic_vos.data.frame_source).
BACKENDS: tuple[str, ...] = ("auto", "decord", "pyav", "folder")
# A folder of images (or a video declaring no rate) has no frame rate; overlays of it play at
# this rate unless told otherwise.
DEFAULT_FOLDER_FPS = 24.0
VIDEO_INPUT = "video or frame folder"  # what a frame source reads, in messages

# Few-shot image sets (samic_vos.data.fewshot_sets, samic_vos.data.fewshot_readers).
FEWSHOT_KINDS: tuple[str, ...] = ("fss1000", "perseg", "folder", "sambox")
FSS_SPLITS: tuple[str, ...] = ("train", "val", "test")
FOLD_KINDS: tuple[str, ...] = ("pascal5i", "coco20i")  # sets tested fold by fold
LISTED_KINDS: tuple[str, ...] = ("kvasir", "nwpu-vhr10", "labelme")  # split by image lists
# The sets whose masks `data prepare` derives from the downloaded archives (samic_vos.hub.prepare):
# the fold sets (SBD → SegmentationClassAug, COCO instances JSON → semantic PNGs).
PREPARED_KINDS: tuple[str, ...] = FOLD_KINDS
# Every layout `bench fewshot` tests.
TEST_KINDS: tuple[str, ...] = (*FEWSHOT_KINDS, *FOLD_KINDS, *LISTED_KINDS)
