"""``neurovfm.datasets`` (seed 002) as a thin layer over :mod:`ctlens.data`: ``ImageDataset`` and
``StudyAwareBatchSampler`` with the seed's arguments, item keys and batching.

What each name translates (every difference is listed in ``docs/coming_from_neurovfm.md``):

* :class:`ImageDataset` is :class:`ctlens.data.image_dataset.ImageDataset` with

  - ``random_crop=True``: random crops of :data:`DEFAULT_CROP` voxels ``(D, H, W)`` (a ``(D, H, W)`` tuple of
    multiples of ``(4, 16, 16)`` picks another size); a volume smaller than the crop is padded with background, so
    **every item has the same number of tokens** and torch's default collate gives ``img [B, N, 1024]``;
  - ``random_crop=False`` (default) with ``use_cache=True``: each item is padded with background to the largest
    volume of the dataset (read from the cache manifests), so the default collate works too, at the price of
    computing on padding (it is marked ``filtered``); with ``use_cache=False`` sizes are not known in advance and
    items keep their own size: batch them with ``batch_size=1`` or ``collate_fn=ctlens.data.collate_tokens``;
  - ``study_labels``: a CSV whose **first column** names the study (``study_id`` in the seed) and whose other
    columns are the labels, or a JSON ``{"study": label}``; integer class labels keep their values;
  - the modes saved in ``<data_dir>/metadata.json`` are used;
  - item keys as in the seed; ``size`` in tokens ``(D/4, H/16, W/16)``; ``path`` the image's path.

* :class:`StudyAwareBatchSampler`: every batch holds the images of **one** study (whole: a study with more
  images than ``batch_size`` is one larger batch, with a warning); studies are dealt to DDP ranks as ctlens does.

Example:
    >>> import pathlib, tempfile, nibabel as nib, numpy as np
    >>> from ctlens.compat.neurovfm.data import CacheManager
    >>> root = pathlib.Path(tempfile.mkdtemp())
    >>> for study, n in (("s1", 20), ("s2", 40)):
    ...     (root / "raw" / study).mkdir(parents=True)
    ...     ct = np.full((n, n, 3), -1000, np.int16); ct[5:15, 5:15] = 60
    ...     nib.save(nib.Nifti1Image(ct, np.eye(4)), root / "raw" / study / "ct.nii.gz")
    >>> _ = CacheManager(root).build_cache(num_workers=1, progress=False)
    >>> dataset = ImageDataset(root)
    >>> [tuple(dataset[i]["img"].shape) for i in range(2)], dataset[0]["size"].tolist()
    ([(9, 1024), (9, 1024)], [1, 3, 3])
"""

from __future__ import annotations

import csv
import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ctlens.compat.neurovfm.data import saved_mode_mapping
from ctlens.core.errors import CorruptFileError
from ctlens.data.image_dataset import ImageDataset as _ImageDataset
from ctlens.data.labels import StudyLabels, load_study_labels
from ctlens.data.sampler import StudyAwareBatchSampler as _StudyAwareBatchSampler

__all__ = ["DEFAULT_CROP", "ImageDataset", "StudyAwareBatchSampler", "seed_labels"]

log = logging.getLogger(__name__)

DEFAULT_CROP = (48, 224, 224)
"""``random_crop=True``: ``(D, H, W)`` voxels at 4 x 1 x 1 mm (19 x 22 x 22 cm, a whole head), 12 x 14 x 14 tokens."""


def _first_column(path: Path) -> str:
    try:
        with open(path, newline="") as fh:
            header = next(csv.reader(fh), None)
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise CorruptFileError(f"cannot read the labels ({exc})", path=path) from None
    if not header or not header[0].strip():
        raise CorruptFileError("a labels CSV needs a header row whose first column names the study", path=path)
    return header[0]


def _integer_classes(labels: StudyLabels) -> StudyLabels:
    """Multiclass labels named by integers keep their integer values (ctlens numbers classes in sorted order)."""
    if labels.task != "multiclass" or not labels.classes or not all(c.strip().isdigit() for c in labels.classes):
        return labels
    values = {k: np.int64(int(labels.classes[int(v)])) for k, v in labels.values.items()}
    top = max(int(v) for v in values.values())
    return StudyLabels("multiclass", [str(i) for i in range(top + 1)], values)


