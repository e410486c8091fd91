"""CT-RATE volumes as distributed: NIfTI files of stored values without geometry, plus a ``*_metadata.csv``.

CT-RATE (Hamamci et al. 2024, the CT-CLIP data set) ships each volume as ``<VolumeName>.nii.gz`` whose array holds
the DICOM *stored values* and whose affine carries no usable geometry; the facts are one CSV row per volume:
``VolumeName, RescaleSlope, RescaleIntercept, XYSpacing ("[0.75, 0.75]", DICOM PixelSpacing: row then column
spacing), ZSpacing, ImagePositionPatient, ImageOrientationPatient, ...``. Reading such a file as an ordinary NIfTI
gives wrong values (no rescale: air at 0 or -1024 + 1024) and 1 mm voxels in a made-up orientation.

This reader applies the row: ``HU = RescaleSlope * stored + RescaleIntercept``, spacing ``(ZSpacing, row, col)``,
origin ``ImagePositionPatient`` and directions ``ImageOrientationPatient`` (row direction = along a row, i.e. the
column index; column direction = along a column, i.e. the row index), all LPS as in DICOM.

Assumptions (stated because the files do not say; both are options):

* ``axes="yxz"`` (default): the NIfTI array is ``[row, column, slice]``, i.e. the DICOM ``pixel_array`` of each
  slice stacked on the last axis (how CT-CLIP's own preprocessing reads it: ``transpose(2, 0, 1)`` gives
  ``[slice, row, column]``). ``axes="xyz"``: ``[column, row, slice]`` (NIfTI's usual ``i`` = column order, as a
  dcm2niix-style writer stores it).
* slice ``k`` lies at ``ImagePositionPatient + k * ZSpacing * n`` with ``n = row_dir x col_dir`` (the DICOM
  slice normal); a negative ``ZSpacing`` (or ``z_sign=-1``) says the slices go the other way.

Example:
    >>> parse_list("[0.75, 0.75]"), parse_list("['-174.5', '-180.0', '-326.75']")
    ([0.75, 0.75], [-174.5, -180.0, -326.75])
"""

from __future__ import annotations

import csv
import functools
import os
import re
from pathlib import Path
from typing import Any

import numpy as np

from ctlens.core.errors import CorruptFileError, CTLensError, InputNotFoundError
from ctlens.core.volume import MAX_POSITION_MM, Volume, position_in_range, spacing_in_range
from ctlens.io.files import check_readable

__all__ = ["CT_RATE_AXES", "ct_rate_row", "load_ct_rate", "parse_list", "read_ct_rate_metadata", "volume_key"]

CT_RATE_AXES = ("yxz", "xyz")
"""NIfTI array layouts: ``[row, column, slice]`` (default) or ``[column, row, slice]``."""
_NUMBER = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")
MAX_RESCALE = 1e9
"""Largest absolute rescale slope or intercept (HU of any real scanner stay far below)."""
_REQUIRED = ("VolumeName", "RescaleSlope", "RescaleIntercept", "XYSpacing", "ZSpacing")


def parse_list(text: Any) -> list[float]:
    """Numbers of a CSV cell written as a Python/JSON list (``"[0.75, 0.75]"``, ``"['1', '0', '0']"``) or one number.

    Example:
        >>> parse_list("1.5"), parse_list(2)
        ([1.5], [2.0])
    """
    if isinstance(text, int | float):
        return [float(text)]
    return [float(x) for x in _NUMBER.findall(str(text))]


def volume_key(name: str) -> str:
    """A volume's name without folders and NIfTI suffix (``"a/train_1_a_1.nii.gz"`` -> ``"train_1_a_1"``).

    Example:
        >>> volume_key("train/train_1/train_1_a/train_1_a_1.nii.gz"), volume_key("valid_3_b_2.nii")
        ('train_1_a_1', 'valid_3_b_2')
    """
    base = os.path.basename(str(name).strip())
    for suffix in (".nii.gz", ".nii"):
        if base.lower().endswith(suffix):
            return base[: -len(suffix)]
    return base


@functools.lru_cache(maxsize=4)
def _read_metadata_cached(path: str, mtime: float) -> dict[str, dict[str, str]]:
    rows: dict[str, dict[str, str]] = {}
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh)
            missing = [c for c in _REQUIRED if c not in (reader.fieldnames or [])]
            if missing:
                raise CorruptFileError(
                    f"not a CT-RATE metadata CSV: missing column(s) {', '.join(missing)}",
                    path=path,
                    hint="pass the *_metadata.csv that came with the volumes",
                )
            for row in reader:
                rows[volume_key(row["VolumeName"])] = row
    except (UnicodeDecodeError, csv.Error) as exc:
        raise CorruptFileError(f"not a readable CSV ({exc})", path=path) from exc
    return rows


