"""Structure-aware ``.ctz`` and ``.ctz`` JSON-export inputs: valid files with fields pushed to extremes, CRCs redone.

Seeds are small valid files of every kind the encoder writes (lossless JPEG-LS, the thorough profile's mix of
JPEG-LS / HTJ2K / blosc2, ROI mode with correction streams, inter-slice prediction, 8/16/32-bit and boolean
dtypes). A strategy draws a seed and applies one to three mutations: a header field replaced by an extreme JSON
value, an index field (backend, predictor, bias, near) set to any value of its width, a stream flipped,
truncated, extended or swapped, slices dropped, duplicated or reordered, the header replaced by arbitrary bytes
(all with checksums recomputed by :func:`ctz_craft.pack_ctz`), and then, sometimes, raw byte damage on top
(flips, truncation, insertion: mostly checksum failures, which must be errors too).

Example:
    >>> len(seeds()) >= 5 and all(s.startswith(b"\\x89CTZ") for s in seeds())
    True
"""

from __future__ import annotations

import base64
import functools
import json
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from ctz_craft import pack_ctz, unpack_ctz
from hypothesis import strategies as st

from ctlens.codec.container import SliceRecordMeta

__all__ = ["ctz_bytes", "extreme_json", "json_export_bytes", "mutate_bytes", "seeds"]

HEADER_KEYS = ["shape_yx", "dtype", "spacing", "origin", "direction", "modality", "meta", "codec", "format"]
SPECIAL_VALUES = [
    0,
    -1,
    1,
    2,
    255,
    256,
    65535,
    65536,
    2**31 - 1,
    2**31,
    2**32,
    2**63,
    -(2**63),
    10**400,
    0.0,
    -0.0,
    1e-308,
    1e308,
    -1e308,
    float("nan"),
    float("inf"),
    float("-inf"),
    0.5,
    "",
    "<i2",
    "<u2",
    "|u1",
    "|i1",
    "|b1",
    "<i4",
    "<u4",
    ">i2",
    "<i8",
    "<f4",
    "<f8",
    "<c16",
    "O",
    "V8",
    "S4",
    "U2",
    "M8[s]",
    "(2,)i2",
    "i2,i2",
    "CT",
    "MR",
    "\x00",
    "é" * 20,
    True,
    False,
    None,
    [0, 0],
    [1, 1],
    [65535, 65535],
    [200000, 200000],
    [0, -1, 1e308],
    [1, 1, 1],
    [[0, 0, 0]] * 3,
    [[1, 0, 0], [0, 1, 0], [0, 0, 1]],
    [[-1, 0, 0], [0, 0, 1], [0, 1, 0]],
    [[1, 1, 0], [0, 0, 1], [0, 0, 0]],
]


def _scalars() -> st.SearchStrategy[Any]:
    return st.one_of(
        st.sampled_from(SPECIAL_VALUES),
        st.integers(),
        st.floats(allow_nan=True, allow_infinity=True),
        st.text(max_size=12),
        st.booleans(),
        st.none(),
    )


def extreme_json() -> st.SearchStrategy[Any]:
    """JSON values leaning to the extremes: huge/negative numbers, NaN, odd dtype names, nesting, wrong types."""
    return st.recursive(
        _scalars(),
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
        max_leaves=12,
    )


@functools.cache
def seeds() -> tuple[bytes, ...]:
    """Small valid ``.ctz`` files of every kind the encoder writes (built once per process)."""
    from ctlens.codec import encode_volume
    from ctlens.core.volume import Volume

    rng = np.random.default_rng(21)
    ct = rng.integers(-1024, 1800, (4, 12, 9)).astype(np.int16)
    ct[1:] = ct[0] + rng.integers(-3, 4, (3, 12, 9)).astype(np.int16)  # inter prediction pays off
    cases: list[tuple[np.ndarray, dict[str, Any]]] = [
        (ct, {"keyframe_interval": 4, "predict": "measure"}),
        (ct, {"profile": "thorough", "keyframe_interval": 2}),
        (ct, {"mode": "roi", "max_error": 4}),
        (rng.integers(0, 255, (2, 7, 5)).astype(np.uint8), {"profile": "fast"}),
        (rng.integers(-(2**20), -(2**20) + 60000, (2, 6, 6)).astype(np.int32), {}),
        (rng.integers(0, 2, (2, 5, 8)).astype(bool), {"profile": "thorough"}),
    ]
    out = []
    with tempfile.TemporaryDirectory() as tmp:
        for k, (arr, options) in enumerate(cases):
            path = Path(tmp) / f"s{k}.ctz"
            vol = Volume(arr, spacing=(2.5, 0.6, 0.7), origin=(-10.0, 5.0, 3.0), meta={"source_format": "dicom"})
            encode_volume(vol, path, **options)
            out.append(path.read_bytes())
    return tuple(out)


@functools.cache
def _parts(k: int) -> dict[str, Any]:
    return unpack_ctz(seeds()[k])


