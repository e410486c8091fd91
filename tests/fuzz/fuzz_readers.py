"""The readers under fuzzing: what each one runs on an input file, and the strategy that crafts its inputs.

Each entry runs the reader the way ctlens does (``ctlens decompress`` reads the header, decodes every slice and
writes NIfTI), so a file that passes the reader's checks but breaks a later step is a finding too.

Example:
    >>> sorted(READERS)
    ['ctz', 'ctz_json', 'jpeg', 'labels', 'png']
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

from gen_ctz import ctz_bytes, json_export_bytes, seeds
from gen_image import jpeg_bytes, jpeg_seed, png_bytes, png_seed
from gen_labels import csv_seed, labels_bytes
from hypothesis import strategies as st

__all__ = ["READERS", "Reader"]


def read_ctz(path: Path) -> Any:
    """``ctlens decompress``: header, every slice, random access to the last one, NIfTI out."""
    from ctlens.codec import decode_slice, decode_volume, read_info
    from ctlens.io import save

    read_info(path)
    volume = decode_volume(path)
    decode_slice(path, volume.shape[0] - 1)
    save(volume, path.with_name("out.nii.gz"))
    return volume


def read_ctz_json(path: Path) -> Any:
    """A JSON export: back to ``.ctz`` (``import_json``), and decoded directly (``ctlens decompress x.json``)."""
    from ctlens.codec import import_json

    import_json(path, path.with_name("imported.ctz"))
    return read_ctz(path)


def read_image(path: Path) -> Any:
    """``ctlens.load`` of a PNG / JPEG (:func:`ctlens.io.image2d_reader.read_image2d`)."""
    from ctlens.io.image2d_reader import read_image2d

    return read_image2d(path)


def read_labels(path: Path) -> Any:
    """Study labels from CSV / JSON (:func:`ctlens.data.labels.load_study_labels`)."""
    from ctlens.data.labels import load_study_labels

    return load_study_labels(path)


@dataclasses.dataclass(frozen=True)
class Reader:
    """A reader under fuzzing: ``call(path)``, a strategy of ``(bytes, suffix)``, seeds and the modules it covers."""

    call: Callable[[Path], Any]
    strategy: st.SearchStrategy[tuple[bytes, str]]
    seeds: Callable[[], list[tuple[bytes, str]]]
    modules: tuple[str, ...]


def _json_seeds() -> list[tuple[bytes, str]]:
    import base64
    import json

    return [
        (
            json.dumps(
                {"format": "ctlens-ctz-json", "version": 1, "ctz_base64": base64.b64encode(s).decode()}
            ).encode(),
            ".json",
        )
        for s in seeds()
    ]


READERS: dict[str, Reader] = {
    "ctz": Reader(
        read_ctz,
        ctz_bytes().map(lambda b: (b, ".ctz")),
        lambda: [(s, ".ctz") for s in seeds()],
        (
            "ctlens.codec.container",
            "ctlens.codec.header_rules",
            "ctlens.codec.series",
            "ctlens.codec.slice_codec",
            "ctlens.codec.backends",
        ),
    ),
    "ctz_json": Reader(
        read_ctz_json,
        json_export_bytes().map(lambda b: (b, ".json")),
        _json_seeds,
        ("ctlens.codec.ctz_json",),
    ),
    "png": Reader(
        read_image,
        png_bytes().map(lambda b: (b, ".png")),
        lambda: [(png_seed(m, 5, 4), ".png") for m in ("L", "RGB", "RGBA", "P", "I;16", "1", "LA")],
        ("ctlens.io.image2d_reader",),
    ),
    "jpeg": Reader(
        read_image,
        jpeg_bytes().map(lambda b: (b, ".jpg")),
        lambda: [(jpeg_seed(m, 9, 7), ".jpg") for m in ("L", "RGB", "CMYK")],
        ("ctlens.io.image2d_reader",),
    ),
    "labels": Reader(
        read_labels,
        labels_bytes(),
        lambda: [(csv_seed(), ".csv"), (b'{"s1": "a;b", "s2": ["b"]}', ".json")],
        ("ctlens.data.labels",),
    ),
}
