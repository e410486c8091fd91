"""Peak resident memory of the current process, for memory bounds in tests and benchmarks.

Linux ``/proc/self/status`` ``VmHWM`` is the peak RSS of this process image; ``ru_maxrss`` (the fallback on
other systems) would include the RSS a forked child inherited from its parent.

Example:
    >>> peak_rss_kb() > 0, peak_rss_mb() > 0
    (True, True)
"""

from __future__ import annotations

import resource

__all__ = ["peak_rss_kb", "peak_rss_mb"]


def peak_rss_kb() -> int:
    """Peak resident set size of this process in KiB (``VmHWM``; ``ru_maxrss`` where /proc is missing)."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def peak_rss_mb() -> float:
    """Peak resident set size of this process in MiB (see :func:`peak_rss_kb`).

    Example:
        >>> round(peak_rss_mb() * 1024) == peak_rss_kb()
        True
    """
    return peak_rss_kb() / 1024
