"""A 1,000-slice series builds a payload in bounded memory: slices are streamed from a memmap, never loaded.

Peak memory is ``VmHWM`` of the child (:func:`ctlens.core.memory.peak_rss_mb`), not ``ru_maxrss``: on Linux the
latter keeps the high-water mark of the forking pytest worker across ``exec`` (CI saw 3.2 GB before any work).
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent(
    """
    import json, sys
    import numpy as np
    from ctlens.core.memory import peak_rss_mb
    from ctlens.core.volume import Volume
    from ctlens.llm.payload import build_payload

    path, n = sys.argv[1], 1000
    arr = np.lib.format.open_memmap(path, mode="w+", dtype=np.int16, shape=(n, 512, 512))
    yy, xx = np.mgrid[:512, :512]
    body = ((yy - 256) / 180.0) ** 2 + ((xx - 256) / 230.0) ** 2 < 1
    lung = ((yy - 250) / 110.0) ** 2 + ((np.abs(xx - 256) - 95) / 70.0) ** 2 < 1
    plane = np.where(body, np.where(lung, -850, 40), -1000).astype(np.int16)
    for z0 in range(0, n, 100):
        arr[z0 : z0 + 100] = plane
    arr.flush()
    del arr
    before = peak_rss_mb()
    vol = Volume(np.load(path, mmap_mode="r"), spacing=(1.0, 0.7, 0.7))
    p = build_payload(vol, "Describe the lungs.", token_budget=6000, progress=True)
    slices = sorted({t.slice_index for im in p.images for t in im.tiles})
    print(json.dumps({"peak_mib": peak_rss_mb(),
                      "before_mib": before, "tokens": p.token_estimate, "slices": slices,
                      "memmap": not vol.array.flags.owndata}))
    """
)


def test_thousand_slices_bounded_memory(tmp_path) -> None:
    run = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(tmp_path / "series.npy")], capture_output=True, text=True, timeout=300
    )
    assert run.returncode == 0, run.stderr[-2000:]
    result = json.loads(run.stdout.strip().splitlines()[-1])
    assert result["memmap"]  # the Volume is a view of the memmap: nothing was read eagerly
    assert result["peak_mib"] < 2048, result
    assert result["peak_mib"] - result["before_mib"] < 512, result  # a float32 copy of the series alone is 1,000 MiB
    assert result["tokens"] <= 6000
    assert result["slices"][0] < 50 and result["slices"][-1] > 950  # coverage of the whole series
