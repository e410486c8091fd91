"""Structure-aware CLIP3D checkpoint folders: ``config.json`` values and ``model.safetensors`` headers.

A seed is the folder ``ctlens clip train`` writes for the tiny test architecture (``ctclip-tiny``). A strategy
changes ``config.json`` (architecture sizes pushed to extremes or wrong types, unknown keys, non-JSON) or the
safetensors header, rebuilt with its length prefix recomputed: a tensor's ``dtype`` (other widths, unknown
names), ``shape`` (huge, negative, empty, too many axes), ``data_offsets`` (reversed, overlapping, past the end),
the ``__metadata__`` record of left-out towers (any JSON), a header length past the file; then maybe truncates.
Inputs are bundles (``gen_volume.bundle``): the folder is read.

Example:
    >>> header, data = split_safetensors(checkpoint_files()["model.safetensors"])
    >>> all("data_offsets" in v for k, v in header.items() if k != "__metadata__") and len(data) > 0
    True
"""

from __future__ import annotations

import functools
import json
import struct
import tempfile
from pathlib import Path
from typing import Any

from gen_ctz import extreme_json, mutate_bytes
from gen_volume import bundle
from hypothesis import strategies as st

__all__ = ["checkpoint_bytes", "checkpoint_files", "checkpoint_seed", "split_safetensors"]

CONFIG_INTS = {
    "vision": ["image_size", "patch_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "mlp_ratio"],
    "fusion": ["dim", "depth", "heads"],
    "text": ["max_length"],
}
INT_VALUES = [0, -1, 1, 3, 7, 10**6, 2**31, 10**12, 1e300, float("nan"), "32", None, [32], True]
DTYPES = ["F32", "F16", "BF16", "F64", "I8", "U8", "I64", "BOOL", "F8_E4M3", "X", "", 5]


@functools.cache
def checkpoint_files() -> dict[str, bytes]:
    """``{"config.json": ..., "model.safetensors": ...}`` of a tiny valid checkpoint (built once)."""
    from ctlens.models.clip3d.checkpoint import save_model_weights
    from ctlens.models.clip3d.config import load_config
    from ctlens.models.clip3d.model import build_model

    with tempfile.TemporaryDirectory() as tmp:
        save_model_weights(build_model(load_config("ctclip-tiny")), tmp)
        return {name: (Path(tmp) / name).read_bytes() for name in ("config.json", "model.safetensors")}


def split_safetensors(data: bytes) -> tuple[dict[str, Any], bytes]:
    """``(header JSON, tensor bytes)`` of a safetensors file."""
    (n,) = struct.unpack("<Q", data[:8])
    return json.loads(data[8 : 8 + n]), data[8 + n :]


def pack_safetensors(header: dict[str, Any], body: bytes, length: int | None = None) -> bytes:
    """A safetensors file from its header and tensor bytes (``length`` overrides the header length prefix)."""
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text) if length is None else length) + text + body


def _as_bundle(files: dict[str, bytes]) -> bytes:
    return bundle([("ckpt/", b""), *((f"ckpt/{name}", data) for name, data in files.items())])


def checkpoint_seed() -> bytes:
    """The valid checkpoint as a bundle input."""
    return _as_bundle(checkpoint_files())


def _config(draw: Any, text: bytes) -> bytes:
    cfg = json.loads(text)
    kind = draw(st.sampled_from(["int", "int", "int", "any", "unknown", "text"]))
    if kind == "int":
        part = draw(st.sampled_from(sorted(CONFIG_INTS)))
        cfg.setdefault(part, {})[draw(st.sampled_from(CONFIG_INTS[part]))] = draw(st.sampled_from(INT_VALUES))
    elif kind == "any":
        key = draw(st.sampled_from(["embed_dim", "vision", "fusion", "text", "input", "name"]))
        cfg[key] = draw(extreme_json())
    elif kind == "unknown":
        cfg["surprise"] = 1
    else:
        return draw(st.sampled_from([b"", b"{", b"[]", b"null", b"\xff\xfe", b"[" * 100_000]))
    return json.dumps(cfg).encode()


def _weights(draw: Any, data: bytes) -> bytes:
    header, body = split_safetensors(data)
    names = [k for k in header if k != "__metadata__"]
    name = draw(st.sampled_from(names))
    kind = draw(st.sampled_from(["dtype", "shape", "offsets", "meta", "length", "drop", "truncate"]))
    length = None
    if kind == "dtype":
        header[name]["dtype"] = draw(st.sampled_from(DTYPES))
    elif kind == "shape":
        header[name]["shape"] = draw(
            st.sampled_from([[], [0], [-1], [2**40, 2**40], [1] * 100, [2**63], ["a"], None, [3, 3]])
        )
    elif kind == "offsets":
        start, end = header[name]["data_offsets"]
        header[name]["data_offsets"] = draw(
            st.sampled_from([[end, start], [0, end], [start, len(body) + 8], [0, 2**64 - 1], [-1, end], [start]])
        )
    elif kind == "meta":
        header["__metadata__"] = {"format": "pt", "ctlens_external": json.dumps(draw(extreme_json()))}
    elif kind == "length":
        length = draw(st.sampled_from([0, 1, 7, 2**63, 2**64 - 1, 100_000_000, len(body) + 10**6]))
    elif kind == "drop":
        header.pop(name)
    packed = pack_safetensors(header, body, length)
    if kind == "truncate":
        packed = packed[: draw(st.integers(0, len(packed)))]
    return packed


@st.composite
def checkpoint_bytes(draw: Any) -> tuple[bytes, str]:
    """``(bundle, ".bundle")`` of a crafted checkpoint folder."""
    files = dict(checkpoint_files())
    part = draw(st.sampled_from(["config", "weights", "both", "missing"]))
    if part in ("config", "both"):
        files["config.json"] = _config(draw, files["config.json"])
    if part in ("weights", "both"):
        files["model.safetensors"] = _weights(draw, files["model.safetensors"])
    if part == "missing":
        files.pop(draw(st.sampled_from(sorted(files))))
    if draw(st.integers(0, 5)) == 0:
        name = draw(st.sampled_from(sorted(files)))
        files[name] = mutate_bytes(files[name][:4096], draw) + files[name][4096:]
    return _as_bundle(files), ".bundle"