def read_ct_rate_metadata(path: str | os.PathLike[str]) -> dict[str, dict[str, str]]:
    """The metadata CSV as ``{volume key: row}`` (key: :func:`volume_key` of ``VolumeName``); cached per file.

    Example:
        >>> import tempfile, pathlib
        >>> p = pathlib.Path(tempfile.mkdtemp()) / "m.csv"
        >>> head = "VolumeName,RescaleSlope,RescaleIntercept,XYSpacing,ZSpacing\\n"
        >>> _ = p.write_text(head + 'v_1.nii.gz,1,-1024,"[0.7, 0.7]",2\\n')
        >>> read_ct_rate_metadata(p)["v_1"]["ZSpacing"]
        '2'
    """
    p = Path(path)
    check_readable(p, "CT-RATE metadata CSV")
    return _read_metadata_cached(str(p.resolve()), p.stat().st_mtime)


def ct_rate_row(metadata: str | os.PathLike[str] | dict[str, dict[str, str]], volume: str | os.PathLike[str]) -> dict:
    """The metadata row of one volume file, or :class:`InputNotFoundError` naming both files.

    Example:
        >>> ct_rate_row({"v_1": {"ZSpacing": "2"}}, "some/dir/v_1.nii.gz")
        {'ZSpacing': '2'}
    """
    rows = metadata if isinstance(metadata, dict) else read_ct_rate_metadata(metadata)
    key = volume_key(Path(volume).name)
    if key not in rows:
        where = "the metadata given" if isinstance(metadata, dict) else Path(metadata).name
        raise InputNotFoundError(
            f"no row for VolumeName {key!r} in {where}",
            path=Path(volume).name,
            hint="pass the metadata CSV of this split (train / validation / test)",
        )
    return rows[key]


def _number(row: dict, key: str, name: str, default: float | None = None) -> float:
    values = parse_list(row.get(key, ""))
    if len(values) != 1 or not np.isfinite(values[0]):
        if default is not None and str(row.get(key, "")).strip() in ("", "nan", "None"):
            return default
        raise CorruptFileError(f"metadata {key}={row.get(key)!r} is not one number", path=name)
    return values[0]


def _geometry(row: dict, name: str, z_sign: int) -> tuple[tuple[float, float, float], np.ndarray, np.ndarray]:
    xy = parse_list(row.get("XYSpacing", ""))
    if len(xy) == 1:
        xy = xy * 2
    dz = _number(row, "ZSpacing", name)
    if len(xy) != 2 or not spacing_in_range(abs(v) for v in (*xy, dz)) or min(xy) <= 0:
        raise CorruptFileError(
            f"metadata spacing XYSpacing={row.get('XYSpacing')!r} ZSpacing={row.get('ZSpacing')!r} is not usable",
            path=name,
        )
    iop = parse_list(row.get("ImageOrientationPatient", "")) or [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]
    ipp = parse_list(row.get("ImagePositionPatient", "")) or [0.0, 0.0, 0.0]
    if len(iop) != 6 or len(ipp) != 3 or not position_in_range((*iop, *ipp)):
        raise CorruptFileError(
            f"metadata ImageOrientationPatient / ImagePositionPatient have {len(iop)} / {len(ipp)} numbers "
            f"(6 and 3 finite ones within +-{MAX_POSITION_MM:g} mm expected)",
            path=name,
        )
    row_dir, col_dir = np.asarray(iop[:3]), np.asarray(iop[3:])
    normal = np.cross(row_dir, col_dir)
    if min(np.linalg.norm(row_dir), np.linalg.norm(col_dir), np.linalg.norm(normal)) < 1e-3:
        raise CorruptFileError(f"metadata ImageOrientationPatient {iop} is degenerate", path=name)
    row_dir, col_dir = row_dir / np.linalg.norm(row_dir), col_dir / np.linalg.norm(col_dir)
    normal = normal / np.linalg.norm(normal) * (1 if dz > 0 else -1) * z_sign
    direction = np.column_stack([normal, col_dir, row_dir])  # Volume columns: slice, row (y), column (x)
    return (abs(dz), float(xy[0]), float(xy[1])), np.asarray(ipp, float), direction


