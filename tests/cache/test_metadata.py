"""DatasetMetadata: studies, images, kinds, modes and problems of a synthetic raw/ folder."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from synthetic_raw import BAD_STUDIES

from ctlens.cache.metadata import DatasetMetadata, content_hash
from ctlens.core.errors import InputNotFoundError


@pytest.fixture(scope="module")
def meta(synthetic_raw_template: Path) -> DatasetMetadata:
    return DatasetMetadata.from_directory(synthetic_raw_template)


def test_one_entry_per_image_with_kind_and_source(meta: DatasetMetadata, synthetic_raw_template: Path) -> None:
    by_study: dict[str, list] = {}
    for e in meta:
        by_study.setdefault(e.study, []).append(e)
        if e.kind != "none":
            assert (synthetic_raw_template / e.source).exists(), e
    assert [e.kind for e in by_study["ct_00"]] == ["nifti"]
    dicom = by_study["dicom_study"]
    assert sorted(e.kind for e in dicom) == ["dicom", "dicom", "zip"]
    assert len({e.image for e in dicom}) == 3 and len({e.series for e in dicom}) == 3
    assert all(e.source.startswith("raw/dicom_study/") for e in dicom)
    # the nested DICOM folder holds two series: both found, named after their folder
    assert sum(e.source == "raw/dicom_study/visit1/axial" for e in dicom) == 2
    assert [e.image for e in by_study["mr_case"]] == ["mr_case"]  # a loose file is its own study
    assert len({e.name for e in meta}) == len(meta)


def test_modes_detected_from_the_data(meta: DatasetMetadata) -> None:
    modes = {e.study: e.mode for e in meta if e.ok}
    assert modes["mr_case"] == "mri"
    assert all(modes[f"ct_{i:02d}"] == "ct" for i in range(6))
    assert {e.mode for e in meta if e.study == "dicom_study"} == {"ct"}
    assert all("Modality" in e.mode_reason for e in meta if e.study == "dicom_study")
    assert "intensity" in meta.get("mr_case", "mr_case").mode_reason


def test_bad_studies_carry_their_problem(meta: DatasetMetadata) -> None:
    for study, reason in BAD_STUDIES.items():
        entries = [e for e in meta if e.study == study]
        assert entries, study
        if study == "flat":  # readable: found at build time (every voxel equal)
            assert entries[0].ok
            continue
        assert [e.problem for e in entries] == [reason], (study, entries)
        assert entries[0].problem_detail


def test_content_hash_is_sha256_of_the_source(meta: DatasetMetadata, synthetic_raw_template: Path) -> None:
    e = meta.get("ct_03", "scan")
    assert e.content_hash == content_hash([synthetic_raw_template / e.source])
    hashes = [x.content_hash for x in meta if x.ok and x.study.startswith("ct_")]
    assert len(set(hashes)) == len(hashes)


def test_mode_mapping_wins_and_says_so(synthetic_raw_template: Path) -> None:
    meta = DatasetMetadata.from_directory(synthetic_raw_template, {"ct_01": "mr", "mr_case/mr_case": "ct"})
    assert meta.get("ct_01", "scan").mode == "mri"
    assert meta.get("mr_case", "mr_case").mode == "ct"
    assert meta.get("mr_case", "mr_case").mode_reason == "mode_mapping['mr_case/mr_case']"
    with pytest.raises(ValueError, match="'ct' or 'mri'"):
        DatasetMetadata.from_directory(synthetic_raw_template, {"ct_01": "xray"})


def test_save_load_roundtrip(meta: DatasetMetadata, tmp_path: Path) -> None:
    meta.save(tmp_path / "meta.json")
    again = DatasetMetadata.load(tmp_path / "meta.json")
    assert again.entries == meta.entries


def test_rescan_reuses_unchanged_and_rehashes_changed(data_copy: Callable[[], Path]) -> None:
    root = data_copy()
    first = DatasetMetadata.from_directory(root)
    path = root / "raw" / "ct_02" / "scan.nii.gz"
    data = path.read_bytes()
    path.write_bytes(data[:-8] + bytes(8))  # other bytes (same size)
    os.utime(path, ns=(time.time_ns(), time.time_ns() + 10**9))
    second = DatasetMetadata.from_directory(root, previous=first)
    changed = [e.name for e, f in zip(second, first, strict=True) if e.content_hash != f.content_hash]
    assert changed == ["ct_02/scan"]


def test_missing_raw_folder_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(InputNotFoundError, match="no raw/ folder"):
        DatasetMetadata.from_directory(tmp_path)


def test_loose_dicom_and_zip_files_are_studies(tmp_path: Path) -> None:
    import dicom_factory as df

    raw = tmp_path / "raw"
    truth = df.write_ct_series(tmp_path / "series", n_slices=3, rows=16, cols=16)
    raw.mkdir()
    df.make_zip(tmp_path / "series", raw / "case_zip.zip")
    os.replace(truth.paths[0], raw / "single_file")  # a lone DICOM file: a one-slice study
    meta = DatasetMetadata.from_directory(tmp_path)
    got = {(e.study, e.image, e.source, e.kind, e.problem) for e in meta}
    assert got == {
        ("case_zip", "case_zip", "raw/case_zip.zip", "zip", None),
        ("single_file", "single_file", "raw/single_file", "dicom", "one slice"),
    }


def test_study_names_that_collide_after_cleaning_stay_apart(tmp_path: Path) -> None:
    from synthetic_raw import synthetic_ct, write_nifti

    for name in ("case 1", "case_1"):
        write_nifti(tmp_path / "raw" / name / "ct.nii.gz", synthetic_ct((32, 32, 4), seed=len(name)))
    write_nifti(tmp_path / "raw" / "case_1.nii.gz", synthetic_ct((32, 32, 4), seed=7))
    meta = DatasetMetadata.from_directory(tmp_path)
    assert sorted(e.study for e in meta) == ["case_1", "case_1_2", "case_1_3"]
    assert len({e.source for e in meta}) == 3
