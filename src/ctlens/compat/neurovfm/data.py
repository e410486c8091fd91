"""``neurovfm.data`` (seed 002) as a thin layer over ctlens: ``load_image``, ``prepare_for_inference``,
``DatasetMetadata`` and ``CacheManager`` with the seed's signatures, return types and conventions.

What each name translates (every difference is listed in ``docs/coming_from_neurovfm.md``):

* :func:`load_image` ``(path, preprocess=True)`` -> a ``SimpleITK.Image`` read by :func:`ctlens.io.loader.load`
  (NIfTI, NRRD / MHA, a DICOM folder / zip / file); ``preprocess=True`` also puts it on the model's grid
  (RPI, slice axis detected, 4 x 1 x 1 mm) with :func:`ctlens.preprocess.prepare.to_model_grid`; the padding to a
  multiple of the patch, which depends on the mode, is left to :func:`prepare_for_inference`.
* :func:`prepare_for_inference` ``(img_sitk, mode, z_dim=None)`` -> ``(img_arrs, mask, view)`` or ``None``:
  ``img_arrs`` a list of float32 ``torch.Tensor`` ``[1, D, H, W]`` in [0, 1] (CT: brain, blood, bone; MR: one),
  ``mask`` the per-token uint8 ``[N]`` flags, **1 = background**, 0 = foreground, over the ``(4, 16, 16)`` tokens in
  :func:`~ctlens.preprocess.tokens.tokenize` order (one mask for all CT windows), ``view`` the acquisition plane.
  ``z_dim`` counts axes in SimpleITK's ``(x, y, z)`` order, as the seed does. ``None`` when the image holds no 3-D
  volume (a 2-D image or a single slice). Computed by :func:`ctlens.preprocess.prepare.prepare_for_inference`.
* :class:`DatasetMetadata` is ctlens's own (:class:`ctlens.cache.metadata.DatasetMetadata`).
* :class:`CacheManager` ``(data_dir)`` is ctlens's cache manager that also reads the modes saved in
  ``<data_dir>/metadata.json``; its :meth:`CacheManager.load_image` gives the same triple as
  :func:`prepare_for_inference` (from the uint8 cache, so intensities are multiples of 1/255).

Example:
    >>> import numpy as np, SimpleITK as sitk
    >>> ct = np.full((12, 40, 40), -1000, np.int16); ct[:, 4:36, 4:36] = 40
    >>> img = sitk.GetImageFromArray(ct); img.SetSpacing((1.0, 1.0, 2.0))
    >>> img_arrs, mask, view = prepare_for_inference(img, mode="ct")
    >>> len(img_arrs), tuple(img_arrs[0].shape), img_arrs[0].dtype, tuple(mask.shape), mask.dtype, view
    (3, (1, 8, 48, 48), torch.float32, (18,), torch.uint8, 'axial')
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import SimpleITK as sitk

from ctlens.cache.manager import METADATA_FILE
from ctlens.cache.manager import CacheManager as _CacheManager
from ctlens.cache.metadata import DatasetMetadata
from ctlens.core.errors import CorruptFileError
from ctlens.core.volume import Volume
from ctlens.preprocess import prepare as _prepare
from ctlens.preprocess.masks import token_background_flags

if TYPE_CHECKING:
    import torch

__all__ = [
    "PATCH",
    "CacheManager",
    "DatasetMetadata",
    "from_sitk",
    "load_image",
    "prepare_for_inference",
    "saved_mode_mapping",
    "to_sitk",
]

log = logging.getLogger(__name__)

PATCH = (4, 16, 16)
"""The seed's token: 4 slices x 16 x 16 pixels (``D = 1024``), in ctlens's ``(z, y, x)`` order."""
_MODALITY_KEYS = ("ctlens_modality", "0008|0060")


def to_sitk(volume: Volume) -> sitk.Image:
    """A ctlens Volume as a ``SimpleITK.Image``: same geometry (LPS), modality in the metadata ``ctlens_modality``.

    Example:
        >>> import numpy as np
        >>> img = to_sitk(Volume(np.zeros((2, 3, 4), np.int16), spacing=(5.0, 0.5, 0.7)))
        >>> img.GetSize(), img.GetSpacing(), img.GetMetaData("ctlens_modality")
        ((4, 3, 2), (0.7, 0.5, 5.0), 'CT')
    """
    image = sitk.GetImageFromArray(np.ascontiguousarray(volume.array), isVector=False)
    spacing, origin, direction = volume.itk_geometry()
    image.SetSpacing(spacing)
    image.SetOrigin(origin)
    image.SetDirection(direction)
    if volume.modality:
        image.SetMetaData("ctlens_modality", str(volume.modality))
    return image


def from_sitk(image: sitk.Image | Volume) -> Volume:
    """A 2-D or 3-D scalar ``SimpleITK.Image`` (or a Volume, returned as is) as a ctlens Volume.

    A 2-D image becomes one slice. The modality comes from the metadata ``ctlens_modality`` (set by
    :func:`load_image`) or the DICOM tag ``0008|0060``; without either it is left to the intensities.

    Example:
        >>> import numpy as np
        >>> v = from_sitk(to_sitk(Volume(np.zeros((2, 3, 4), np.int16), spacing=(5.0, 0.5, 0.7), modality="MR")))
        >>> v.shape, v.spacing, v.modality
        ((2, 3, 4), (5.0, 0.5, 0.7), 'MR')
    """
    if isinstance(image, Volume):
        return image
    if not isinstance(image, sitk.Image):
        raise TypeError(
            f"prepare_for_inference needs a SimpleITK.Image (from load_image or SimpleITK.ReadImage), "
            f"got {type(image).__name__}"
        )
    if image.GetNumberOfComponentsPerPixel() != 1:
        raise ValueError(
            f"the image has {image.GetNumberOfComponentsPerPixel()} components per voxel (colour or vector); "
            "a CT or MR volume has one"
        )
    dim = image.GetDimension()
    if dim not in (2, 3):
        raise ValueError(f"the image has {dim} dimensions; a 3-D volume (or a 2-D slice) is needed")
    array = sitk.GetArrayFromImage(image)
    spacing, origin, direction = image.GetSpacing(), image.GetOrigin(), image.GetDirection()
    if dim == 2:
        array = array[None]
        d = np.asarray(direction, dtype=np.float64).reshape(2, 2)
        full = np.eye(3)
        full[:2, :2] = d
        spacing, origin, direction = (*spacing, 1.0), (*origin, 0.0), tuple(full.reshape(-1))
    modality = next((image.GetMetaData(k).strip() for k in _MODALITY_KEYS if image.HasMetaDataKey(k)), "")
    meta = {} if modality else {"modality_source": "heuristic"}
    return Volume.from_itk_geometry(array, spacing, origin, direction, modality=modality, meta=meta)


def load_image(path: str | os.PathLike[str], preprocess: bool = True, **options: Any) -> sitk.Image:
    """Read any image ctlens reads as a ``SimpleITK.Image``; ``preprocess=True`` puts it on the model's grid.

    ``preprocess``: reorient to RPI, detect the slice axis, resample to 4 mm between slices and 1 mm in-plane
    (linear; module doc). ``options`` go to :func:`ctlens.io.loader.load` (``series=`` for a folder holding
    several DICOM series; gantry tilt is corrected and uneven slices resampled by default).

    Example:
        >>> import pathlib, tempfile, nibabel as nib, numpy as np
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "ct.nii.gz"
        >>> nib.save(nib.Nifti1Image(np.full((8, 6, 5), -1000, np.int16), np.diag([2.0, 2.0, 8.0, 1.0])), path)
        >>> load_image(path, preprocess=False).GetSize(), load_image(path).GetSize()
        ((8, 6, 5), (16, 12, 10))
    """
    volume = _prepare.load_image(path, **options)
    if preprocess:
        volume = _prepare.to_model_grid(volume, patch=(1, 1, 1))  # patch 1: no padding, it needs the mode
    return to_sitk(volume)


def _seed_z_dim(z_dim: int | None) -> int | None:
    if z_dim is None:
        return None
    if isinstance(z_dim, bool) or int(z_dim) not in (0, 1, 2) or int(z_dim) != z_dim:
        raise ValueError(f"z_dim must be 0, 1 or 2 (SimpleITK axis x, y, z of the RPI image) or None, got {z_dim!r}")
    return 2 - int(z_dim)  # SimpleITK (x, y, z) -> ctlens array (z, y, x)


def _as_seed(
    arrs: Mapping[str, np.ndarray], voxel_mask: np.ndarray, view: str
) -> tuple[list[torch.Tensor], torch.Tensor, str]:
    """ctlens's ``({window: [D, H, W]}, mask 1 = body, view)`` -> seed's ``([[1, D, H, W]], [N] 1 = bg, view)``."""
    import torch

    img_arrs = [torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32))[None] for a in arrs.values()]
    flags = token_background_flags(np.asarray(voxel_mask), PATCH)
    return img_arrs, torch.from_numpy(flags), view


def prepare_for_inference(
    img_sitk: sitk.Image | Volume, mode: str | None, z_dim: int | None = None
) -> tuple[list[torch.Tensor], torch.Tensor, str] | None:
    """``(img_arrs, mask, view)`` for a model, or ``None`` when the image is not a 3-D volume (module doc).

    ``mode``: ``'ct'`` or ``'mri'`` (``None`` detects it from the data and logs why). ``z_dim``: the slice
    axis in SimpleITK order of the RPI image (2 = I/S, axial; 1 = P/A, coronal; 0 = R/L, sagittal); ``None``
    takes the axis with the largest spacing.

    Example:
        >>> import numpy as np, SimpleITK as sitk
        >>> prepare_for_inference(sitk.Image(64, 64, sitk.sitkInt16), mode="ct") is None
        True
    """
    volume = from_sitk(img_sitk)
    if min(volume.shape) < 2:
        log.warning("prepare_for_inference: a volume of shape %s (z, y, x) is not 3-D; returning None", volume.shape)
        return None
    arrs, voxel_mask, view = _prepare.prepare_for_inference(volume, mode=mode, z_dim=_seed_z_dim(z_dim), patch=PATCH)
    out = _as_seed(arrs, voxel_mask, view)
    if bool(out[1].all()):
        log.warning("prepare_for_inference: every token is background (mask all 1); is mode=%r right?", mode)
    return out


def saved_mode_mapping(data_dir: str | os.PathLike[str]) -> dict[str, str] | None:
    """``{"study/image": mode}`` from ``<data_dir>/metadata.json`` (the seed's saved metadata), or ``None`` if absent.

    Reads ctlens's :meth:`DatasetMetadata.save` format, or a plain JSON object ``{study: "ct" | "mri"}``.

    Example:
        >>> import tempfile, pathlib
        >>> from ctlens.cache.metadata import ImageEntry
        >>> root = pathlib.Path(tempfile.mkdtemp())
        >>> DatasetMetadata(str(root), [ImageEntry("s", "T1", "raw/s/T1.nii", "nifti", mode="mri")]).save(
        ...     root / "metadata.json")
        >>> saved_mode_mapping(root)
        {'s/T1': 'mri'}
    """
    path = Path(data_dir) / METADATA_FILE
    if not path.is_file():
        return None
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise CorruptFileError(f"cannot read the dataset metadata ({exc})", path=path) from None
    if isinstance(doc, dict) and "entries" in doc:
        meta = DatasetMetadata.load(path)
        return {e.name: e.mode for e in meta if e.mode}
    if isinstance(doc, dict) and all(isinstance(v, str) for v in doc.values()):
        return {str(k): v for k, v in doc.items()}
    raise CorruptFileError(
        "not a dataset metadata file (neither DatasetMetadata.save output nor {study: 'ct' | 'mri'})",
        path=path,
    )


class CacheManager:
    """The seed's ``CacheManager(data_dir)``: ctlens's :class:`ctlens.cache.manager.CacheManager` (every method and
    attribute of it is here) with the modes of ``<data_dir>/metadata.json`` and the seed's :meth:`load_image`.

    Example:
        >>> import pathlib, tempfile, nibabel as nib, numpy as np
        >>> root = pathlib.Path(tempfile.mkdtemp()); (root / "raw" / "s1").mkdir(parents=True)
        >>> ct = np.full((20, 20, 3), -1000, np.int16); ct[5:15, 5:15] = 60
        >>> nib.save(nib.Nifti1Image(ct, np.eye(4)), root / "raw" / "s1" / "ct.nii.gz")
        >>> cache = CacheManager(root)
        >>> cache.build_cache(num_workers=1, progress=False).built
        1
        >>> img_arrs, mask, view = cache.load_image("s1", "ct")
        >>> len(img_arrs), tuple(img_arrs[0].shape), tuple(mask.shape)
        (3, (1, 4, 32, 32), (4,))
    """

    def __init__(self, data_dir: str | os.PathLike[str], *args: Any, **kwargs: Any) -> None:
        if kwargs.get("mode_mapping") is None:
            kwargs["mode_mapping"] = saved_mode_mapping(data_dir)
        self.cache = _CacheManager(data_dir, *args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        if name == "cache":  # not set yet (a failed __init__): never recurse
            raise AttributeError(name)
        return getattr(self.cache, name)

    def __iter__(self) -> Iterator[Any]:
        return iter(self.cache.metadata)

    def build_cache(self, num_workers: int = 8, force: bool = False, **options: Any) -> Any:
        """Build the cache of ``raw/`` (ctlens :meth:`~ctlens.cache.manager.CacheManager.build_cache`: report back)."""
        return self.cache.build_cache(num_workers=num_workers, force=force, **options)

    def get_cache_stats(self, rescan: bool = True) -> Any:
        """Counts of complete / failed / stale / missing entries (ctlens's ``CacheStats``)."""
        return self.cache.get_cache_stats(rescan=rescan)

    def load_image(self, study: str, image: str) -> tuple[list[torch.Tensor], torch.Tensor, str]:
        """``(img_arrs, mask, view)`` of a cached image as :func:`prepare_for_inference` gives them (float32 [0, 1])."""
        arrays, doc = self.cache.open_entry(study, image)
        windows = {w: np.asarray(arrays[w], dtype=np.float32) / np.float32(255.0) for w in doc["windows"]}
        patch = tuple(int(p) for p in self.cache.settings.patch)
        if patch != PATCH:
            raise ValueError(f"the seed's per-token mask needs the patch {PATCH}; this cache uses {patch}")
        return _as_seed(windows, np.asarray(arrays["mask"]), str(doc.get("view", "")))