def seed_labels(source: str | os.PathLike[str] | Mapping[str, Any] | StudyLabels) -> StudyLabels:
    """Study labels in the seed's formats: CSV (first column = study, e.g. ``study_id``) or JSON ``{study: label}``.

    Example:
        >>> import pathlib, tempfile
        >>> p = pathlib.Path(tempfile.mkdtemp()) / "labels.csv"
        >>> _ = p.write_text("study_id,label\\npatient_001,2\\npatient_002,5\\n")
        >>> lab = seed_labels(p); lab.task, int(lab["patient_002"])
        ('multiclass', 5)
    """
    if isinstance(source, str | os.PathLike) and Path(source).suffix.lower() != ".json":
        labels = load_study_labels(source, study_column=_first_column(Path(source)))
    else:
        labels = load_study_labels(source)
    return _integer_classes(labels)


def _crop_size(random_crop: bool | Sequence[int] | None) -> tuple[int, ...] | None:
    if random_crop is None or random_crop is False:
        return None
    if random_crop is True:
        return DEFAULT_CROP
    if isinstance(random_crop, str) or not isinstance(random_crop, Sequence):
        raise ValueError(f"random_crop must be True, False or a (D, H, W) size, got {random_crop!r}")
    return tuple(int(c) for c in random_crop)


class ImageDataset(_ImageDataset):
    """The seed's ``ImageDataset`` (module doc); ``options`` go to :class:`ctlens.data.image_dataset.ImageDataset`."""

    def __init__(
        self,
        data_dir: str | os.PathLike[str],
        use_cache: bool = True,
        ct_window_probs: Sequence[float] = (0.7, 0.15, 0.15),
        random_crop: bool | Sequence[int] | None = False,
        augment: bool = False,
        tokenize: bool = True,
        study_labels: str | os.PathLike[str] | Mapping[str, Any] | StudyLabels | None = None,
        **options: Any,
    ) -> None:
        crop = _crop_size(random_crop)
        if options.get("mode_mapping") is None:
            options["mode_mapping"] = saved_mode_mapping(data_dir)
        labels = seed_labels(study_labels) if study_labels is not None else None
        pad_to = options.pop("pad_to", None)
        super().__init__(data_dir, use_cache, ct_window_probs, crop, augment, tokenize, labels, **options)
        self.pad_to = self._multiple_of_patch("pad_to", pad_to or crop or self._largest())

    def _largest(self) -> tuple[int, ...] | None:
        """The largest cached ``(D, H, W)`` over the dataset (``None`` on the fly: sizes are not known yet)."""
        if not self.use_cache or not self.entries:
            return None
        shapes = np.array([self.cache.manifest(e.study, e.image)["shape"] for e in self.entries], dtype=np.int64)
        return tuple(int(n) for n in shapes.max(axis=0))

    def __getitem__(self, index: int) -> dict[str, Any]:
        item = super().__getitem__(index)
        item["size"] = item["size"] // torch.as_tensor(self.patch, dtype=torch.int64)
        item["path"] = str(Path(self.cache.data_dir) / item["path"])
        return item


class StudyAwareBatchSampler(_StudyAwareBatchSampler):
    """The seed's sampler: one whole study per batch (module doc); ``dataset`` has ``studies`` or is that list.

    Example:
        >>> list(StudyAwareBatchSampler(["a", "a", "b", "c", "c", "c"], batch_size=8, shuffle=False))
        [[0, 1], [2], [3, 4, 5]]
    """

    def __init__(
        self,
        dataset: Any,
        batch_size: int,
        shuffle: bool = True,
        seed: int = 0,
        num_replicas: int | None = None,
        rank: int | None = None,
        *,
        even_batches: bool = True,
    ) -> None:
        if int(batch_size) < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        # ctlens packs whole studies into batches of at most batch_size images and never splits a study,
        # so a limit of 1 image gives exactly one whole study per batch: the seed's behaviour
        super().__init__(dataset, 1, shuffle, seed, num_replicas, rank, even_batches=even_batches)
        self.requested_batch_size = int(batch_size)
        large = {s: len(ix) for s, ix in self.groups.items() if len(ix) > batch_size}
        if large:
            log.warning(
                "StudyAwareBatchSampler: %d stud(ies) hold more than batch_size=%d images and form larger batches "
                "(a study is never split), e.g. %s",
                len(large),
                batch_size,
                ", ".join(f"{s} ({n})" for s, n in list(large.items())[:3]),
            )
