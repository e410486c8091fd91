"""Short fuzz runs of every reader in ``make test`` (``scripts/fuzz.py`` / ``make fuzz`` run the long ones).

Each reader first reads its seeds (valid inputs: a valid result, so the invariant is not met by refusing all),
then a few dozen crafted inputs (profile ``ctlens-fuzz-short`` in conftest.py) under the invariant of
:mod:`fuzz_harness`: a valid result or a one-line CTLensError naming the file, no hang, bounded memory.
"""

from __future__ import annotations

import pytest
from fuzz_harness import check_input
from fuzz_readers import READERS
from hypothesis import given, settings


@pytest.mark.parametrize("name", sorted(READERS))
def test_seeds_are_read(name: str) -> None:
    reader = READERS[name]
    for data, suffix in reader.seeds():
        outcome = check_input(reader.call, data, suffix)
        assert outcome.error is None, outcome.message


@pytest.mark.parametrize("name", sorted(READERS))
def test_crafted_inputs_keep_the_invariant(name: str) -> None:
    reader = READERS[name]

    @settings(settings.get_profile("ctlens-fuzz-short"))
    @given(reader.strategy)
    def run(case: tuple[bytes, str]) -> None:
        check_input(reader.call, *case)

    run()
