"""ctlens.core.errors: one family, one-line messages that name the file, the reason and the hint."""

from __future__ import annotations

import inspect

import pytest

import ctlens.core.errors as errors
from ctlens.core.errors import CTLensError, PacsError, ServiceError


def _family() -> list[type[CTLensError]]:
    return [c for _, c in inspect.getmembers(errors, inspect.isclass) if issubclass(c, CTLensError)]


@pytest.mark.parametrize("cls", _family(), ids=lambda c: c.__name__)
def test_every_error_is_one_line_with_path_reason_and_hint(cls) -> None:
    try:
        err = cls("bad header\nsecond line", path="scan.nrrd", hint="re-export it")
    except TypeError:  # subclasses with required extra arguments are tested below
        pytest.skip(f"{cls.__name__} takes other arguments")
    text = str(err)
    assert text.startswith("scan.nrrd: bad header")
    assert text.endswith("(re-export it)")
    assert err.reason.startswith("bad header") and err.path == "scan.nrrd" and err.hint == "re-export it"


def test_message_without_path_or_hint_is_the_reason() -> None:
    assert str(CTLensError("nothing to read")) == "nothing to read"


def test_service_error_carries_an_http_status() -> None:
    err = ServiceError("too large", status=413)
    assert err.status == 413 and isinstance(err, CTLensError)


def test_pacs_error_carries_status_and_timeout() -> None:
    err = PacsError("gateway timeout", http_status=504, timed_out=True)
    assert err.http_status == 504 and err.timed_out is True
