"""Structure-aware HDF5 volume files for CLIP (``ctlens preprocess-h5`` layout: uint8 ``[D, H, W]`` per volume).

A crafted file holds a few datasets whose shapes (zero-size axes, 2-D / 4-D, a huge declared shape kept small by
chunking and a fill value), dtypes (float with NaN, int64, bool, complex, compound, strings), chunk shapes and
filters (gzip, shuffle, lzf, fletcher32) and names vary; groups, soft and external links to nowhere, and a
``value_to_hu`` attribute of the wrong length or type; then maybe truncated or byte-damaged.

Example:
    >>> h5_seed()[:8]
    b'\\x89HDF\\r\\n\\x1a\\n'
"""

from __future__ import annotations

import functools
import io
from typing import Any

import numpy as np
from gen_ctz import mutate_bytes
from hypothesis import strategies as st

__all__ = ["h5_bytes", "h5_seed"]

DTYPES = ["uint8", "uint8", "float64", "int64", "bool", "complex64", "int16", "compound", "string", "float16"]
SHAPES = [(2, 4, 3), (0, 4, 3), (1, 1, 1), (4, 3), (2, 2, 2, 2), (3,), (1, 256, 256)]
ATTRS = [(7.8, -1000.0), (1.0,), (float("nan"), 0.0), (1e308, -1e308), "x", (1, 2, 3, 4), (), b"ab", 5]


def _write(volumes: list[dict[str, Any]], attrs: Any = None, extra: str | None = None) -> bytes:
    import h5py

    out = io.BytesIO()
    with h5py.File(out, "w") as h5:
        for v in volumes:
            kwargs = {k: v[k] for k in ("chunks", "compression", "shuffle", "fletcher32", "fillvalue") if k in v}
            if "data" in v:
                h5.create_dataset(v["name"], data=v["data"], **kwargs)
            else:
                h5.create_dataset(v["name"], shape=v["shape"], dtype=v["dtype"], **kwargs)
        if attrs is not None:
            h5.attrs["value_to_hu"] = attrs
        if extra == "group":
            h5.create_group("train_9_a_1").create_dataset("inner", data=np.zeros((2, 2, 2), np.uint8))
        elif extra == "soft":
            h5["train_8_a_1"] = h5py.SoftLink("/nowhere")
        elif extra == "external":
            h5["train_7_a_1"] = h5py.ExternalLink("/etc/other.h5", "/x")
    return out.getvalue()


@functools.cache
def h5_seed() -> bytes:
    """A valid file of two uint8 volumes with ``value_to_hu``."""
    rng = np.random.default_rng(4)
    vols = [{"name": f"train_{k}_a_1", "data": rng.integers(0, 255, (3, 8, 7)).astype(np.uint8)} for k in (1, 2)]
    return _write(vols, (2000.0 / 255.0, -1000.0))


def _array(draw: Any, dtype: str, shape: tuple[int, ...]) -> np.ndarray:
    n = int(np.prod(shape))
    if dtype == "compound":
        return np.zeros(shape, dtype=[("a", "u1"), ("b", "f4")])
    if dtype == "string":
        return np.array(["x"] * n, dtype=object).reshape(shape).astype("S3")
    values = np.arange(n, dtype=np.float64).reshape(shape)
    if dtype.startswith("float") and n:
        values.flat[0] = draw(st.sampled_from([np.nan, np.inf, -1e300, 1e300]))
    with np.errstate(all="ignore"):
        return values.astype(dtype)


@st.composite
def _volume(draw: Any, k: int) -> dict[str, Any]:
    name = draw(st.sampled_from([f"train_{k}_a_1", f"valid_{k}_b_2.nii.gz", "x", "a__b__train_3_a_1", " "]))
    kind = draw(st.sampled_from(["data", "data", "huge"]))
    if kind == "huge":  # a huge declared shape stored in a few bytes (chunked, never written)
        side = draw(st.sampled_from([2048, 4096, 65536]))
        return {"name": name, "shape": (side, side, side), "dtype": "uint8", "chunks": (1, 64, 64), "fillvalue": 7}
    dtype, shape = draw(st.sampled_from(DTYPES)), draw(st.sampled_from(SHAPES))
    v: dict[str, Any] = {"name": name, "data": _array(draw, dtype, shape)}
    if len(shape) and min(shape) > 0 and dtype not in ("compound", "string") and draw(st.booleans()):
        v["chunks"] = tuple(1 for _ in shape)
        v.update(
            draw(
                st.sampled_from(
                    [{}, {"compression": "gzip"}, {"compression": "lzf"}, {"shuffle": True}, {"fletcher32": True}]
                )
            )
        )
    return v


@st.composite
def h5_bytes(draw: Any) -> tuple[bytes, str]:
    """``(content, ".h5")`` of a crafted HDF5 volume file (module doc)."""
    volumes = draw(st.lists(_volume(0), min_size=0, max_size=3, unique_by=lambda v: v["name"]))
    attrs = draw(st.sampled_from(ATTRS + [None]))
    extra = draw(st.sampled_from([None, None, "group", "soft", "external"]))
    try:
        data = _write(volumes, attrs, extra)
    except (ValueError, TypeError):  # h5py refuses some attribute values: keep the volumes
        data = _write(volumes, None, extra)
    damage = draw(st.sampled_from(["none", "none", "truncate", "bytes"]))
    if damage == "truncate":
        data = data[: draw(st.integers(0, len(data)))]
    elif damage == "bytes":
        data = mutate_bytes(data, draw)
    return data, ".h5"
