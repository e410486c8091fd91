"""Crafted ``.ctz`` files (every CRC valid, index and footer rewritten to match) give one ``ctlens: error:`` line.

The first four are the cases of issue #21 (a 2 TiB shape, a zero/negative/huge spacing, an all-zero direction,
complex and object dtypes); the others were found by the fuzz harness or by reading the decoder.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from cli_run import assert_one_line_error, run_cli
from ctz_craft import pack_ctz, unpack_ctz

from ctlens.codec import decode_slice, decode_volume, encode_volume, read_info
from ctlens.codec.container import SliceRecordMeta
from ctlens.core.errors import CTLensError
from ctlens.core.volume import Volume


@pytest.fixture(scope="module")
def parts(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    path = tmp_path_factory.mktemp("ctz") / "base.ctz"
    rng = np.random.default_rng(5)
    vol = Volume(rng.integers(-1024, 1500, (3, 12, 10)).astype(np.int16), spacing=(2.5, 0.7, 0.7))
    encode_volume(vol, path, profile="thorough", keyframe_interval=2)
    return unpack_ctz(path.read_bytes())


def _write(tmp_path: Path, parts: dict[str, Any], name: str = "crafted.ctz", **header: Any) -> Path:
    path = tmp_path / name
    path.write_bytes(pack_ctz({**parts["header"], **header}, parts["streams"], parts["trailer"]))
    return path


def _decompress_fails(path: Path, *words: str) -> str:
    out = path.parent / "out.nii.gz"
    line = assert_one_line_error(run_cli("decompress", str(path), str(out)), path.name, *words)
    assert not out.exists()
    return line


def _nested(depth: int) -> Any:
    value: Any = 0
    for _ in range(depth):
        value = [value]
    return value


ISSUE_CASES = {
    "huge shape": ({"shape_yx": [200000, 200000]}, "shape_yx"),
    "bad spacing": ({"spacing": [0, -1, 1e308]}, "spacing"),
    "zero direction": ({"direction": [[0, 0, 0], [0, 0, 0], [0, 0, 0]]}, "direction"),
    "complex dtype": ({"dtype": "<c16"}, "dtype"),
    "object dtype": ({"dtype": "O"}, "dtype"),
}


@pytest.mark.parametrize("case", sorted(ISSUE_CASES))
def test_issue_21_cases_are_one_line_errors(case: str, parts: dict[str, Any], tmp_path: Path) -> None:
    changes, word = ISSUE_CASES[case]
    path = _write(tmp_path, parts, **changes)
    _decompress_fails(path, word)
    for reader in (decode_volume, read_info, lambda p: decode_slice(p, 1)):
        with pytest.raises(CTLensError, match=word):
            reader(path)


def test_valid_crafted_file_still_decodes(parts: dict[str, Any], tmp_path: Path) -> None:
    """The control: the same crafting with no change decodes (so the failures above are the header's)."""
    path = _write(tmp_path, parts)
    res = run_cli("decompress", str(path), str(tmp_path / "ok.nii.gz"))
    assert res.exit_code == 0, res.stderr
    assert decode_volume(path).shape == (3, 12, 10)


MORE_CASES = {
    "shape within sides but over the decode budget": ({"shape_yx": [65535, 65535]}, "limit"),
    "shape as floats": ({"shape_yx": [12.0, 10.0]}, "shape_yx"),
    "shape as booleans": ({"shape_yx": [True, True]}, "shape_yx"),
    "negative shape": ({"shape_yx": [-12, 10]}, "shape_yx"),
    "shape of a wrong slice size": ({"shape_yx": [10, 12]}, "cannot decode"),
    "float dtype": ({"dtype": "<f4"}, "dtype"),
    "eight byte integers": ({"dtype": "<i8"}, "dtype"),
    "structured dtype": ({"dtype": "i2,i2"}, "dtype"),
    "garbage dtype": ({"dtype": "not a type"}, "dtype"),
    "nan spacing": ({"spacing": [float("nan"), 1, 1]}, "spacing"),
    "spacing of strings": ({"spacing": ["1", "1", "1"]}, "spacing"),
    "huge integer spacing": ({"spacing": [10**400, 1, 1]}, "spacing"),
    "subnormal spacing": ({"spacing": [1e-320, 1, 1]}, "spacing"),  # a singular affine on save
    "infinite origin": ({"origin": [float("inf"), 0, 0]}, "origin"),
    "short origin": ({"origin": [0, 0]}, "origin"),
    "parallel direction": ({"direction": [[1, 1, 0], [0, 0, 1], [0, 0, 0]]}, "direction"),
    "scaled direction": ({"direction": [[2, 0, 0], [0, 2, 0], [0, 0, 2]]}, "direction"),
    "modality too long": ({"modality": "X" * 5000}, "modality"),
    "meta not an object": ({"meta": [1, 2, 3]}, "meta"),
    "meta nested deeply": ({"meta": {"a": _nested(40)}}, "meta"),
    "no shape": ({"shape_yx": None}, "shape_yx"),
}


@pytest.mark.parametrize("case", sorted(MORE_CASES))
def test_more_crafted_headers(case: str, parts: dict[str, Any], tmp_path: Path) -> None:
    changes, word = MORE_CASES[case]
    _decompress_fails(_write(tmp_path, parts, **changes), word)


def _raw(tmp_path: Path, parts: dict[str, Any], header: Any = None, **kwargs: Any) -> Path:
    path = tmp_path / "raw.ctz"
    streams = kwargs.pop("streams", parts["streams"])
    path.write_bytes(pack_ctz(parts["header"] if header is None else header, streams, parts["trailer"], **kwargs))
    return path


def test_header_not_an_object_or_not_json(parts: dict[str, Any], tmp_path: Path) -> None:
    for header in (b"[1, 2]", b"null", b"\xff\xfe", b"[" * 100000 + b"]" * 100000, b'{"a": 1' + b"9" * 5000 + b"}"):
        _decompress_fails(_raw(tmp_path, parts, header), "header")


def test_overlapping_records_cannot_reuse_one_stream(parts: dict[str, Any], tmp_path: Path) -> None:
    """A stream bomb: many index records pointing at one small stream would decode far more than the file holds."""
    first = parts["streams"][0]
    streams = [first] * 3
    start = len(pack_ctz(parts["header"], [], None)) - 48 - len(b'{"stats":{}}')
    path = _raw(tmp_path, parts, streams=streams, offsets=[start] * 3)
    _decompress_fails(path, "back to back")


def test_bad_record_fields(parts: dict[str, Any], tmp_path: Path) -> None:
    main, corr, meta = parts["streams"][0]
    cases = {
        "backend": SliceRecordMeta(backend=9, predictor=0, bias=meta.bias, near=0),
        "predictor": SliceRecordMeta(backend=meta.backend, predictor=7, bias=meta.bias, near=0),
        "previous slice": SliceRecordMeta(backend=meta.backend, predictor=1, bias=meta.bias, near=0),
        "near": SliceRecordMeta(backend=meta.backend, predictor=0, bias=meta.bias, near=4000),
    }
    for word, bad in cases.items():
        _decompress_fails(_raw(tmp_path, parts, streams=[(main, corr, bad), *parts["streams"][1:]]), word)


def test_streams_of_another_codec_or_size(parts: dict[str, Any], tmp_path: Path) -> None:
    """A stream labelled with another backend, or coding another image size, is refused before it is decoded."""
    main, corr, meta = parts["streams"][0]
    for backend in (0, 1, 2, 3):
        if backend != meta.backend:
            swapped = SliceRecordMeta(backend=backend, predictor=0, bias=meta.bias, near=0)
            _decompress_fails(_raw(tmp_path, parts, streams=[(main, corr, swapped), *parts["streams"][1:]]), "slice 0")
    from ctlens.codec.backends import encode

    big = np.zeros((4000, 4000), np.uint16)
    for name, backend in (("jpegls", 1), ("htj2k", 2), ("blosc2", 0), ("jpegxl", 3)):
        stream = (encode(name, big), b"", SliceRecordMeta(backend=backend, predictor=0, bias=0, near=0))
        _decompress_fails(_raw(tmp_path, parts, streams=[stream, *parts["streams"][1:]]), "slice 0")


def test_version_and_empty_files(parts: dict[str, Any], tmp_path: Path) -> None:
    line = assert_one_line_error(
        run_cli("decompress", str(_raw(tmp_path, parts, major=9)), str(tmp_path / "o.nii.gz")), "version"
    )
    assert "raw.ctz" in line
    _decompress_fails(_raw(tmp_path, parts, streams=[]), "no slices")


def test_damaged_htj2k_stream_prints_nothing_but_the_error(parts: dict[str, Any], tmp_path: Path) -> None:
    """OpenJPH reports some stream errors through a callback: "Exception ignored in ..." tracebacks on stderr.

    Found by the fuzz harness (ctz reader); the codec turns them into the slice's one-line error.
    """
    from ctlens.codec.backends import encode

    stream = bytearray(encode("htj2k", np.arange(64 * 48, dtype=np.uint16).reshape(64, 48)))
    stream[144] ^= 0xFF
    header = {**parts["header"], "shape_yx": [64, 48], "dtype": "<u2"}
    meta = SliceRecordMeta(backend=2, predictor=0, bias=0, near=0)
    path = tmp_path / "htj2k.ctz"
    path.write_bytes(pack_ctz(header, [(bytes(stream), b"", meta)], parts["trailer"]))
    res = run_cli("decompress", str(path), str(tmp_path / "o.nii.gz"))
    line = assert_one_line_error(res, "htj2k.ctz", "slice 0")
    assert "damaged" in line
    assert "Exception ignored" not in res.stderr and "RuntimeError" not in res.stderr.replace(line, "")