def mutate_bytes(data: bytes, draw: Any) -> bytes:
    """One raw byte mutation: flip, truncate, insert, duplicate a span, or overwrite with an interesting value."""
    if not data:
        return draw(st.binary(max_size=64))
    kind = draw(st.sampled_from(["flip", "truncate", "insert", "duplicate", "set"]))
    at = draw(st.integers(0, len(data) - 1))
    buf = bytearray(data)
    if kind == "flip":
        buf[at] ^= 1 << draw(st.integers(0, 7))
    elif kind == "truncate":
        del buf[at:]
    elif kind == "insert":
        buf[at:at] = draw(st.binary(min_size=1, max_size=16))
    elif kind == "duplicate":
        span = draw(st.integers(1, 64))
        buf[at:at] = buf[at : at + span]
    else:
        value = draw(st.sampled_from([b"\x00", b"\xff", b"\x7f", b"\x80", b"\xff\xff\xff\xff", b"\x00\x00\x00\x80"]))
        buf[at : at + len(value)] = value
    return bytes(buf)


def _meta(draw: Any, meta: SliceRecordMeta) -> SliceRecordMeta:
    field = draw(st.sampled_from(["backend", "predictor", "bias", "near"]))
    limits = {"backend": (0, 255), "predictor": (0, 255), "bias": (-(2**31), 2**31 - 1), "near": (0, 65535)}
    value = draw(
        st.integers(*limits[field])
        | st.sampled_from([0, 1, 2, 3, 127, 128]).filter(lambda v: limits[field][0] <= v <= limits[field][1])
    )
    return SliceRecordMeta(**{**meta.__dict__, field: value})


def _mutate_parts(parts: dict[str, Any], draw: Any) -> dict[str, Any]:
    header, streams = dict(parts["header"]), list(parts["streams"])
    kinds = ["header", "header", "shape", "record", "stream", "stream_head", "slices", "header_bytes", "trailer"]
    kind = draw(st.sampled_from(kinds))
    if kind == "header":
        key = draw(st.sampled_from(HEADER_KEYS) | st.text(max_size=6))
        if draw(st.booleans()) and key in header:
            del header[key]
        else:
            header[key] = draw(extreme_json())
    elif kind == "shape":
        side = st.integers(-2, 70000) | st.sampled_from([1, 2, 65535, 65536, 2**31, 2**32 + 12])
        header["shape_yx"] = [draw(side), draw(side)]
    elif kind == "record" and streams:
        k = draw(st.integers(0, len(streams) - 1))
        main, corr, meta = streams[k]
        streams[k] = (main, corr, _meta(draw, meta))
    elif kind == "stream" and streams:
        k = draw(st.integers(0, len(streams) - 1))
        main, corr, meta = streams[k]
        if draw(st.booleans()) or not corr:
            main = mutate_bytes(main, draw)
        else:
            corr = mutate_bytes(corr, draw)
        streams[k] = (main, corr, meta)
    elif kind == "stream_head" and streams:  # the codec's own header (J2K markers, JPEG-LS frame, JXL size)
        k = draw(st.integers(0, len(streams) - 1))
        main, corr, meta = streams[k]
        streams[k] = (mutate_bytes(main[:96], draw) + main[96:], corr, meta)
    elif kind == "slices" and streams:
        op = draw(st.sampled_from(["drop", "duplicate", "reverse", "swap_streams"]))
        k = draw(st.integers(0, len(streams) - 1))
        if op == "drop":
            del streams[k]
        elif op == "duplicate":
            streams.insert(k, streams[k])
        elif op == "reverse":
            streams.reverse()
        else:
            j = draw(st.integers(0, len(streams) - 1))
            streams[k] = (streams[j][0], streams[j][1], streams[k][2])
    elif kind == "header_bytes":
        text = json.dumps(header, sort_keys=True).encode()
        header = mutate_bytes(text, draw) if draw(st.booleans()) else draw(st.binary(max_size=200))
    elif kind == "trailer":
        return {"header": header, "streams": streams, "trailer": draw(extreme_json())}
    return {"header": header, "streams": streams, "trailer": parts["trailer"]}


@st.composite
def ctz_bytes(draw: Any) -> bytes:
    """A crafted ``.ctz``: a seed with one to three structural mutations and sometimes raw damage on top."""
    parts = _parts(draw(st.integers(0, len(seeds()) - 1)))
    for _ in range(draw(st.integers(1, 3))):
        parts = _mutate_parts(parts, draw)
        if isinstance(parts["header"], bytes):
            break
    data = pack_ctz(parts["header"], parts["streams"], parts["trailer"])
    if draw(st.integers(0, 4)) == 0:
        data = mutate_bytes(data, draw)
    return data


@st.composite
def json_export_bytes(draw: Any) -> bytes:
    """A crafted JSON export: a crafted ``.ctz`` inside, or the JSON document itself damaged."""
    inner = draw(ctz_bytes()) if draw(st.booleans()) else draw(st.sampled_from(seeds()))
    doc: dict[str, Any] = {
        "format": "ctlens-ctz-json",
        "version": 1,
        "header": {},
        "stats": {},
        "encoding": "base64",
        "ctz_base64": base64.b64encode(inner).decode(),
    }
    kind = draw(st.sampled_from(["inner", "field", "base64", "raw"]))
    if kind == "field":
        key = draw(st.sampled_from(sorted(doc)))
        doc[key] = draw(extreme_json())
    elif kind == "base64":
        doc["ctz_base64"] = mutate_bytes(doc["ctz_base64"].encode(), draw).decode("latin-1")
    text = json.dumps(doc).encode()
    if kind == "raw":
        text = mutate_bytes(text, draw)
    return text