def load_ct_rate(
    path: str | os.PathLike[str],
    metadata: str | os.PathLike[str] | dict[str, dict[str, str]] | dict[str, Any],
    *,
    axes: str = "yxz",
    z_sign: int = 1,
) -> Volume:
    """Read one CT-RATE NIfTI with its metadata (a CSV path, ``{key: row}`` or the row itself) into HU + geometry.

    ``axes``: the NIfTI array layout (see the module docstring); ``z_sign=-1`` reverses the slice direction.
    Samples stay ``int16`` when the rescale maps integers to integers within range, else ``float32``. A NIfTI
    that carries its own non-identity ``scl_slope`` / ``scl_inter`` is refused (the rescale would apply twice).

    Example:
        >>> import tempfile, pathlib, nibabel as nib, numpy as np
        >>> d = pathlib.Path(tempfile.mkdtemp())
        >>> nib.save(nib.Nifti1Image(np.full((4, 3, 2), 1024, np.int16), np.eye(4)), d / "v_1.nii.gz")
        >>> row = {"RescaleSlope": "1", "RescaleIntercept": "-1024", "XYSpacing": "[0.5, 0.7]", "ZSpacing": "3"}
        >>> v = load_ct_rate(d / "v_1.nii.gz", row)
        >>> v.shape, v.spacing, int(v.array.max())
        ((2, 4, 3), (3.0, 0.5, 0.7), 0)
    """
    import nibabel as nib

    path = Path(path)
    name = path.name
    if axes not in CT_RATE_AXES:
        raise ValueError(f"axes must be one of {CT_RATE_AXES}, got {axes!r}")
    if z_sign not in (1, -1):
        raise ValueError(f"z_sign must be 1 or -1, got {z_sign}")
    row = metadata if isinstance(metadata, dict) and "RescaleSlope" in metadata else ct_rate_row(metadata, path)
    check_readable(path, "CT-RATE NIfTI")
    from ctlens.io.nifti import check_voxel_bytes, nibabel_quiet

    try:
        with nibabel_quiet():
            img = nib.load(str(path))
        check_voxel_bytes(path, img)
        header_slope, header_inter = img.dataobj.slope, img.dataobj.inter
        stored = np.asarray(img.dataobj.get_unscaled())
    except CTLensError as exc:
        raise CorruptFileError(exc.reason, path=name) from exc
    except Exception as exc:  # nibabel raises many types for damaged files
        raise CorruptFileError(f"not a readable NIfTI file ({type(exc).__name__}: {exc})", path=name) from exc
    if (np.isfinite(header_slope) and header_slope not in (0, 1)) or (np.isfinite(header_inter) and header_inter):
        raise CorruptFileError(
            f"the NIfTI header scales its values itself (scl_slope={header_slope}, scl_inter={header_inter})",
            path=name,
            hint="this is not a CT-RATE file of stored values; read it as an ordinary NIfTI without --ct-rate-metadata",
        )
    stored = np.squeeze(stored, axis=tuple(range(3, stored.ndim))) if stored.ndim > 3 else stored
    if stored.ndim != 3 or min(stored.shape) < 1:
        raise CorruptFileError(f"expected a 3-D volume, the NIfTI array has shape {stored.shape}", path=name)
    slope = _number(row, "RescaleSlope", name, default=1.0)
    intercept = _number(row, "RescaleIntercept", name, default=0.0)
    if not (0 < abs(slope) <= MAX_RESCALE and abs(intercept) <= MAX_RESCALE):
        raise CorruptFileError(
            f"metadata rescale slope {slope:g} / intercept {intercept:g} out of range (0 < |slope|, both within "
            f"+-{MAX_RESCALE:g})",
            path=name,
        )
    spacing, origin, direction = _geometry(row, name, z_sign)
    zyx = stored.transpose(2, 0, 1) if axes == "yxz" else stored.transpose(2, 1, 0)
    if float(slope).is_integer() and float(intercept).is_integer() and stored.dtype.kind in "iub":
        hu = zyx.astype(np.int64) * int(slope) + int(intercept)
        lo, hi = (int(hu.min()), int(hu.max())) if hu.size else (0, 0)
        array = hu.astype(np.int16 if -32768 <= lo and hi <= 32767 else np.int32)
    else:
        array = (zyx.astype(np.float32) * np.float32(slope) + np.float32(intercept)).astype(np.float32)
    meta = {
        "source_format": "ct-rate",
        "ct_rate_axes": axes,
        "rescale": [slope, intercept],
        "manufacturer": row.get("Manufacturer", ""),
        "kernel": row.get("ConvolutionKernel", ""),
        "slice_thickness": row.get("SliceThickness", ""),
        "patient_position": row.get("PatientPosition", ""),
    }
    meta = {k: v for k, v in meta.items() if v not in ("", None)}
    return Volume(np.ascontiguousarray(array), spacing, tuple(origin), direction, modality="CT", meta=meta)
