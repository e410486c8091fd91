"""`CacheManager`: build, load and report the uint8 cache of a data folder (layout in :mod:`ctlens.cache.layout`).

* :meth:`CacheManager.build_cache` scans ``raw/`` (:class:`~ctlens.cache.metadata.DatasetMetadata`, saved
  as ``processed/metadata.json``), skips entries whose manifest carries the current key, and runs
  :func:`~ctlens.cache.entry_builder.build_entry` for the rest on a process pool (spawn, never a
  plain fork; workers die with the build), a thread pool, in-process (``"serial"``) or as Ray tasks
  (``"ray"``), with a rich progress bar. Bad images are recorded with their reason and never stop the build.
* :meth:`CacheManager.load_image` memory-maps one entry: ``{window: uint8 [D, H, W], "mask": ...}``.
* :meth:`CacheManager.get_cache_stats` counts complete / failed / stale / missing entries and bytes.

Example:
    >>> import pathlib, tempfile, nibabel as nib, numpy as np
    >>> root = pathlib.Path(tempfile.mkdtemp()); (root / "raw" / "s1").mkdir(parents=True)
    >>> ct = np.full((20, 20, 3), -1000, np.int16); ct[5:15, 5:15] = 60; ct[8, 8] = 1500
    >>> nib.save(nib.Nifti1Image(ct, np.eye(4)), root / "raw" / "s1" / "ct.nii.gz")
    >>> cache = CacheManager(root)
    >>> report = cache.build_cache(num_workers=1, progress=False)
    >>> report.built, report.failed
    (1, [])
    >>> arrays = cache.load_image("s1", "ct")
    >>> sorted(arrays), arrays["brain"].shape, arrays["brain"].dtype
    (['blood', 'bone', 'brain', 'mask'], (4, 32, 32), dtype('uint8'))
    >>> cache.build_cache(num_workers=1, progress=False).skipped
    1
"""

from __future__ import annotations

import contextlib
import logging
import mmap
import multiprocessing
import os
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from ctlens.cache.entry_builder import build_entry
from ctlens.cache.layout import (
    TMP_PREFIX,
    CacheSettings,
    array_name,
    entry_key,
    failure_path,
    manifest_path,
    read_json,
)
from ctlens.cache.metadata import DatasetMetadata, ImageEntry
from ctlens.core.errors import CacheBusyError, CacheMissError
from ctlens.core.progress import ProgressCallback, announce, counted
from ctlens.io.files import atomic_leftovers, exclusive_lock, remove_path

__all__ = ["BuildReport", "CacheManager", "CacheStats", "Failure"]

log = logging.getLogger(__name__)

ExecutorName = Literal["process", "thread", "serial", "ray"]
METADATA_FILE = "metadata.json"
LOCK_FILE = ".build.lock"


@dataclass
class Failure:
    """An image that could not be cached: ``reason`` is a category, ``detail`` one explaining line."""

    study: str
    image: str
    reason: str
    detail: str


@dataclass
class BuildReport:
    """What one :meth:`CacheManager.build_cache` call did."""

    total: int = 0
    built: int = 0
    skipped: int = 0
    failed: list[Failure] = field(default_factory=list)
    seconds: float = 0.0


@dataclass
class CacheStats:
    """State of a cache against the current ``raw/`` (see :meth:`CacheManager.get_cache_stats`)."""

    entries: int = 0
    complete: int = 0
    failed: int = 0
    stale: int = 0
    missing: int = 0
    studies: int = 0
    bytes: int = 0
    by_mode: dict[str, int] = field(default_factory=dict)
    failures: list[Failure] = field(default_factory=list)
    stale_entries: list[str] = field(default_factory=list)
    missing_entries: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return asdict(self)


def _die_with_parent(parent: int) -> None:
    """Pool worker initializer: end this worker as soon as the build process ``parent`` is gone.

    A killed build must not leave workers writing into the cache while the next build runs. On Linux
    ``prctl(PR_SET_PDEATHSIG)`` has the kernel kill the worker with its parent; elsewhere (and as a
    backstop) a daemon thread checks every 0.5 s that the parent still lives.
    """
    import ctypes
    import signal
    import threading

    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGKILL), 0, 0, 0)  # 1 = PR_SET_PDEATHSIG

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(1)

    threading.Thread(target=watch, name="ctlens-parent-watch", daemon=True).start()


def _mp_context() -> multiprocessing.context.BaseContext:
    """``spawn``: workers are the build's own children (so they die with it) and never inherit forked state."""
    return multiprocessing.get_context("spawn")


