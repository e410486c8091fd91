"""Export a folder of CT volumes to one HDF5 file of fixed-shape uint8 arrays, for 3D CLIP training.

Every volume found below the input (:func:`ctlens.cache.hdf5_sources.discover_volumes`) is prepared in a worker
process (:func:`ctlens.cache.hdf5_sources.prepare_source`: :func:`ctlens.preprocess.clip_input.to_clip_array`,
orientation, HU clip, aspect-preserving resize, centre pad, uint8); this process alone writes one HDF5 dataset
per volume name (written with :func:`ctlens.io.files.atomic_output`: a temporary file, renamed when complete).
Inputs that fail are recorded with their reason and do not stop the export. Temporary files of an earlier export
to the same file that was killed are removed first (:func:`ctlens.io.files.exclusive_lock` on a lock file tells
that their owner is dead). ``name_mode="hash"`` names datasets by a salted SHA-256 of their relative path,
keeping the paths (which may name patients) in a local CSV instead of the file. The file format is specified in
``docs/hdf5_export.md``.

Example:
    >>> FORMAT_NAME, FORMAT_VERSION, names_csv_path("out/volumes.h5").name
    ('ctlens-clip-volumes', 1, 'volumes.names.csv')
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import csv
import hashlib
import json
import multiprocessing
import os
import secrets
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from ctlens.cache.hdf5_sources import (
    META_COLUMNS,
    PreparedVolume,
    discover_volumes,
    init_worker,
    prepare_source,
    short_reason,
    source_name,
)
from ctlens.core.errors import CacheBusyError, InputNotFoundError
from ctlens.core.progress import ProgressCallback, announce
from ctlens.io.files import atomic_leftovers, atomic_output, exclusive_lock, remove_path
from ctlens.preprocess.clip_input import NIFTI_CODES, SliceOrder, check_clip_args

__all__ = [
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "METADATA_COLUMNS",
    "NAMES_COLUMNS",
    "ExportReport",
    "export_hdf5",
    "hashed_name",
    "names_csv_path",
]

FORMAT_NAME = "ctlens-clip-volumes"
"""Value of the root attribute ``format`` of an exported file."""
FORMAT_VERSION = 1
"""Value of the root attribute ``format_version``; bumped when the layout changes."""

NameMode = Literal["path", "hash"]

METADATA_COLUMNS = (
    "name",
    "source",
    "status",
    "reason",
    "modality",
    "mode_reason",
    *META_COLUMNS,  # manufacturer, model, kernel, body_part, slice_thickness, kvp, ... resampled_equidistant
    "study_uid_hash",
    "series_uid_hash",
    "original_shape",
    "original_spacing",
    "resized_shape",
    "spacing",
    "warnings",
)
"""Columns of the metadata CSV, in order (``docs/hdf5_export.md`` defines each)."""

NAMES_COLUMNS = ("name", "source", "status", "reason", "salt")
"""Columns of the local name -> source CSV written with ``name_mode="hash"`` (never put in the HDF5 file)."""
HASH_HEX_CHARS = 16
"""Hex characters of SHA-256 kept in a hashed dataset name (64 bits: collisions ~1e-8 for 1e6 volumes)."""


def hashed_name(source: str, salt: str) -> str:
    """The dataset name of ``source`` (its path relative to the input, ``#series<k>`` included) when hashed.

    ``sha256(salt + "\\0" + source)``, first :data:`HASH_HEX_CHARS` hex characters. The salt is a secret
    (random per export unless given) so that the name cannot be checked against guessed folder names
    (an unsalted hash of ``Doe_Jane/CT`` or of a 7-digit record number is reversed by trying them all).

    Example:
        >>> hashed_name("Lung_Dx-A0002/series_B40f_8mm", salt="s3cret")
        '7ba495829d415971'
        >>> hashed_name("Lung_Dx-A0002/series_B40f_8mm", salt="other")
        '93b1c134ac7f88d2'
    """
    return hashlib.sha256(f"{salt}\0{source}".encode()).hexdigest()[:HASH_HEX_CHARS]


def names_csv_path(output: str | os.PathLike[str]) -> Path:
    """Default local name -> source CSV of a hashed export: ``volumes.h5`` -> ``volumes.names.csv``.

    Example:
        >>> names_csv_path("out/volumes.h5").as_posix()
        'out/volumes.names.csv'
    """
    out = Path(output)
    return out.with_name(f"{out.stem}.names.csv")


def _scrub(text: str, words: Sequence[str]) -> str:
    """``text`` with every non-empty string of ``words`` (longest first) replaced by ``<hidden>``."""
    for word in sorted({w for w in words if w}, key=len, reverse=True):
        text = text.replace(word, "<hidden>")
    return text


@contextlib.contextmanager
def _export_lock(dest: Path) -> Iterator[int]:
    """Hold ``.<name>.lock`` next to ``dest`` (:func:`~ctlens.io.files.exclusive_lock`) and clear dead temporaries.

    While it is held no other export writes ``dest``, so every ``.<name>.*.tmp`` left there belongs to a
    dead export and is removed. Yields the number removed.
    """

    def busy(holder: str) -> CacheBusyError:
        return CacheBusyError(
            f"another export is writing this file (process {holder})",
            path=dest,
            hint="wait for it to finish or choose another output path",
        )

    with exclusive_lock(dest.parent / f".{dest.name}.lock", busy):
        stale = atomic_leftovers(dest.parent, dest.name)
        for path in stale:
            remove_path(path)
        yield len(stale)


@dataclass
class ExportReport:
    """What :func:`export_hdf5` did: names written, failures ``(name, source, reason)``, wall time.

    ``names_csv``: the local name -> source CSV of a hashed export (``None`` with ``name_mode="path"``);
    ``stale_removed``: temporary files of killed earlier exports to the same files that were removed.
    """

    output: Path
    written: list[str] = field(default_factory=list)
    failures: list[tuple[str, str, str]] = field(default_factory=list)
    seconds: float = 0.0
    names_csv: Path | None = None
    stale_removed: int = 0


def _write_dataset(h5: Any, result: PreparedVolume, compression: str | None) -> None:
    ds = h5.create_dataset(result.name, data=result.array, compression=compression)
    for key, value in result.attrs.items():
        ds.attrs[key] = np.asarray(value) if isinstance(value, tuple | np.ndarray) else value


def _fmt(values: Sequence[float]) -> str:
    return " ".join(f"{float(v):.6g}" for v in values)


def _csv_value(value: Any) -> Any:
    if isinstance(value, tuple | list):
        return _fmt(value)
    return value


def export_hdf5(
    inputs: str | os.PathLike[str],
    output: str | os.PathLike[str],
    metadata_csv: str | os.PathLike[str] | None = None,
    target_shape: Sequence[int] = (160, 224, 224),
    num_workers: int = 4,
    slice_order: SliceOrder = "b2u",
    hu_clip: Sequence[float] = (-1000.0, 1000.0),
    *,
    ct_only: bool = True,
    compression: str | None = None,
    progress: bool | ProgressCallback = True,
    name_mode: NameMode = "path",
    hash_salt: str | None = None,
    names_csv: str | os.PathLike[str] | None = None,
    ct_rate_metadata: str | os.PathLike[str] | None = None,
    ct_rate_axes: str = "yxz",
) -> ExportReport:
    """Export every volume below ``inputs`` into the HDF5 file ``output`` (format: ``docs/hdf5_export.md``).

    * ``num_workers`` processes prepare the volumes (0 or 1: in this process); only this process writes;
    * ``output`` (and ``metadata_csv``: one row per volume, see :data:`METADATA_COLUMNS`) appear only when
      complete (temporary file, then rename); temporary files that a killed earlier export to the same
      files left behind are removed first (an exclusive ``.<name>.lock`` next to each file tells that no
      live export owns them; a second export to the same file meanwhile raises ``CacheBusyError``);
    * a volume that cannot be read or prepared (unreadable, empty, one slice, not CT when ``ct_only``) is
      recorded -- in the report, the CSV (``status=failed``) and the root attribute ``failures`` -- and
      skipped;
    * ``compression``: ``None`` (fastest to read), ``"lzf"`` or ``"gzip"``;
    * ``name_mode="hash"``: datasets are named :func:`hashed_name` of their relative path with a secret salt
      (``hash_salt``, random when ``None``); paths are kept out of the HDF5 file and the metadata CSV, and
      the name -> source mapping goes to ``names_csv`` (default :func:`names_csv_path`), a file to keep
      locally;
    * ``ct_rate_metadata``: the ``*_metadata.csv`` of CT-RATE volumes (NIfTI of stored values without geometry):
      each NIfTI is read with its row applied (rescale, spacing, position, orientation;
      :func:`ctlens.io.ct_rate.load_ct_rate`, array layout ``ct_rate_axes``); a volume without a row fails
      with that reason.

    Example:
        >>> import tempfile, pathlib, h5py, numpy as np, ctlens
        >>> tmp = pathlib.Path(tempfile.mkdtemp()); ct = np.full((6, 16, 16), -1000, np.int16); ct[:, 4:12, 4:12] = 50
        >>> ctlens.save(ctlens.Volume(ct, spacing=(3.0, 1.0, 1.0)), tmp / "ct.nii.gz")
        >>> report = export_hdf5(tmp, tmp / "v.h5", target_shape=(16, 16, 16), num_workers=0, progress=False)
        >>> report.written, h5py.File(tmp / "v.h5")["ct"].shape
        (['ct'], (16, 16, 16))
    """
    import h5py

    start = time.perf_counter()
    shape, lo, hi = check_clip_args(target_shape, slice_order, hu_clip)
    if compression not in (None, "lzf", "gzip"):
        raise ValueError(f"compression must be None, 'lzf' or 'gzip', got {compression!r}")
    if name_mode not in ("path", "hash"):
        raise ValueError(f"name_mode must be 'path' or 'hash', got {name_mode!r}")
    hidden = name_mode == "hash"
    salt = (hash_salt or secrets.token_hex(16)) if hidden else ""
    names_file = (Path(names_csv) if names_csv is not None else names_csv_path(output)) if hidden else None
    params: dict[str, Any] = {
        "target_shape": shape,
        "slice_order": slice_order,
        "hu_clip": (lo, hi),
        "ct_only": ct_only,
    }
    if ct_rate_metadata is not None:
        from ctlens.io.ct_rate import CT_RATE_AXES, read_ct_rate_metadata

        if ct_rate_axes not in CT_RATE_AXES:
            raise ValueError(f"ct_rate_axes must be one of {CT_RATE_AXES}, got {ct_rate_axes!r}")
        read_ct_rate_metadata(ct_rate_metadata)  # a missing or malformed CSV fails here, before any work
        params.update(ct_rate_metadata=str(Path(ct_rate_metadata).resolve()), ct_rate_axes=ct_rate_axes)
    targets = [Path(t) for t in (output, metadata_csv, names_file) if t is not None]
    for target_file in targets:
        if not target_file.parent.is_dir():
            raise InputNotFoundError(
                f"cannot write: the folder {str(target_file.parent)!r} does not exist",
                path=target_file,
                hint="create the folder first or choose another output path",
            )
    if len({t.resolve() for t in targets}) < len(targets):
        raise ValueError(f"output, metadata_csv and names_csv must be different files, got {targets}")
    sources = discover_volumes(inputs)
    if not sources:
        raise InputNotFoundError(
            "no volumes found (DICOM folders, .zip, .nii/.nii.gz, .nrrd, .mha/.mhd)",
            path=inputs,
            hint="check the folder",
        )
    base = Path(inputs)
    roots = sorted({str(base), str(base.absolute()), str(base.resolve())}, key=len, reverse=True)

    def local(text: str) -> str:
        """``text`` with the input folder's absolute path cut to a relative one (true in both name modes)."""
        for root in roots:
            text = text.replace(root + os.sep, "").replace(root, ".")
        return text

    def private(text: str, res: PreparedVolume) -> str:
        """``local(text)``, and with ``name_mode="hash"`` the source's path, folder and file names hidden."""
        text = local(text)
        if not hidden:
            return text
        rel = res.source.rsplit("#series", 1)[0]
        parts = [p for p in rel.split("/") if len(p) >= 3]
        return _scrub(text, [rel, res.source, res.name, *parts, *(source_name(p) for p in parts)])

    report = ExportReport(Path(output), names_csv=names_file)
    rows: list[dict[str, Any]] = []
    names_rows: list[dict[str, Any]] = []
    with contextlib.ExitStack() as locks:
        report.stale_removed = sum(locks.enter_context(_export_lock(t)) for t in targets)
        with atomic_output(output) as tmp:
            with h5py.File(tmp, "w") as h5:
                h5.attrs.update(
                    {
                        "format": FORMAT_NAME,
                        "format_version": FORMAT_VERSION,
                        "target_shape": np.asarray(shape),
                        "slice_order": slice_order,
                        "hu_clip": np.asarray((lo, hi)),
                        "axcodes": "SAR" if slice_order == "b2u" else "IAR",
                        "nifti_axcodes": NIFTI_CODES[slice_order],
                        "value_to_hu": np.asarray(((hi - lo) / 255.0, lo)),
                        "name_mode": name_mode,
                    }
                )
                public_failures: list[dict[str, str]] = []

                def consume(results: list[PreparedVolume]) -> None:
                    for res in results:
                        name = hashed_name(res.source, salt) if hidden else res.name
                        row = {"name": name, "source": "" if hidden else res.source, **res.row}
                        row["warnings"] = private(str(row.get("warnings", "")), res)
                        if res.array is not None and name not in h5:
                            attrs = {k: v for k, v in res.attrs.items() if not (hidden and k == "source")}
                            _write_dataset(h5, PreparedVolume(name, "", res.array, attrs), compression)
                            report.written.append(name)
                            row.update(status="ok", reason="")
                            row.update({k: _csv_value(res.attrs[k]) for k in ("original_shape", "original_spacing")})
                            row.update({k: _csv_value(res.attrs[k]) for k in ("resized_shape", "spacing")})
                        else:
                            reason = local(res.reason or f"duplicate volume name {name!r}")
                            report.failures.append((name, res.source, reason))
                            row.update(status="failed", reason=private(reason, res))
                            public_failures.append({"name": name, "source": row["source"], "reason": row["reason"]})
                        rows.append(row)
                        if hidden:
                            names_rows.append(
                                {"name": name, "source": res.source, "status": row["status"], "salt": salt}
                                | {"reason": "" if row["status"] == "ok" else report.failures[-1][2]}
                            )

                with _progress_bar(progress, len(sources)) as advance:
                    if num_workers <= 1:
                        for src in sources:
                            consume(prepare_source(src, params))
                            advance("" if hidden else src.rel)  # hashed names: no path on screen
                    else:
                        ctx = multiprocessing.get_context("spawn")
                        with cf.ProcessPoolExecutor(num_workers, mp_context=ctx, initializer=init_worker) as pool:
                            futures = {pool.submit(prepare_source, src, params): src for src in sources}
                            for future in cf.as_completed(futures):
                                src = futures[future]
                                try:
                                    results = future.result()
                                except Exception as exc:  # noqa: BLE001 -- a crashed worker fails only its input
                                    reason = f"worker failed: {short_reason(exc)}"
                                    results = [PreparedVolume(src.name, src.rel, reason=reason)]
                                consume(results)
                                advance("" if hidden else src.rel)  # hashed names: no path on screen
                h5.attrs["n_volumes"] = len(report.written)
                h5.attrs["failures"] = json.dumps(public_failures)
            # the CSVs land before the HDF5 file: a hashed export never exists without its name mapping
            if names_file is not None:
                _write_csv(names_file, NAMES_COLUMNS, names_rows)
            if metadata_csv is not None:
                _write_csv(Path(metadata_csv), METADATA_COLUMNS, rows)
    report.written.sort()
    report.seconds = time.perf_counter() - start
    return report


def _write_csv(path: Path, columns: Sequence[str], rows: list[dict[str, Any]]) -> None:
    with atomic_output(path) as tmp_csv, open(tmp_csv, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(columns), extrasaction="ignore")
        writer.writeheader()
        for row in sorted(rows, key=lambda r: r["name"]):
            writer.writerow({k: row.get(k, "") for k in columns})


@contextlib.contextmanager
def _progress_bar(enabled: bool | ProgressCallback, total: int) -> Iterator[Callable[[str], None]]:
    """A rich progress bar over the sources, a progress callback, or nothing; yields ``advance(description)``."""
    if callable(enabled):
        callback, done = enabled, 0
        callback(0, total)

        def advance(desc: str) -> None:
            nonlocal done
            done += 1
            if desc:
                announce(callback, str(desc)[-60:])
            callback(done, total)

        yield advance
        return
    if not enabled:
        yield lambda _desc: None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    columns = (TextColumn("[bold]HDF5 export"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, TextColumn("{task.description}")) as bar:
        task = bar.add_task("", total=total)
        yield lambda desc: bar.update(task, advance=1, description=str(desc)[-60:])
