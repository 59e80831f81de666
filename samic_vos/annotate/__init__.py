"""SAMBOX, the annotation tool: a local web app where a person clicks points, sees SAM's mask
and confidence at once, and saves the prompts (SAMBOX format) and masks.

- :mod:`~samic_vos.annotate.image_folder`: the images, read safely (only inside the folder);
- :mod:`~samic_vos.annotate.embedding_cache`: SAM embeddings cached on disk, next ones ahead;
- :mod:`~samic_vos.annotate.session_store`: objects, instances, clicks and undo history;
- :mod:`~samic_vos.annotate.prompt_decoding`: prompts → masks, instances unioned;
- :mod:`~samic_vos.annotate.annotator`: one folder's annotation work, without HTTP;
- :mod:`~samic_vos.annotate.server`: the FastAPI app (bound to 127.0.0.1) and ``static/``;
- :mod:`~samic_vos.annotate.browser`: the page driven in headless Chromium (tests, benchmark).

The brush and eraser's rasteriser is :mod:`samic_vos.data.mask_edits`; the export button runs
:mod:`samic_vos.data.exports`. This package's import loads nothing (the CLI reads
:data:`IMPORT_AS` without loading torch).
"""

IMPORT_AS = ("clicks", "masks")  # what --import-masks makes of a mask: prompts, or the mask
