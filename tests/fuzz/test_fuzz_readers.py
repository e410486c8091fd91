"""Short fuzz runs of every reader in ``make test`` (``scripts/fuzz.py`` / ``make fuzz`` run the long ones).

Each reader first reads its seeds (valid inputs: a valid result, so the invariant is not met by refusing all),
then a few crafted inputs (``Reader.short`` each, ``CTLENS_FUZZ_EXAMPLES`` to override; profile
``ctlens-fuzz-short`` in conftest.py) under the invariant of
:mod:`fuzz_harness`: a valid result or a one-line CTLensError naming the file, no hang, bounded memory.
"""

from __future__ import annotations

import os

import pytest
from fuzz_harness import check_input
from fuzz_readers import READERS
from hypothesis import Phase, given, settings


@pytest.mark.parametrize("name", sorted(READERS))
def test_seeds_are_read(name: str) -> None:
    reader = READERS[name]
    for data, suffix in reader.seeds():
        outcome = check_input(reader.call, data, suffix)
        assert outcome.error is None, outcome.message


def _crafted_cases() -> list:
    out = []
    for name in sorted(READERS):
        pending = READERS[name].pending
        marks = [pytest.mark.xfail(reason=pending, strict=False)] if pending else []
        out.append(pytest.param(name, marks=marks, id=name))
    return out


@pytest.mark.parametrize("name", _crafted_cases())
def test_crafted_inputs_keep_the_invariant(name: str) -> None:
    reader = READERS[name]

    examples = int(os.environ.get("CTLENS_FUZZ_EXAMPLES") or reader.short)

    # a reader still pending a fix elsewhere fails: no shrinking then (it would take minutes, to no use)
    phases = (Phase.explicit, Phase.generate) if reader.pending else tuple(Phase)

    @settings(settings.get_profile("ctlens-fuzz-short"), max_examples=examples, phases=phases)
    @given(reader.strategy)
    def run(case: tuple[bytes, str]) -> None:
        check_input(reader.call, *case)

    run()