class CacheManager:
    """The cache of ``<data_dir>/processed`` built from ``<data_dir>/raw`` (module doc)."""

    def __init__(
        self,
        data_dir: str | os.PathLike[str],
        spacing: Sequence[float] = (4.0, 1.0, 1.0),
        patch: Sequence[int] = (4, 16, 16),
        *,
        ct_windows: Sequence[str] = ("brain", "blood", "bone"),
        method: str = "linear",
        mode_mapping: Mapping[str, str] | str | os.PathLike[str] | None = None,
        processed_dir: str | os.PathLike[str] | None = None,
    ) -> None:
        self.data_dir = Path(data_dir)
        self.processed = Path(processed_dir) if processed_dir else self.data_dir / "processed"
        self.settings = CacheSettings(tuple(spacing), tuple(patch), tuple(ct_windows), method)  # type: ignore[arg-type]
        self.mode_mapping = mode_mapping
        self._metadata: DatasetMetadata | None = None

    # ---- metadata -------------------------------------------------------------------------------------
    @property
    def metadata_path(self) -> Path:
        """``processed/metadata.json``: the last scan of ``raw/``."""
        return self.processed / METADATA_FILE

    def scan(self) -> DatasetMetadata:
        """Rescan ``raw/`` (reusing hashes of unchanged files from the last scan) and save the metadata."""
        previous = None
        if self.metadata_path.is_file():
            with contextlib.suppress(Exception):
                previous = DatasetMetadata.load(self.metadata_path)
        meta = DatasetMetadata.from_directory(self.data_dir, self.mode_mapping, previous=previous)
        self.processed.mkdir(parents=True, exist_ok=True)
        meta.save(self.metadata_path)
        self._metadata = meta
        return meta

    @property
    def metadata(self) -> DatasetMetadata:
        """The metadata: from this object's last scan, else ``processed/metadata.json``, else a new scan."""
        if self._metadata is None:
            if self.metadata_path.is_file():
                self._metadata = DatasetMetadata.load(self.metadata_path)
            else:
                self.scan()
        assert self._metadata is not None
        return self._metadata

    def key(self, entry: ImageEntry) -> str:
        """The key a complete cache entry of ``entry`` carries under the current settings."""
        return entry_key(entry.content_hash, entry.series, entry.mode, self.settings)

    def status(self, entry: ImageEntry) -> str:
        """``'complete'``, ``'failed'`` (recorded under the current key), ``'stale'`` or ``'missing'``.

        ``'complete'`` needs the manifest with the current key and every array file of the size it records.
        """
        key = self.key(entry)
        manifest = read_json(manifest_path(self.processed, entry.study, entry.image))
        if manifest is not None:
            if manifest.get("key") != key:
                return "stale"
            folder = self.processed / entry.study
            for rec in manifest.get("files", {}).values():
                path = folder / rec["file"]
                if not path.is_file() or path.stat().st_size != rec["bytes"]:
                    return "stale"
            return "complete"
        failed = read_json(failure_path(self.processed, entry.study, entry.image))
        if failed is not None:
            return "failed" if failed.get("key") == key else "stale"
        return "missing"

    # ---- build ----------------------------------------------------------------------------------------
    @contextlib.contextmanager
    def _lock(self) -> Iterator[None]:
        self.processed.mkdir(parents=True, exist_ok=True)

        def busy(_holder: str) -> CacheBusyError:
            return CacheBusyError(
                "another build of this cache is running",
                path=self.processed,
                hint="wait for it to finish (the lock is released when its process ends, even if killed)",
            )

        with exclusive_lock(self.processed / LOCK_FILE, busy):
            yield

    def _remove_temporaries(self) -> int:
        removed = 0
        leftovers = [*self.processed.glob(f"{TMP_PREFIX}*"), *self.processed.glob(f"*/{TMP_PREFIX}*")]
        studies = [p for p in self.processed.iterdir() if p.is_dir() and not p.name.startswith(".")]
        for folder in [self.processed, *studies]:  # interrupted atomic_output: metadata.json, manifests, arrays
            leftovers += atomic_leftovers(folder)
        for path in leftovers:
            remove_path(path)
            removed += 1
        if removed:
            log.info("%s: removed %d temporary file(s) left by an interrupted build", self.processed, removed)
        return removed

    def build_cache(
        self,
        num_workers: int = 8,
        force: bool = False,
        executor: ExecutorName = "process",
        *,
        retry_failed: bool = False,
        progress: bool | ProgressCallback = True,
    ) -> BuildReport:
        """Build every entry that is not complete under the current key (resumable, atomic; module doc).

        ``force`` rebuilds everything; ``retry_failed`` retries images that failed under the same key
        (by default they are reported again, not retried). ``num_workers <= 1`` runs in this process.
        ``progress``: a rich bar (True), nothing (False) or a callback told the images done (``ctlens.core.progress``).
        ``executor="ray"`` runs the same per-image function as Ray tasks (a local Ray instance is
        started with ``num_cpus=num_workers`` when none is connected).
        """
        start = time.perf_counter()
        with self._lock():
            self._remove_temporaries()
            meta = self.scan()
            report = BuildReport(total=len(meta))
            todo = []
            for entry in meta:
                state = "missing" if force else self.status(entry)
                if state == "complete" or (state == "failed" and not retry_failed):
                    report.skipped += 1
                    if state == "failed":
                        report.failed.append(self._failure(entry))
                    continue
                todo.append(entry)
            tasks = [(str(self.data_dir), str(self.processed), asdict(e), self.settings.as_dict()) for e in todo]
            for result in self._run(tasks, num_workers, executor, progress):
                if result["status"] == "built":
                    report.built += 1
                else:
                    report.failed.append(Failure(result["study"], result["image"], result["reason"], result["detail"]))
        report.seconds = round(time.perf_counter() - start, 3)
        return report

    def _failure(self, entry: ImageEntry) -> Failure:
        rec = read_json(failure_path(self.processed, entry.study, entry.image)) or {}
        return Failure(entry.study, entry.image, rec.get("reason", "error"), rec.get("detail", ""))

    def _run(
        self, tasks: list[tuple], num_workers: int, executor: ExecutorName, progress: bool | ProgressCallback
    ) -> Iterator[dict[str, Any]]:
        if callable(progress):
            for result in counted(self._results(tasks, num_workers, executor), progress, total=len(tasks)):
                announce(progress, f"{result['study']}/{result['image']} {result['status']}")
                yield result
            return
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        columns = (
            TextColumn("caching"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
            TextColumn("{task.description}"),
        )
        with Progress(*columns, disable=not progress or not tasks, transient=False) as bar:
            job = bar.add_task("", total=len(tasks))
            for result in self._results(tasks, num_workers, executor):
                bar.update(job, advance=1, description=f"{result['study']}/{result['image']} {result['status']}")
                yield result

    def _results(self, tasks: list[tuple], num_workers: int, executor: ExecutorName) -> Iterator[dict[str, Any]]:
        if not tasks:
            return
        if executor == "ray":
            yield from _ray_results(tasks, num_workers)
            return
        if executor not in ("process", "thread", "serial"):
            raise ValueError(f"executor must be 'process', 'thread', 'serial' or 'ray', got {executor!r}")
        if executor == "serial" or num_workers <= 1:
            for task in tasks:
                yield build_entry(*task)
            return
        workers = min(num_workers, len(tasks))
        pool: Executor
        if executor == "thread":
            pool = ThreadPoolExecutor(max_workers=workers)
        else:
            pool = ProcessPoolExecutor(
                max_workers=workers, mp_context=_mp_context(), initializer=_die_with_parent, initargs=(os.getpid(),)
            )
        with pool:
            futures = {pool.submit(build_entry, *task): task for task in tasks}
            for future in as_completed(futures):
                try:
                    yield future.result()
                except Exception as exc:  # noqa: BLE001 - a dead worker (killed, out of memory) fails one image
                    entry = futures[future][2]
                    yield {
                        "study": entry["study"],
                        "image": entry["image"],
                        "status": "failed",
                        "reason": "error",
                        "detail": f"{entry['source']}: worker failed ({type(exc).__name__}: {exc})",
                    }

    # ---- read -----------------------------------------------------------------------------------------
    def manifest(self, study: str, image: str) -> dict[str, Any]:
        """The manifest of a complete entry (mode, view, shape, windows, files ...); ``CacheMissError`` if none."""
        doc = read_json(manifest_path(self.processed, study, image))
        if doc is None:
            rec = read_json(failure_path(self.processed, study, image))
            why = f"it failed, {rec.get('reason')}: {rec.get('detail')}" if rec else "it is not built"
            raise CacheMissError(
                f"no cache entry for {study}/{image} ({why})",
                path=self.processed,
                hint="run `ctlens cache build` (see `ctlens cache stats` for failures)",
            )
        return doc

    def load_image(self, study: str, image: str) -> dict[str, np.ndarray]:
        """``{window: uint8 [D, H, W], ..., "mask": uint8 [D, H, W]}``, memory-mapped read-only (~0.1 ms).

        Divide by 255 for NeuroVFM's [0, 1] intensities. Raises :class:`~ctlens.core.errors.CacheMissError`
        when the entry is not complete.
        """
        return self.open_entry(study, image)[0]

    def open_entry(self, study: str, image: str) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """``(arrays, manifest)`` of a complete entry: :meth:`load_image` plus the manifest, read once."""
        doc = self.manifest(study, image)
        folder = self.processed / study
        out: dict[str, np.ndarray] = {}
        for channel, rec in doc["files"].items():
            try:
                out[channel] = _map_uint8(folder / rec["file"], rec)
            except (OSError, ValueError) as exc:
                raise CacheMissError(
                    f"cache entry {study}/{image} is damaged ({rec['file']}: {exc})",
                    path=folder,
                    hint="run `ctlens cache build` to rebuild it",
                ) from exc
        return out, doc

    def complete_entries(self) -> list[ImageEntry]:
        """Entries of the metadata whose cache entry is complete."""
        return [e for e in self.metadata if self.status(e) == "complete"]

    def verify(self, study: str, image: str) -> bool:
        """True when every array of the entry still has the sha256 its manifest recorded (reads everything)."""
        import hashlib

        arrays = self.load_image(study, image)
        doc = self.manifest(study, image)
        return all(
            hashlib.sha256(np.ascontiguousarray(arrays[ch]).tobytes()).hexdigest() == rec["sha256"]
            for ch, rec in doc["files"].items()
        )

    def get_cache_stats(self, rescan: bool = True) -> CacheStats:
        """Counts against the current ``raw/`` (``rescan=False``: against the last saved scan).

        Failures come with their reason; stale = built under another key (source or settings changed).
        """
        meta = self.scan() if rescan else self.metadata
        stats = CacheStats(entries=len(meta), studies=len(meta.studies))
        for entry in meta:
            state = self.status(entry)
            if state == "complete":
                stats.complete += 1
                doc = self.manifest(entry.study, entry.image)
                stats.bytes += sum(int(rec["bytes"]) for rec in doc["files"].values())
                stats.by_mode[doc["mode"]] = stats.by_mode.get(doc["mode"], 0) + 1
            elif state == "failed":
                stats.failed += 1
                stats.failures.append(self._failure(entry))
            elif state == "stale":
                stats.stale += 1
                stats.stale_entries.append(entry.name)
            else:
                stats.missing += 1
                stats.missing_entries.append(entry.name)
        return stats

    def array_path(self, study: str, image: str, channel: str) -> Path:
        """Path of one cached array (``channel``: a window name or ``mask``)."""
        return self.processed / study / array_name(image, channel)


def _map_uint8(path: Path, rec: dict[str, Any]) -> np.ndarray:
    """Read-only view of a cached uint8 ``.npy`` through ``mmap``: the manifest gives the data offset and
    shape, so no header is parsed (~10x faster than ``np.load(mmap_mode="r")``, which it equals)."""
    if "offset" not in rec:
        return np.load(path, mmap_mode="r", allow_pickle=False)
    shape = tuple(int(n) for n in rec["shape"])
    with open(path, "rb") as fh:
        size = os.fstat(fh.fileno()).st_size
        if size != rec["bytes"] or size != rec["offset"] + int(np.prod(shape)):
            raise ValueError(f"size {size} bytes, the manifest says {rec['bytes']}")
        if size == rec["offset"]:
            return np.zeros(shape, np.uint8)
        buffer = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
    return np.frombuffer(buffer, dtype=np.uint8, offset=int(rec["offset"])).reshape(shape)


def _ray_results(tasks: list[tuple], num_workers: int) -> Iterator[dict[str, Any]]:
    from ctlens.core.optional import require

    ray = require("ray", extra="cluster")
    if not ray.is_initialized():
        ray.init(num_cpus=max(1, num_workers), include_dashboard=False, ignore_reinit_error=True)
    remote: Callable[..., Any] = ray.remote(build_entry)
    pending = {remote.remote(*task): task for task in tasks}
    while pending:
        done, _ = ray.wait(list(pending), num_returns=1)
        for ref in done:
            task = pending.pop(ref)
            try:
                yield ray.get(ref)
            except Exception as exc:  # noqa: BLE001 - a lost Ray task fails one image, not the build
                yield {
                    "study": task[2]["study"],
                    "image": task[2]["image"],
                    "status": "failed",
                    "reason": "error",
                    "detail": f"{task[2]['source']}: Ray task failed ({type(exc).__name__}: {exc})",
                }
