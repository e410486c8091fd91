"""Fixtures for the analysis tests: shared-data volumes loaded once per session."""

from __future__ import annotations

import pytest

from shared_data import data_dir


@pytest.fixture(scope="session")
def shared():
    return data_dir()


@pytest.fixture(scope="session")
def chest_series(shared):
    import ctlens

    folder = shared / "lung_pet_ct_dx" / "Lung_Dx-A0002"
    return {name: ctlens.load(folder / name) for name in ("series_B40f_8mm", "series_B70f_8mm")}
