"""Stream a DICOM series slice by slice: geometry first (from headers only), then int16 HU slices one at a time.

:func:`iter_series_slices` scans headers (pixel data deferred, never read), groups, selects and orders the
slices with the very code :func:`ctlens.load` uses (:mod:`ctlens.io.dicom_reader`, ``dicom_series``,
``dicom_geometry``), builds the same geometry and de-identifiable meta, and then decodes pixel data one file at a
time (any transfer syntax ``ctlens.load`` decodes; a few slices ahead in a small thread pool). Memory stays bounded
by a few slices plus the headers, whatever the series length. The slices equal ``ctlens.load(...).array`` exactly,
for every policy ``ctlens.load`` offers:

* gantry tilt (``tilt="correct"``) is corrected slice by slice (the correction is in-plane only);
* uneven spacing with ``uneven="resample"`` (the default) is interpolated from a window of two neighbouring slices;
* several series without ``series=``: the same default choice as ``ctlens.load`` (largest axial CT), logged.

Nothing needs the in-memory path, except samples that are not integers that fit int16 (non-integral HU from a
fractional RescaleSlope, or values beyond int16): those raise :class:`~ctlens.core.errors.UnsupportedFormatError`
naming the file, because the stream promises int16 slices.

Example:
    >>> from ctlens.io.dicom_stream import iter_series_slices
    >>> with iter_series_slices("series_folder/") as stream:  # doctest: +SKIP
    ...     print(stream.geometry.shape, stream.geometry.spacing)
    ...     for hu in stream:  # int16 [y, x] slices in ctlens.load's order
    ...         pass
"""

from __future__ import annotations

import collections
import concurrent.futures
import logging
from collections.abc import Iterator
from types import TracebackType
from typing import Any

import numpy as np

from ctlens.core.errors import CTLensError
from ctlens.io.dicom_geometry import StackGeometry
from ctlens.io.dicom_headers import SliceRef
from ctlens.io.dicom_pixels import decode_hu, default_workers, exact_int16
from ctlens.io.dicom_reader import TiltPolicy, UnevenPolicy, _shift_plane, plan_series, resample_even_slices
from ctlens.io.dicom_source import DicomSource, PathInput

__all__ = ["DicomSliceStream", "iter_series_slices"]

log = logging.getLogger("ctlens.io")

_IN_MEMORY_HINT = "load the series in memory with ctlens.load and save it as NIfTI"


def _chunks(refs: list[SliceRef]) -> list[list[int]]:
    """Runs of consecutive slice indices stored in the same file (one per file for single-frame series)."""
    runs: list[list[int]] = []
    for k, ref in enumerate(refs):
        if runs and refs[runs[-1][-1]].file.path == ref.file.path:
            runs[-1].append(k)
        else:
            runs.append([k])
    return runs


