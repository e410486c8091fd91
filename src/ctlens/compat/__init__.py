"""Facades of the original systems in ``../shared/seeds/``: their interfaces, as their users know them, as thin
layers over ctlens.

Each module is named after the original's module and only translates: it parses the original's arguments, calls
ctlens functions below it and returns the original's shapes. Like ``ctlens.api`` and ``ctlens.cli``, nothing in
ctlens imports this package. Every difference from the originals is listed in ``docs/coming_from_*.md``.

- :mod:`ctlens.compat.ct_compression`: ``CTScanCompressor`` (seed 000, CT scan compression for LLM APIs) over
  :mod:`ctlens.codec` and :func:`ctlens.llm.payload.build_payload`; ``python -m ctlens.compat.ct_compression``.
- :mod:`ctlens.compat.neurovfm`: seed 002's ``neurovfm.data`` (``load_image``, ``prepare_for_inference``,
  ``DatasetMetadata``, ``CacheManager``) and ``neurovfm.datasets`` (``ImageDataset``, ``StudyAwareBatchSampler``)
  over :mod:`ctlens.preprocess`, :mod:`ctlens.cache` and :mod:`ctlens.data`.
- :mod:`ctlens.compat.ctclip`: seed 003's scripts (``run_preprocess``, ``run_train``, ``eval``, ``zero_shot``,
  ``split_validation``, ``impression_section``) with their flags, over ``preprocess-h5`` / ``ctlens clip``;
  CT-RATE volumes are read with their metadata CSV (:mod:`ctlens.io.ct_rate`).
"""
