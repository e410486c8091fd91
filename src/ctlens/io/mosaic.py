"""Siemens mosaic files: one stored image holding every slice of a volume as tiles of a square grid.

A mosaic (``ImageType`` holding ``MOSAIC``) stores ``n`` slices (the CSA image header's ``NumberOfImagesInMosaic``)
of ``r x c`` pixels as tiles of a ``m x m`` grid (``m = ceil(sqrt(n))``), left to right, top to bottom, so
``Rows = m r`` and ``Columns = m c``. The CSA header is parsed with :mod:`nibabel.nicom.csareader`.

Geometry, as documented by nibabel ("DICOM mosaic", doc/source/dicom/dicom_mosaic.rst) and by dcm2niix (its notes
on Siemens mosaics): ``ImagePositionPatient`` of a mosaic is the corner of the whole stored image, as if it were
one big slice; the first tile's corner is found by moving from there, along the row cosine by
``PixelSpacing[1] * (Columns - c) / 2`` and along the column cosine by ``PixelSpacing[0] * (Rows - r) / 2``. Tile
``k`` lies ``k`` slice steps (``SpacingBetweenSlices``, else ``SliceThickness``) from the first along the CSA
``SliceNormalVector`` (which may point against ``row x column``: the tiles are then stored top to bottom).

Example:
    >>> layout = MosaicLayout(n=3, grid=2, rows=2, columns=2, positions=np.zeros((3, 3)))
    >>> plane = np.arange(16).reshape(4, 4)
    >>> [tile(plane, layout, k).tolist() for k in range(3)]
    [[[0, 1], [4, 5]], [[2, 3], [6, 7]], [[8, 9], [12, 13]]]
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
from pydicom.dataset import Dataset

__all__ = ["MosaicLayout", "csa_image_header", "csa_value", "csa_vector", "is_mosaic_type", "mosaic_layout", "tile"]


@dataclass(frozen=True)
class MosaicLayout:
    """Where the tiles of one mosaic are and where each lies in the patient."""

    n: int
    """Slices (tiles holding an image)."""
    grid: int
    """Tiles per side of the square grid."""
    rows: int
    columns: int
    """Size of one tile (one slice), pixels."""
    positions: np.ndarray
    """``n x 3``: each tile's ImagePositionPatient (LPS mm), in storage order."""


def is_mosaic_type(ds: Dataset) -> bool:
    """Whether ``ImageType`` says this is a mosaic.

    Example:
        >>> ds = Dataset(); ds.ImageType = ["ORIGINAL", "PRIMARY", "M", "ND", "MOSAIC"]
        >>> is_mosaic_type(ds), is_mosaic_type(Dataset())
        (True, False)
    """
    return any("MOSAIC" in str(v).upper() for v in (ds.get("ImageType") or []))


def csa_image_header(ds: Dataset) -> dict[str, Any] | None:
    """The parsed Siemens CSA image header (``nibabel.nicom.csareader`` dict), None if absent or unreadable.

    Example:
        >>> csa_image_header(Dataset()) is None
        True
    """
    if (0x0029, 0x0010) not in ds and (0x0029, 0x0011) not in ds:
        return None
    with warnings.catch_warnings():  # nibabel.nicom warns on import that its (other) DICOM readers are experimental
        warnings.simplefilter("ignore", UserWarning)
        from nibabel.nicom import csareader

    try:
        return csareader.get_csa_header(ds, "image")
    except Exception:  # noqa: BLE001 - a damaged private header is as good as none
        return None


def csa_value(csa: dict[str, Any] | None, name: str) -> Any:
    """The first item of CSA tag ``name``, or None.

    Example:
        >>> csa_value({"tags": {"B_value": {"items": [1000]}}}, "B_value"), csa_value(None, "B_value")
        (1000, None)
    """
    items = ((csa or {}).get("tags", {}).get(name) or {}).get("items") or []
    return items[0] if items else None


def csa_vector(csa: dict[str, Any] | None, name: str, n: int = 3) -> np.ndarray | None:
    """CSA tag ``name`` as ``n`` floats, or None when it has not exactly ``n`` numeric items.

    Example:
        >>> csa_vector({"tags": {"SliceNormalVector": {"items": [0.0, 0.0, 1.0]}}}, "SliceNormalVector").tolist()
        [0.0, 0.0, 1.0]
    """
    items = ((csa or {}).get("tags", {}).get(name) or {}).get("items") or []
    try:
        out = np.array([float(v) for v in items], dtype=np.float64)
    except (TypeError, ValueError):
        return None
    return out if out.shape == (n,) and np.all(np.isfinite(out)) else None


def _slice_step(ds: Dataset) -> float | None:
    for keyword in ("SpacingBetweenSlices", "SliceThickness"):
        try:
            value = float(ds.get(keyword))  # type: ignore[arg-type]
        except (TypeError, ValueError):
            continue
        if value > 0:
            return value
    return None


def mosaic_layout(
    ds: Dataset, csa: dict[str, Any] | None, position: np.ndarray, orientation: np.ndarray
) -> MosaicLayout | str | None:
    """The tiles of a mosaic file (module docstring); None if it is no mosaic, a reason if it cannot be unpacked.

    Example:
        >>> mosaic_layout(Dataset(), None, np.zeros(3), np.array([1, 0, 0, 0, 1, 0.0])) is None
        True
    """
    if not is_mosaic_type(ds):
        return None
    n = csa_value(csa, "NumberOfImagesInMosaic")
    try:
        n = int(n)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return "Siemens mosaic without a readable NumberOfImagesInMosaic in its CSA header"
    rows, columns = int(ds.Rows), int(ds.Columns)
    grid = math.ceil(math.sqrt(n)) if n > 0 else 0
    if n < 1 or rows % grid or columns % grid:
        return f"Siemens mosaic of {n} images does not tile its {rows}x{columns} pixels"
    step = _slice_step(ds)
    if step is None:
        return "Siemens mosaic without SpacingBetweenSlices or SliceThickness"
    row_cos, col_cos = orientation[:3], orientation[3:]
    normal = np.cross(row_cos, col_cos)
    csa_normal = csa_vector(csa, "SliceNormalVector")
    if csa_normal is not None and np.linalg.norm(csa_normal) > 0:
        csa_normal = csa_normal / np.linalg.norm(csa_normal)
        normal = csa_normal if abs(float(csa_normal @ normal)) > 0.5 else normal
    normal = normal / np.linalg.norm(normal)
    tile_rows, tile_columns = rows // grid, columns // grid
    try:
        dy, dx = (float(v) for v in ds.PixelSpacing)
    except (AttributeError, TypeError, ValueError):
        dy = dx = 1.0
    first = position + row_cos * dx * (columns - tile_columns) / 2 + col_cos * dy * (rows - tile_rows) / 2
    positions = first[None, :] + np.arange(n)[:, None] * step * normal[None, :]
    return MosaicLayout(n=n, grid=grid, rows=tile_rows, columns=tile_columns, positions=positions)


def tile(plane: np.ndarray, layout: MosaicLayout, k: int) -> np.ndarray:
    """Tile ``k`` (row-major in the grid) of the stored mosaic ``plane``, a view."""
    r0, c0 = (k // layout.grid) * layout.rows, (k % layout.grid) * layout.columns
    return plane[r0 : r0 + layout.rows, c0 : c0 + layout.columns]
