"""Checks on the HDF5 volume file of CLIP training before anything is read from it (issue #21).

The export (:mod:`ctlens.cache.hdf5_export`) writes one uint8 ``[D, H, W]`` dataset per volume and a
``value_to_hu`` attribute. A crafted file may hold a chunked 2048^3 volume in a few kilobytes (reading it takes
8 GB), compound or string datasets, or an attribute of any type; :func:`stored_volumes` and :func:`value_to_hu`
refuse those with a :class:`~ctlens.core.errors.CorruptFileError` naming the file.

Example:
    >>> import io, h5py, numpy as np, pathlib, tempfile
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "v.h5"
    >>> with h5py.File(p, "w") as h5:
    ...     _ = h5.create_dataset("train_1_a_1", data=np.zeros((2, 3, 4), np.uint8))
    ...     h5.attrs["value_to_hu"] = (7.8, -1000.0)
    >>> with h5py.File(p, "r") as h5:
    ...     stored_volumes(h5, p), value_to_hu(h5.attrs["value_to_hu"], p)
    (['train_1_a_1'], (7.8, -1000.0))
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from ctlens.core.errors import CorruptFileError

__all__ = ["H5_ERRORS", "stored_volumes", "value_to_hu"]

H5_ERRORS = (OSError, ValueError, KeyError, RuntimeError, TypeError)
"""What h5py raises for damaged files, unknown filters and dangling links."""


def stored_volumes(h5: Any, path: Path) -> list[str]:
    """Names of the 3-D datasets at the root, each checked before anything is read (the export writes uint8).

    A name that is not UTF-8 text, a dataset of a non-numeric type, with an empty axis, or declaring more bytes
    than the decompression budget allows for this file (a huge shape kept small by chunking and a fill value) is a
    :class:`CorruptFileError`.
    """
    import h5py

    from ctlens.io.decompress_budget import Budget

    budget = Budget.from_settings()
    size = path.stat().st_size
    names = []
    for name in h5:
        if not isinstance(name, str):  # h5py hands out names that are not UTF-8 as bytes
            raise CorruptFileError(f"a dataset name is not UTF-8 text ({bytes(name)[:40]!r})", path=path)
        item = h5.get(name)  # None for a dangling soft or external link
        if not isinstance(item, h5py.Dataset) or item.ndim != 3:
            continue
        if item.dtype.kind not in "biuf" or item.dtype.fields is not None:
            raise CorruptFileError(f"volume {name!r} holds {item.dtype}, not numbers", path=path)
        if min(item.shape) < 1:
            raise CorruptFileError(f"volume {name!r} has an empty shape {item.shape}", path=path)
        declared = int(np.prod(item.shape, dtype=np.float64)) * item.dtype.itemsize
        if declared > budget.max_bytes or declared > budget.max_ratio * max(size, 1):
            raise CorruptFileError(
                f"volume {name!r} of shape {item.shape} declares {declared} bytes, more than this "
                f"{size}-byte file can hold",
                path=path,
                hint="set CTLENS_MAX_ARCHIVE_RATIO / CTLENS_MAX_ARCHIVE_BYTES if the file is trusted",
            )
        names.append(name)
    return names


def value_to_hu(value: Any, path: Path) -> tuple[float, float]:
    """The ``value_to_hu`` attribute as two finite numbers (scale, offset)."""
    try:
        pair = tuple(float(v) for v in np.asarray(value, dtype=np.float64).ravel())
    except (TypeError, ValueError):
        pair = ()
    if len(pair) != 2 or not all(math.isfinite(v) for v in pair):
        raise CorruptFileError(f"attribute value_to_hu is {str(value)[:60]!r}, not two finite numbers", path=path)
    return pair  # type: ignore[return-value]
