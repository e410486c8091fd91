"""A payload of a PHI-laden series carries no identifier: not in any text, not in the PNGs."""

from __future__ import annotations

import base64
import json

import numpy as np
import pytest
from dicom_factory import PHI_VALUES, write_ct_series

import ctlens
from ctlens.core.volume import Volume
from ctlens.llm.payload import build_payload
from ctlens.llm.providers.formats import anthropic_messages

IDENTIFIERS = [*PHI_VALUES, "20240102", "Jane Roe"]


@pytest.mark.parametrize("provider", ["anthropic", "openai", "gemini"])
def test_phi_laden_series(tmp_path, provider: str, png_chunks) -> None:
    truth = write_ct_series(tmp_path / "dcm", n_slices=6, rows=64, cols=64, description="Jane Roe chest CT")
    vol = ctlens.load(tmp_path / "dcm")
    identifiers = [*IDENTIFIERS, truth.series_uid, truth.study_uid, *truth.sop_uids]
    payload = build_payload(vol, "Describe the lungs.", provider=provider, token_budget=3000, progress=False)
    record = payload.to_dict()
    text = json.dumps(record)
    for ident in identifiers:
        assert ident not in text, ident
    for im in payload.images:
        assert set(png_chunks(im.png)) <= {"IHDR", "PLTE", "IDAT", "IEND"}
        for ident in identifiers:
            assert ident.encode() not in im.png
    for block in anthropic_messages(payload.chat_images(), payload.text)[0]["content"][:-1]:
        assert set(png_chunks(base64.b64decode(block["source"]["data"]))) <= {"IHDR", "PLTE", "IDAT", "IEND"}


def test_meta_allow_list_drops_free_text_and_identifiers() -> None:
    meta = {
        "PatientName": "Roe^Jane",
        "patient_id": "MRN-777",
        "InstitutionName": "Nowhere Hospital",
        "series_description": "Jane Roe chest",
        "study_uid": "1.2.3.4",
        "StudyDate": "20240102",
        "kernel": "B70f",
        "manufacturer": "ACME",
        "kvp": 120.0,
    }
    vol = Volume(np.full((3, 32, 32), 40, np.int16), meta=meta)
    payload = build_payload(vol, "q", token_budget=3000, progress=False)
    text = json.dumps(payload.to_dict(include_request=False))
    for ident in ("Roe", "Jane", "MRN-777", "Nowhere", "1.2.3.4", "20240102"):
        assert ident not in text, ident
    assert payload.facts["kernel"] == "B70f" and "kernel B70f" in payload.text
