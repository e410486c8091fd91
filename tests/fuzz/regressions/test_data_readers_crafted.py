"""Crafted HDF5 volumes, reports / labels CSVs, CT-RATE metadata, CLIP checkpoints, service forms and findings JSON.

Each case is an input the fuzz harness found breaking the invariant (or one of its kind), run through the real
command line where one reads it (``ctlens clip split --ct``, ``ctlens prepare --ct-rate-metadata``, ``ctlens clip
zero-shot --checkpoint``), through the library call otherwise, and through a real service on 127.0.0.1 for the
form fields. Found by the harness: HDF5 chunked volumes declaring 8 GB in a 6 kB file (a hang), compound and
string volumes, a ``value_to_hu`` attribute of text (raw ``TypeError`` / ``ValueError``); a word in a labels
column (raw ``ValueError``); a CT-RATE rescale of 1e23 (raw ``OverflowError``); a checkpoint config with a
million-wide or million-deep model (``RuntimeError`` from the allocator, or a hang) and state-dict errors spanning
lines.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pytest
from cli_run import assert_one_line_error, run_cli
from gen_checkpoint import checkpoint_files, pack_safetensors, split_safetensors
from gen_findings import findings_seed
from gen_form import _body, _part
from gen_h5 import _write, h5_seed
from gen_tables import VOLUME, metadata_seed, reports_seed
from gen_volume import nifti_seed

from ctlens.core.errors import CorruptFileError, CTLensError
from ctlens.data.ct_report import read_labels

# ----------------------------------------------------------------------------------------------- HDF5 volumes


def _split(tmp_path: Path, h5: Path) -> str:
    result = run_cli("clip", "split", "--ct", str(h5), "--out", str(tmp_path / "split.json"))
    line = assert_one_line_error(result, h5.name)
    assert not (tmp_path / "split.json").exists()
    return line


def test_h5_seed_splits(tmp_path: Path) -> None:
    (tmp_path / "ok.h5").write_bytes(h5_seed())
    result = run_cli("clip", "split", "--ct", str(tmp_path / "ok.h5"), "--out", str(tmp_path / "s.json"))
    assert result.exit_code == 0, result.stderr


@pytest.mark.parametrize(
    ("case", "volumes", "attrs"),
    [
        ("huge", [{"name": "train_1_a_1", "shape": (2048,) * 3, "dtype": "uint8", "chunks": (1, 64, 64)}], None),
        ("compound", [{"name": "train_1_a_1", "data": np.zeros((2, 2, 2), dtype=[("a", "u1"), ("b", "f4")])}], None),
        ("strings", [{"name": "train_1_a_1", "data": np.full((2, 2, 2), b"x", dtype="S3")}], None),
        ("empty", [{"name": "train_1_a_1", "data": np.zeros((0, 4, 3), np.uint8)}], None),
        ("attr_text", [{"name": "train_1_a_1", "data": np.zeros((2, 2, 2), np.uint8)}], "x"),
        ("attr_nan", [{"name": "train_1_a_1", "data": np.zeros((2, 2, 2), np.uint8)}], (float("nan"), 0.0)),
        ("attr_three", [{"name": "train_1_a_1", "data": np.zeros((2, 2, 2), np.uint8)}], (1.0, 2.0, 3.0)),
    ],
)
def test_h5_crafted_volumes(tmp_path: Path, case: str, volumes: list, attrs: object) -> None:
    path = tmp_path / f"{case}.h5"
    path.write_bytes(_write(volumes, attrs))
    _split(tmp_path, path)


def test_h5_damaged_chunk_is_an_error_when_read(tmp_path: Path) -> None:
    from ctlens.data.ct_report import CTReportDataset

    vol = {"name": "train_1_a_1", "data": np.arange(4 * 8 * 8, dtype=np.uint8).reshape(4, 8, 8)}
    data = bytearray(_write([{**vol, "chunks": (1, 8, 8), "compression": "gzip"}]))
    data[-600:-300] = bytes(300)  # the chunks are at the end of the file
    path = tmp_path / "chunks.h5"
    path.write_bytes(bytes(data))
    try:
        dataset = CTReportDataset(path)
        for i in range(len(dataset)):
            dataset[i]
    except CTLensError as exc:
        assert "chunks.h5" in str(exc) and "\n" not in str(exc)


# ------------------------------------------------------------------------------------------- reports / labels


def test_labels_column_holding_words(tmp_path: Path) -> None:
    path = tmp_path / "labels.csv"
    path.write_bytes(reports_seed())
    with pytest.raises(CorruptFileError, match=r"labels\.csv: data row 1: label 'Findings_EN' is 'No effusion\.'"):
        read_labels(path)
    assert read_labels(path, ["Emphysema"])[1]["train_2_a_1"].tolist() == [1.0]


@pytest.mark.parametrize("cell", ["1e309", "inf", "-1e39", "yes"])
def test_labels_cells_out_of_range(tmp_path: Path, cell: str) -> None:
    path = tmp_path / "labels.csv"
    path.write_text(f"VolumeName,Emphysema\ntrain_1_a_1,{cell}\n")
    with pytest.raises(CorruptFileError, match="labels.csv"):
        read_labels(path)


def test_reports_without_a_name_column_through_split(tmp_path: Path) -> None:
    (tmp_path / "v.h5").write_bytes(h5_seed())
    reports = tmp_path / "reports.csv"
    reports.write_text("Name_X,Findings_EN\na,b\n")
    result = run_cli("clip", "split", "--ct", str(tmp_path / "v.h5"), "--reports", str(reports))
    assert_one_line_error(result, "reports.csv")


# ------------------------------------------------------------------------------------------ CT-RATE metadata


@pytest.mark.parametrize(
    ("column", "value"),
    [
        ("RescaleIntercept", "1e23"),
        ("RescaleSlope", "1e300"),
        ("RescaleSlope", "0"),
        ("XYSpacing", "[1e300, 1e300]"),
        ("ZSpacing", "1e308"),
        ("ZSpacing", "1e-320"),  # found by `make fuzz`: nibabel could not decompose the affine on save
        ("XYSpacing", "[1e-320, 0.75]"),
        ("ImagePositionPatient", "[1e300, 0, 0]"),
        ("ImageOrientationPatient", "[0, 0, 0, 0, 0, 0]"),
    ],
)
def test_ct_rate_metadata_out_of_range(tmp_path: Path, column: str, value: str) -> None:
    import csv
    import io

    rows = list(csv.reader(io.StringIO(metadata_seed().decode())))
    rows[1][rows[0].index(column)] = value
    out = io.StringIO()
    csv.writer(out).writerows(rows)
    (tmp_path / "meta.csv").write_text(out.getvalue())
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / VOLUME).write_bytes(gzip.compress(nifti_seed()))
    from ctlens.io.ct_rate import load_ct_rate

    with pytest.raises(CorruptFileError) as caught:
        load_ct_rate(tmp_path / "in" / VOLUME, tmp_path / "meta.csv")
    assert str(caught.value).startswith(VOLUME + ": ") and "\n" not in str(caught.value)
    if column == "RescaleIntercept":  # the command line lists the volume as not exported, with the reason
        h5 = tmp_path / "out.h5"
        result = run_cli(
            "preprocess-h5", "-i", str(tmp_path / "in"), "-o", str(h5), "--ct-rate-metadata", str(tmp_path / "meta.csv")
        )
        assert result.exit_code == 1 and "Traceback" not in result.stdout + result.stderr
        assert "out of range" in " ".join(result.stdout.split()).replace("│", "")


def test_ct_rate_volume_declaring_more_voxels_than_its_file(tmp_path: Path) -> None:
    from ctlens.io.ct_rate import load_ct_rate

    buf = bytearray(nifti_seed())
    buf[42:48] = np.array([30000, 30000, 30000], "<i2").tobytes()
    (tmp_path / VOLUME).write_bytes(gzip.compress(bytes(buf)))
    row = {"RescaleSlope": "1", "RescaleIntercept": "0", "XYSpacing": "[1, 1]", "ZSpacing": "1"}
    with pytest.raises(CorruptFileError, match=VOLUME.replace(".", r"\.")):
        load_ct_rate(tmp_path / VOLUME, row)


# ------------------------------------------------------------------------------------------ CLIP checkpoints


def _checkpoint(tmp_path: Path, config: bytes | None = None, weights: bytes | None = None) -> Path:
    folder = tmp_path / "ckpt"
    folder.mkdir()
    files = checkpoint_files()
    (folder / "config.json").write_bytes(files["config.json"] if config is None else config)
    (folder / "model.safetensors").write_bytes(files["model.safetensors"] if weights is None else weights)
    return folder


def _zero_shot(tmp_path: Path, folder: Path, *must: str) -> str:
    scan = tmp_path / "scan.nii"
    scan.write_bytes(nifti_seed())
    return assert_one_line_error(run_cli("clip", "zero-shot", str(scan), "--checkpoint", str(folder)), *must)


@pytest.mark.parametrize(
    ("part", "key", "value"),
    [
        ("vision", "hidden_size", 10**6),
        ("fusion", "depth", 10**6),
        ("vision", "patch_size", 10**12),
        ("vision", "image_size", 0),
        ("vision", "num_attention_heads", 7),
        ("text", "max_length", "64"),
        ("vision", "pool", "zzz"),
        ("embed_dim", None, 1e300),
    ],
)
def test_checkpoint_config_at_extremes(tmp_path: Path, part: str, key: str | None, value: object) -> None:
    cfg = json.loads(checkpoint_files()["config.json"])
    if key is None:
        cfg[part] = value
    else:
        cfg[part][key] = value
    _zero_shot(tmp_path, _checkpoint(tmp_path, json.dumps(cfg).encode()), "config.json")


@pytest.mark.parametrize("text", [b"[]", b"{", b"[" * 100_000, b'{"vision": 5}'])
def test_checkpoint_config_not_a_config(tmp_path: Path, text: bytes) -> None:
    _zero_shot(tmp_path, _checkpoint(tmp_path, text), "config.json")


@pytest.mark.parametrize(
    "change",
    ["dtype", "shape", "offsets", "length", "external_list", "external_record", "truncate"],
)
def test_checkpoint_safetensors_header_crafted(tmp_path: Path, change: str) -> None:
    header, body = split_safetensors(checkpoint_files()["model.safetensors"])
    name = next(k for k in header if k != "__metadata__")
    length = None
    if change == "dtype":
        header[name]["dtype"] = "F64"
    elif change == "shape":
        header[name]["shape"] = [2**40, 2**40]
    elif change == "offsets":
        header[name]["data_offsets"] = [0, 2**64 - 1]
    elif change == "length":
        length = 2**63
    elif change == "external_list":
        header["__metadata__"] = {"format": "pt", "ctlens.external": "[1, 2]"}
    elif change == "external_record":
        header["__metadata__"] = {"format": "pt", "ctlens.external": '{"text.encoder.": {"fingerprint": "x"}}'}
    data = pack_safetensors(header, body, length)
    if change == "truncate":
        data = data[: len(data) // 2]
    _zero_shot(tmp_path, _checkpoint(tmp_path, weights=data), "model.safetensors")


# ----------------------------------------------------------------------------------------------- service form


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):
    from gen_form import _server

    return _server()


@pytest.mark.parametrize(
    ("path", "parts", "ctype"),
    [
        ("/api/analyze", [("series", b"x" * 1_000_000, None)], None),
        ("/api/analyze", [("series", b"\xff\xfe", None), ("files", b"\x00" * 10, "a\x00b.dcm")], None),
        ("/api/analyze", [(f"f{k}", b"x", None) for k in range(200)], None),
        ("/api/analyze", [], "multipart/form-data"),
        ("/api/chat", [("message", b"\x00" * 5000, None)], None),
        (
            "/api/chat",
            [("message", b"hi", None), ("stream", b"maybe", None), ("provider", b"\xed\xa0\x80", None)],
            None,
        ),
        ("/api/chat", [("message", b"hi", None), ("images", b"PK\x03\x04junk", "x" * 10_000 + ".png")], None),
        ("/api/images", [("file", b"", "")], None),
        ("/api/images", [("file", b"x", None)], "application/x-www-form-urlencoded"),
    ],
)
def test_service_odd_form_fields_are_4xx_json(server, path: str, parts: list, ctype: str | None) -> None:
    body = _body([_part(name, value, filename) for name, value, filename in parts], b"fuzzb")
    with server.client() as client:
        response = client.post(
            path, content=body, headers={"Content-Type": ctype or "multipart/form-data; boundary=fuzzb"}
        )
    assert 400 <= response.status_code < 500, (response.status_code, response.text[:300])
    assert "json" in response.headers["content-type"]
    assert response.json()


# ------------------------------------------------------------------------------------------------ findings JSON


_MALFORMED = [
    "[]",
    '{"candidates": [1]}',
    '{"input_shape": 5}',
    "{",
    '{"zero_shot": {"a": "x"}}',
    '{"candidates": {"a": 1}}',
    '{"candidates": [{"bbox": [1, 2]}]}',
    '{"candidates": [{"slice_boxes": {"x": [0, 0, 1, 1]}}]}',
    '{"candidates": [{"score": true}]}',
    '{"input_shape": [4, -1, 2]}',
    '{"input_shape": [4.5]}',
    '{"warnings": "w"}',
    '{"region": 3}',
    '{"timings": {"t": 1e999999}}',
    '{"zero_shot": {"a": ' + "9" * 400 + "}}",
    "[" * 100000,
]


@pytest.mark.parametrize("text", _MALFORMED)
def test_findings_json_malformed(text: str) -> None:
    from ctlens.analysis.findings import Findings

    assert Findings.from_json(findings_seed()).region == "chest"  # the valid seed reads
    with pytest.raises(CTLensError):
        Findings.from_json(text)


@pytest.mark.parametrize("data", [text.encode() for text in _MALFORMED[:6]] + [b"\xff\xfe{", b""])
def test_findings_file_malformed_names_the_file(tmp_path: Path, data: bytes) -> None:
    from ctlens.analysis.findings import Findings

    path = tmp_path / "my-findings.json"
    path.write_bytes(data)
    with pytest.raises(CorruptFileError, match="my-findings.json") as info:
        Findings.load(path)
    assert "\n" not in str(info.value)
    path.write_bytes(findings_seed())
    assert Findings.load(path).candidates[0].kind == "nodule"
