"""The fuzz invariant, checked for one input: a valid result or a ``CTLensError``, in time and within memory.

:func:`check_input` writes the input bytes to a file of the reader's suffix in a fresh temporary folder, runs the
reader on it in a worker thread and asserts:

(an input of suffix ``.bundle`` is several files, a stored zip made by ``gen_volume.bundle``: they are unpacked into
the folder and the first one is read; an error message may name any of them)

* it returns, or raises a :class:`~ctlens.core.errors.CTLensError` (any other exception fails, with the input);
* within :data:`TIME_LIMIT_S` seconds (a hang fails; the thread is left behind, the test reports it);
* its peak resident memory grows by less than ``10 x input + 256 MiB`` plus the bytes of the valid result it
  returns (a reader may legitimately return a volume larger than its compressed file, never a bigger transient).

Peak memory is Linux's ``VmHWM``, reset before each input by writing ``5`` to ``/proc/self/clear_refs``; it
counts what C libraries allocate too (Pillow, CharLS, OpenJPEG, blosc2), which ``tracemalloc`` would not see.
Where ``/proc`` is missing, the memory check is skipped.

Example:
    >>> from ctlens.core.errors import CorruptFileError
    >>> def reader(path):
    ...     raise CorruptFileError("bad", path=path)
    >>> check_input(reader, b"x", ".bin").error
    'CorruptFileError'
"""

from __future__ import annotations

import concurrent.futures
import ctypes
import ctypes.util
import dataclasses
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ctlens.core.errors import CTLensError

__all__ = ["TIME_LIMIT_S", "FuzzFailure", "Outcome", "check_input", "memory_budget"]

TIME_LIMIT_S = 20.0
"""Seconds one input may take (generous: the machine running the tests may be shared and slow)."""
_MIB = 1024**2


class FuzzFailure(AssertionError):
    """An input broke the invariant; ``data`` holds it (the runner saves it under the findings folder)."""

    def __init__(self, message: str, data: bytes, suffix: str) -> None:
        super().__init__(message)
        self.data, self.suffix = data, suffix


@dataclasses.dataclass
class Outcome:
    """What one input did: ``error`` is the CTLensError class name, or None for a valid result."""

    error: str | None
    seconds: float
    peak_growth: int | None
    message: str = ""


def memory_budget(input_bytes: int, result_bytes: int = 0) -> int:
    """Peak memory growth allowed for one input: ``10 x input + 256 MiB + result``.

    Example:
        >>> memory_budget(1024) == 10 * 1024 + 256 * 1024**2
        True
    """
    return 10 * input_bytes + 256 * _MIB + result_bytes


def _status_kb(field: str) -> int | None:
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith(field):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def _release_free_memory() -> None:
    """Give memory freed by earlier inputs back to the system (glibc ``malloc_trim``), where the C library has it.

    Without it, a long run undercounts: glibc keeps freed heap pages resident (and raises its mmap threshold after
    a large free), so a later input reusing them adds nothing to the resident peak. Found when an input that grew
    the peak by 361 MB in a fresh process grew it by 165 MB on its second call.
    """
    if _LIBC is not None:
        _LIBC.malloc_trim(0)


def _load_libc() -> Any:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return libc if hasattr(libc, "malloc_trim") else None
    except OSError:
        return None


_LIBC = _load_libc()


def _reset_peak() -> bool:
    _release_free_memory()
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def _nbytes(result: Any) -> int:
    """Bytes of the arrays a reader returned (a Volume, an array, a dict or list of arrays)."""
    if result is None:
        return 0
    if isinstance(result, np.ndarray):
        return int(result.nbytes)
    if hasattr(result, "array") and isinstance(result.array, np.ndarray):
        return int(result.array.nbytes)
    if isinstance(result, dict):
        return sum(_nbytes(v) for v in result.values())
    if isinstance(result, list | tuple):
        return sum(_nbytes(v) for v in result)
    if hasattr(result, "values") and isinstance(result.values, dict):
        return sum(_nbytes(v) for v in result.values.values())
    return 0


_POOL = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="fuzz-reader")


def check_input(
    reader: Callable[[Path], Any], data: bytes, suffix: str, *, time_limit: float = TIME_LIMIT_S
) -> Outcome:
    """Run ``reader`` on ``data`` saved as ``input<suffix>``; raise :class:`FuzzFailure` if the invariant breaks."""
    global _POOL
    with tempfile.TemporaryDirectory(prefix="ctlens-fuzz-") as tmp:
        path = Path(tmp) / f"input{suffix}"
        names = {path.name}
        if suffix == ".bundle":
            from gen_volume import unbundle

            files = unbundle(data)
            for name, content in files:  # a name ending in "/" is a folder (read as a whole when first)
                (Path(tmp) / name).parent.mkdir(parents=True, exist_ok=True)
                if name.endswith("/"):
                    (Path(tmp) / name).mkdir(exist_ok=True)
                else:
                    (Path(tmp) / name).write_bytes(content)
            path, names = Path(tmp) / files[0][0], {Path(name).name for name, _ in files}
        else:
            path.write_bytes(data)
        measured = _reset_peak()
        base = _status_kb("VmRSS:")
        measured = measured and base is not None
        start = time.perf_counter()
        future = _POOL.submit(reader, path)
        try:
            result = future.result(timeout=time_limit)
            error, message = None, ""
        except concurrent.futures.TimeoutError:
            _POOL = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="fuzz-reader")
            raise FuzzFailure(f"no answer within {time_limit} s (hang)", data, suffix) from None
        except CTLensError as exc:
            result, error, message = None, type(exc).__name__, str(exc)
            if "\n" in message or not any(name in message for name in names):
                raise FuzzFailure(f"error message not one line naming the file: {message!r}", data, suffix) from exc
        except BaseException as exc:  # noqa: BLE001 - exactly what the invariant forbids
            raise FuzzFailure(f"{type(exc).__name__} escaped: {exc!s:.300}", data, suffix) from exc
        seconds = time.perf_counter() - start
        growth = None
        if measured:
            peak = _status_kb("VmHWM:")
            growth = None if peak is None else max(0, peak - base)  # type: ignore[operator]
            allowed = memory_budget(len(data), _nbytes(result))
            if growth is not None and growth > allowed:
                raise FuzzFailure(f"peak memory grew by {growth} bytes, over {allowed}", data, suffix)
        return Outcome(error, seconds, growth, message)