class DicomSliceStream:
    """One DICOM series, opened: ``geometry`` (a shape-only :class:`Volume`) now, slices when iterated.

    ``geometry.array`` is a zero-copy broadcast placeholder of the right shape and dtype (int16): use its
    ``shape``, ``spacing``, ``origin``, ``direction``, ``modality`` and ``meta`` (the same meta ``ctlens.load``
    returns). Iterate once; close (or use ``with``) to release an unpacked zip.
    """

    def __init__(
        self,
        source: PathInput,
        series: int | str | None = None,
        *,
        tilt: TiltPolicy = "correct",
        uneven: UnevenPolicy = "resample",
        workers: int | None = None,
        volume: int | None = None,
    ) -> None:
        self._workers = workers or default_workers()
        self._src: DicomSource | None = DicomSource(source).__enter__()
        self._used = False
        try:
            self._open(series, tilt, uneven, volume)
        except BaseException:
            self.close()
            raise

    def _open(self, series: int | str | None, tilt: TiltPolicy, uneven: UnevenPolicy, volume: int | None) -> None:
        src = self._src
        assert src is not None
        self.name = src.name
        plan = plan_series(src, series, tilt=tilt, uneven=uneven, workers=self._workers, volume=volume)
        shape = (plan.n_slices, plan.refs[0].rows, plan.refs[0].columns)
        self.geometry = plan.volume(np.broadcast_to(np.zeros((), np.int16), shape))
        self.info = plan.info
        self._resample = plan.resample
        self._refs = plan.refs
        self._geom: StackGeometry = plan.geom
        self._step, self._dy, self._dx = plan.spacing

    # ------------------------------------------------------------------ iteration

    def __len__(self) -> int:
        """Number of slices the stream yields."""
        return int(self.geometry.shape[0])

    def _decode_run(self, run: list[int]) -> list[np.ndarray]:
        """Decode, convert to int16 and tilt-correct the slices ``run`` (all in one file), as ``read_dicom``."""
        hu = decode_hu([self._refs[k] for k in run], workers=1)  # drops each plane's bytes from its kept header
        out = []
        for k, plane in zip(run, hu, strict=True):
            shift = (self._geom.shift_column[k] / self._dy, self._geom.shift_row[k] / self._dx)
            if self._geom.tilted and (abs(shift[0]) >= 1e-6 or abs(shift[1]) >= 1e-6):
                moved = _shift_plane(plane, shift)
                plane = np.rint(moved).astype(plane.dtype) if np.issubdtype(plane.dtype, np.integer) else moved
            out.append(exact_int16(plane, self._refs[k].file.display, "the slice stream yields int16", _IN_MEMORY_HINT))
        return out

    def _sorted_slices(self) -> Iterator[np.ndarray]:
        """The acquired slices in order, decoded a few files ahead in a thread pool."""
        runs = _chunks(self._refs)
        ahead = max(1, self._workers)
        with concurrent.futures.ThreadPoolExecutor(max_workers=ahead) as pool:
            pending: collections.deque[Any] = collections.deque()
            nxt = 0
            try:
                while nxt < len(runs) or pending:
                    while nxt < len(runs) and len(pending) < 2 * ahead:
                        pending.append(pool.submit(self._decode_run, runs[nxt]))
                        nxt += 1
                    yield from pending.popleft().result()
            finally:
                for fut in pending:
                    fut.cancel()

    def __iter__(self) -> Iterator[np.ndarray]:
        if self._used:
            raise CTLensError("a slice stream can be iterated only once", path=self.name)
        self._used = True
        slices = self._sorted_slices()
        try:
            yield from (resample_even_slices(slices, self._geom.offsets, self._step) if self._resample else slices)
        finally:
            slices.close()
            self.close()

    # ------------------------------------------------------------------ context

    def close(self) -> None:
        """Release the input (the unpacked copy of a zip); safe to call twice."""
        if self._src is not None:
            self._src.__exit__(None, None, None)
            self._src = None

    def __enter__(self) -> DicomSliceStream:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def iter_series_slices(
    path: PathInput,
    series: int | str | None = None,
    *,
    tilt: TiltPolicy = "correct",
    uneven: UnevenPolicy = "resample",
    workers: int | None = None,
    volume: int | None = None,
) -> DicomSliceStream:
    """Open one DICOM series for streaming: ``.geometry`` at once, then int16 HU slices when iterated.

    Options mean what they mean for :func:`ctlens.load` (``volume=k``: one volume of a 4-D series); the slices and
    geometry equal its result's.

    Example:
        >>> import tempfile, pathlib, pydicom
        >>> from pydicom.dataset import FileMetaDataset
        >>> folder = pathlib.Path(tempfile.mkdtemp())
        >>> for k in range(3):
        ...     ds = pydicom.Dataset(); ds.file_meta = FileMetaDataset()
        ...     ds.file_meta.TransferSyntaxUID = pydicom.uid.ExplicitVRLittleEndian
        ...     ds.SOPClassUID = pydicom.uid.CTImageStorage; ds.SOPInstanceUID = f"1.2.3.{k}"
        ...     ds.SeriesInstanceUID = "1.2.3"; ds.Modality = "CT"
        ...     ds.ImagePositionPatient = [0, 0, 2.5 * k]; ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        ...     ds.PixelSpacing = [0.5, 0.5]; ds.Rows = ds.Columns = 4; ds.BitsAllocated = ds.BitsStored = 16
        ...     ds.HighBit = 15; ds.PixelRepresentation = 1; ds.SamplesPerPixel = 1
        ...     ds.PhotometricInterpretation = "MONOCHROME2"; ds.RescaleIntercept = -1024
        ...     ds.PixelData = np.full((4, 4), 1000 + k, np.int16).tobytes()
        ...     ds.save_as(folder / f"{k}.dcm", enforce_file_format=True)
        >>> with iter_series_slices(folder) as stream:
        ...     print(stream.geometry.shape, stream.geometry.spacing, [int(s[0, 0]) for s in stream])
        (3, 4, 4) (2.5, 0.5, 0.5) [-24, -23, -22]
    """
    return DicomSliceStream(path, series, tilt=tilt, uneven=uneven, workers=workers, volume=volume)
