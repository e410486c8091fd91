"""Seed 002's ``neurovfm`` package (NeuroVFM-style neuroimaging data pipeline) as a thin layer over ctlens.

Replace ``from neurovfm.data import ...`` with ``from ctlens.compat.neurovfm.data import ...`` and
``from neurovfm.datasets import ...`` with ``from ctlens.compat.neurovfm.datasets import ...``; nothing else:

- :mod:`ctlens.compat.neurovfm.data`: ``load_image``, ``prepare_for_inference``, ``DatasetMetadata``, ``CacheManager``
  over :mod:`ctlens.preprocess.prepare` and :mod:`ctlens.cache`;
- :mod:`ctlens.compat.neurovfm.datasets`: ``ImageDataset``, ``StudyAwareBatchSampler`` over :mod:`ctlens.data`
  (needs torch).

Differences from the original are listed in ``docs/coming_from_neurovfm.md``.
"""
