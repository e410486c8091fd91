"""`ImageDataset`: NeuroVFM-style training samples from a data folder's cache (or prepared on the fly).

Each item is one image (``study/image`` of :class:`~ctlens.cache.metadata.DatasetMetadata`) as the dict
NeuroVFM's data loader yields:

============ ==========================================================================================
``img``      float32 in [0, 1]: tokens ``[N, pz*py*px]`` (``tokenize=True``) or the volume ``[1, D, H, W]``
``coords``   int64 ``[N, 3]`` token-grid positions ``(z, y, x)`` of the tokens
``filtered`` bool ``[N]``: True = background token (NeuroVFM's flag, from the foreground mask)
``size``     int64 ``[3]``: the sample's ``(D, H, W)`` in voxels (after cropping and padding)
``path``     source of the image, relative to the data folder
``label``    the study's label (see :mod:`ctlens.data.labels`), or ``-1`` when no labels were given
``study``    study name; ``mode``: ``'ct'`` or ``'mri'``; ``window``: the window that was drawn
============ ==========================================================================================

CT images draw one of the cached windows per sample with ``ct_window_probs`` (default NeuroVFM's
0.7 brain / 0.15 blood / 0.15 bone); MR images use ``mri``. Draws use torch's RNG, which a DataLoader
seeds per worker (``torch.manual_seed`` makes a run repeatable).

``random_crop=(D, H, W)`` (multiples of the patch) takes a random crop, clipped to the volume;
``pad_to=(D, H, W)`` (multiples of the patch) pads each sample, after cropping, at the far end of each axis
up to that size with background (intensity 0, mask 0, so the added tokens are ``filtered``); an axis already
that long or longer is left as is. Samples of one size stack with torch's default collate.
``augment=True`` flips left-right (array axis 2) with probability 0.5. ``use_cache=False`` prepares
each image on the fly with the same function the cache uses (1-5 s per image instead of ~1 ms).

Example:
    >>> import pathlib, tempfile, nibabel as nib, numpy as np
    >>> from ctlens.cache import CacheManager
    >>> root = pathlib.Path(tempfile.mkdtemp()); (root / "raw" / "s1").mkdir(parents=True)
    >>> ct = np.full((20, 20, 3), -1000, np.int16); ct[5:15, 5:15] = 60; ct[8, 8] = 1500
    >>> nib.save(nib.Nifti1Image(ct, np.eye(4)), root / "raw" / "s1" / "ct.nii.gz")
    >>> _ = CacheManager(root).build_cache(num_workers=1, progress=False)
    >>> sample = ImageDataset(root)[0]
    >>> sample["img"].shape, sample["coords"].shape, sample["study"], sample["mode"]
    (torch.Size([4, 1024]), torch.Size([4, 3]), 's1', 'ct')
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from ctlens.cache.entry_builder import prepare_arrays
from ctlens.cache.manager import CacheManager
from ctlens.cache.metadata import DatasetMetadata, ImageEntry, load_entry_volume
from ctlens.core.errors import CacheMissError
from ctlens.data.labels import StudyLabels, load_study_labels
from ctlens.preprocess.masks import token_background_flags
from ctlens.preprocess.tokens import tokenize as tokenize_array

__all__ = ["ImageDataset"]

log = logging.getLogger(__name__)


class ImageDataset(Dataset):
    """Samples of a data folder (module doc). ``studies`` lists the study of each index (for samplers)."""

    def __init__(
        self,
        data_dir: str | os.PathLike[str],
        use_cache: bool = True,
        ct_window_probs: Sequence[float] = (0.7, 0.15, 0.15),
        random_crop: Sequence[int] | None = None,
        augment: bool = False,
        tokenize: bool = True,
        study_labels: str | os.PathLike[str] | Mapping[str, Any] | StudyLabels | None = None,
        *,
        spacing: Sequence[float] = (4.0, 1.0, 1.0),
        patch: Sequence[int] = (4, 16, 16),
        ct_windows: Sequence[str] = ("brain", "blood", "bone"),
        mode_mapping: Mapping[str, str] | None = None,
        pad_to: Sequence[int] | None = None,
    ) -> None:
        self.cache = CacheManager(data_dir, spacing, patch, ct_windows=ct_windows, mode_mapping=mode_mapping)
        self.use_cache = use_cache
        self.ct_windows = tuple(ct_windows)
        probs = np.asarray(ct_window_probs, dtype=np.float64)
        if probs.shape != (len(self.ct_windows),) or (probs < 0).any() or probs.sum() <= 0:
            raise ValueError(f"ct_window_probs must give one weight >= 0 per window {self.ct_windows}, got {probs}")
        self.ct_window_probs = torch.as_tensor(probs / probs.sum())
        self.patch = tuple(int(p) for p in patch)
        self.random_crop = tuple(int(c) for c in random_crop) if random_crop is not None else None
        if self.random_crop is not None and any(c % p for c, p in zip(self.random_crop, self.patch, strict=True)):
            raise ValueError(f"random_crop {self.random_crop} must be a multiple of the patch {self.patch}")
        self.pad_to = self._multiple_of_patch("pad_to", pad_to)
        self.augment = augment
        self.tokenize = tokenize
        self.labels = load_study_labels(study_labels) if study_labels is not None else None
        if use_cache:
            entries = self.cache.complete_entries()
            if not entries:
                raise CacheMissError(
                    "the cache holds no complete entry",
                    path=self.cache.processed,
                    hint="run `ctlens cache build DATA_DIR` first, or use use_cache=False",
                )
        else:
            entries = DatasetMetadata.from_directory(data_dir, mode_mapping).usable  # reads raw/, writes nothing
        if self.labels is not None:
            unlabelled = [e.name for e in entries if e.study not in self.labels]
            if unlabelled:
                log.info("ImageDataset: %d image(s) without a study label left out", len(unlabelled))
            entries = [e for e in entries if e.study in self.labels]
        self.entries: list[ImageEntry] = entries
        self.studies: list[str] = [e.study for e in entries]

    def __len__(self) -> int:
        return len(self.entries)

    def _arrays(self, entry: ImageEntry) -> tuple[dict[str, np.ndarray], str]:
        if self.use_cache:
            return self.cache.load_image(entry.study, entry.image), self.cache.manifest(entry.study, entry.image)[
                "mode"
            ]
        volume = load_entry_volume(self.cache.data_dir, entry)
        mode = entry.mode or "ct"
        arrs, mask, _ = prepare_arrays(volume, mode, self.cache.settings)
        return {**arrs, "mask": mask}, mode

    def _multiple_of_patch(self, name: str, size: Sequence[int] | None) -> tuple[int, int, int] | None:
        if size is None:
            return None
        out = tuple(int(c) for c in size)
        if len(out) != 3 or min(out) < 1 or any(c % p for c, p in zip(out, self.patch, strict=True)):
            raise ValueError(f"{name} {tuple(size)} must be three positive multiples of the patch {self.patch}")
        return out  # type: ignore[return-value]

    def _pad(self, arr: np.ndarray) -> np.ndarray:
        if self.pad_to is None or all(n >= t for n, t in zip(arr.shape, self.pad_to, strict=True)):
            return arr
        return np.pad(arr, [(0, max(0, t - n)) for n, t in zip(arr.shape, self.pad_to, strict=True)])

    def _crop(self, shape: tuple[int, ...]) -> tuple[slice, ...]:
        if self.random_crop is None:
            return tuple(slice(0, n) for n in shape)
        out = []
        for n, c, p in zip(shape, self.random_crop, self.patch, strict=True):
            size = min(n, c)
            start = int(torch.randint(0, (n - size) // p + 1, ()).item()) * p
            out.append(slice(start, start + size))
        return tuple(out)

    def label(self, study: str) -> torch.Tensor:
        """The study's label tensor (``-1`` without labels)."""
        if self.labels is None:
            return torch.tensor(-1)
        return torch.as_tensor(self.labels[study])

    def __getitem__(self, index: int) -> dict[str, Any]:
        entry = self.entries[index]
        arrays, mode = self._arrays(entry)
        if mode == "ct":
            window = self.ct_windows[int(torch.multinomial(self.ct_window_probs, 1).item())]
        else:
            window = "mri"
        box = self._crop(arrays["mask"].shape)
        img = self._pad(np.asarray(arrays[window][box]))
        mask = self._pad(np.asarray(arrays["mask"][box]))
        if self.augment and bool(torch.rand(()) < 0.5):
            img, mask = img[:, :, ::-1], mask[:, :, ::-1]
        tokens, coords = tokenize_array(np.ascontiguousarray(img), self.patch)
        flags = token_background_flags(np.ascontiguousarray(mask), self.patch)
        if self.tokenize:
            pixels = torch.from_numpy(np.ascontiguousarray(tokens))
        else:
            pixels = torch.from_numpy(np.ascontiguousarray(img))[None]
        return {
            "img": pixels.to(torch.float32).div_(255.0),
            "coords": torch.from_numpy(coords),
            "filtered": torch.from_numpy(flags.astype(bool)),
            "size": torch.tensor(img.shape, dtype=torch.int64),
            "path": entry.source,
            "label": self.label(entry.study),
            "study": entry.study,
            "mode": mode,
            "window": window,
        }
