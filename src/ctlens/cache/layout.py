"""Where the cache puts things, what an entry's key is, and how its manifest is read and written.

``<data_dir>/processed/<study>/``:

* ``<image>_<window>.npy`` -- uint8 ``[D, H, W]`` (CT windows ``brain`` / ``blood`` / ``bone`` by default,
  MR ``mri``), loadable with ``np.load(path, mmap_mode="r")``;
* ``<image>_mask.npy`` -- uint8 foreground mask on the same grid (1 = body);
* ``<image>.json`` -- the manifest, written **last** (:func:`ctlens.io.files.atomic_output`): an entry is complete
  exactly when its manifest exists and its ``key`` equals the current key;
* ``<image>.failed.json`` -- instead of the manifest when the image could not be prepared (reason inside).

Every file is written with :func:`ctlens.io.files.atomic_output`: temporary folders ``.<file>.<random>.tmp``
(``.tmp-*`` from older versions) are removed by the next build (which holds ``.build.lock``). Durability: every
file is flushed to disk (``fsync``) before its rename, and its folder after the rename, so after a power cut a
manifest never points at arrays whose bytes were still in the page cache (the rename alone only protects
against a killed process).

The key is a sha256 of the source's content hash, the DICOM series selector, the mode and the
preprocessing settings, so changing one setting rebuilds every entry and touching one file rebuilds
only the entries that read it.

Example:
    >>> s = CacheSettings()
    >>> s.windows_for("ct"), s.windows_for("mri")
    (('brain', 'blood', 'bone'), ('mri',))
    >>> entry_key("abc", None, "ct", s) == entry_key("abc", None, "ct", CacheSettings(spacing=(4, 1, 1)))
    True
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ctlens.io.files import atomic_output

__all__ = [
    "CACHE_FORMAT",
    "TMP_PREFIX",
    "CacheSettings",
    "entry_key",
    "failure_path",
    "manifest_path",
    "read_json",
    "to_uint8",
    "write_json_atomic",
]

CACHE_FORMAT = 1
"""Bumped when the on-disk layout or the preparation recipe changes (part of every key)."""
TMP_PREFIX = ".tmp-"
"""Temporary names of older versions (before :func:`ctlens.io.files.atomic_output`); still cleaned up."""


@dataclass(frozen=True)
class CacheSettings:
    """Preprocessing parameters of a cache (all part of each entry's key).

    ``spacing`` ``(slice, in-plane, in-plane)`` mm, ``patch`` voxels, ``method`` the resampling
    interpolation, ``ct_windows`` names of :data:`ctlens.preprocess.WINDOWS` stored for CT images.

    Example:
        >>> CacheSettings(spacing=(4, 1, 1)).spacing
        (4.0, 1.0, 1.0)
    """

    spacing: tuple[float, float, float] = (4.0, 1.0, 1.0)
    patch: tuple[int, int, int] = (4, 16, 16)
    ct_windows: tuple[str, ...] = ("brain", "blood", "bone")
    method: str = "linear"

    def __post_init__(self) -> None:
        object.__setattr__(self, "spacing", tuple(float(v) for v in self.spacing))
        object.__setattr__(self, "patch", tuple(int(v) for v in self.patch))
        object.__setattr__(self, "ct_windows", tuple(str(v) for v in self.ct_windows))
        if len(self.spacing) != 3 or len(self.patch) != 3:
            raise ValueError(f"spacing and patch need three values (z, y, x), got {self.spacing}, {self.patch}")

    def windows_for(self, mode: str) -> tuple[str, ...]:
        """The stored windows of a ``'ct'`` or ``'mri'`` image."""
        return self.ct_windows if mode == "ct" else ("mri",)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready dict (lists for tuples)."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    def digest(self) -> str:
        """sha256 of the settings and the cache format."""
        doc = {"format": CACHE_FORMAT, **self.as_dict()}
        return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()


def entry_key(content_hash: str, series: str | None, mode: str | None, settings: CacheSettings) -> str:
    """The key that a complete entry's manifest must carry.

    Example:
        >>> len(entry_key("abc", None, "ct", CacheSettings()))
        32
    """
    text = "|".join([content_hash, series or "", mode or "", settings.digest()])
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def manifest_path(processed: Path, study: str, image: str) -> Path:
    """``processed/<study>/<image>.json``."""
    return processed / study / f"{image}.json"


def failure_path(processed: Path, study: str, image: str) -> Path:
    """``processed/<study>/<image>.failed.json``."""
    return processed / study / f"{image}.failed.json"


def array_name(image: str, channel: str) -> str:
    """``<image>_<channel>.npy`` (channel: a window name or ``mask``).

    Example:
        >>> array_name("ct", "brain")
        'ct_brain.npy'
    """
    return f"{image}_{channel}.npy"


def to_uint8(arr: np.ndarray) -> np.ndarray:
    """[0, 1] floats to uint8 ``round(255 * x)`` (values outside [0, 1] are clipped).

    Example:
        >>> to_uint8(np.array([0.0, 0.5, 1.0, 2.0])).tolist()
        [0, 128, 255, 255]
    """
    arr = np.asarray(arr)
    if arr.dtype == np.uint8:
        return arr
    return np.rint(np.clip(arr, 0.0, 1.0) * 255.0).astype(np.uint8)


def write_json_atomic(path: Path, doc: dict[str, Any]) -> None:
    """Write ``doc`` to ``path`` durably with :func:`ctlens.io.files.atomic_output` (fsync, rename, fsync folder).

    Example:
        >>> import tempfile
        >>> p = Path(tempfile.mkdtemp()) / "m.json"; write_json_atomic(p, {"a": 1}); read_json(p)
        {'a': 1}
    """
    with atomic_output(path) as tmp:
        tmp.write_text(json.dumps(doc, indent=1))


def read_json(path: Path) -> dict[str, Any] | None:
    """The JSON object in ``path``, or ``None`` when it is missing or unreadable (a corrupt record)."""
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) else None
