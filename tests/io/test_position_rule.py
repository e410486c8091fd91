"""One rule for positions in every reader: a coordinate within +-1e9 mm is read, one beyond it is refused.

DICOM and NRRD / MHA used to stop at 1e8 mm while ``.ctz`` and CT-RATE went to 1e9 and NIfTI had no limit, so the
same volume read in one format and not in another. ``ctlens.core.volume.position_in_range`` is now the one rule.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from dicom_factory import write_ct_series

from ctlens.codec import decode_volume, encode_volume
from ctlens.core.errors import CorruptFileError, CTLensError, UnsupportedFormatError
from ctlens.core.volume import MAX_POSITION_MM, Volume
from ctlens.io import load, save

_FAR = 0.5 * MAX_POSITION_MM  # far, but a place
_BEYOND = 2.0 * MAX_POSITION_MM


def _saved(tmp_path: Path, suffix: str, origin_z: float) -> Path:
    volume = Volume(np.zeros((3, 4, 5), np.int16), spacing=(2.0, 0.5, 0.5), origin=(origin_z, -20.0, 10.0))
    path = tmp_path / f"far{suffix}"
    if suffix == ".ctz":
        encode_volume(volume, path)
    else:
        save(volume, path)
    return path


def _dicom(tmp_path: Path, origin_z: float) -> Path:
    folder = tmp_path / "series"
    write_ct_series(folder, n_slices=3, rows=4, cols=5, origin=(10.0, -20.0, origin_z), verify=False)
    return folder


@pytest.mark.parametrize("suffix", [".nii.gz", ".nrrd", ".mha", ".ctz"])
def test_a_far_origin_reads_in_every_format(tmp_path: Path, suffix: str) -> None:
    path = _saved(tmp_path, suffix, _FAR)
    volume = decode_volume(path) if suffix == ".ctz" else load(path)
    assert volume.origin[0] == pytest.approx(_FAR, rel=1e-6)


@pytest.mark.parametrize("suffix", [".nii.gz", ".nrrd", ".mha", ".ctz"])
def test_an_origin_beyond_the_rule_is_refused_in_every_format(tmp_path: Path, suffix: str) -> None:
    with pytest.raises(CorruptFileError, match="origin") as info:
        load(_saved(tmp_path, suffix, _BEYOND))  # .ctz: its encoder checks the header it writes by the same rule
    assert "far" + suffix in str(info.value) and "\n" not in str(info.value)


def test_dicom_follows_the_same_rule(tmp_path: Path) -> None:
    assert load(_dicom(tmp_path / "far", _FAR)).origin[2] == pytest.approx(_FAR, rel=1e-6)
    with pytest.raises(CTLensError, match="ImagePositionPatient"):
        load(_dicom(tmp_path / "beyond", _BEYOND))


def test_load_names_the_ctz_container_and_how_to_read_it(tmp_path: Path) -> None:
    path = _saved(tmp_path, ".ctz", 0.0)
    with pytest.raises(UnsupportedFormatError, match="decode_volume"):
        load(path)
