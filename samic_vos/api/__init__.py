"""The public Python API, re-exported lazily by ``samic_vos`` (README, "Python API").

:mod:`~samic_vos.api.models` loads SAM and SAMIC once (:func:`load_models`);
:mod:`~samic_vos.api.video` tracks the objects of one video (:class:`VideoTracker`);
:mod:`~samic_vos.api.images` segments images from K labelled references
(:class:`ImageSegmenter`). ``track`` and ``segment`` build their models, tracker and engine here.
"""
