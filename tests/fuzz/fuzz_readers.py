"""The readers under fuzzing: what each one runs on an input file, and the strategy that crafts its inputs.

Each entry runs the reader the way ctlens does (``ctlens decompress`` reads the header, decodes every slice and
writes NIfTI), so a file that passes the reader's checks but breaks a later step is a finding too.

Example:
    >>> sorted(READERS)[:6]
    ['bmp', 'checkpoint', 'ct_rate_csv', 'ctz', 'ctz_json', 'dicom']
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

from gen_checkpoint import checkpoint_bytes, checkpoint_seed
from gen_ctz import ctz_bytes, json_export_bytes, seeds
from gen_dicom import dicom_bytes, dicom_seeds
from gen_findings import findings_bytes, findings_seed
from gen_form import form_bytes, form_seed, post_form
from gen_h5 import h5_bytes, h5_seed
from gen_image import BMP_SEEDS, bmp_bytes, bmp_seed, jpeg_bytes, jpeg_seed, png_bytes, png_seed
from gen_labels import csv_seed, labels_bytes
from gen_tables import VOLUME, metadata_bundle, metadata_bytes, metadata_seed, reports_bytes, reports_seed
from gen_tiff import PILLOW_SEEDS, TIFFFILE_SEEDS, tiff_bytes, tiff_seed, tifffile_seed
from gen_volume import itk_bytes, itk_seeds, nifti_bytes, nifti_seed
from gen_zip import zip_bytes, zip_seed
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
    """``ctlens.load`` of a PNG / JPEG / TIFF / BMP (:func:`ctlens.io.image2d_reader.read_image2d`)."""
    from ctlens.io.image2d_reader import read_image2d

    return read_image2d(path)


def read_volume(path: Path) -> Any:
    """``ctlens convert x.nii.gz out.nii.gz``: :func:`ctlens.io.load` (NIfTI, NRRD, MetaImage), then NIfTI out."""
    from ctlens.io import load, save

    volume = load(path)
    save(volume, path.with_name("out.nii.gz"))
    return volume


def read_zip(path: Path) -> Any:
    """An uploaded zip: :func:`ctlens.io.archive.safe_extract_zip` (the service), then ``ctlens convert x.zip``."""
    from ctlens.io.archive import safe_extract_zip

    safe_extract_zip(path, path.with_name("extracted"))
    return read_volume(path)


def read_h5(path: Path) -> Any:
    """CLIP's HDF5 volumes: :class:`ctlens.data.ct_report.CTReportDataset` and every item of it, collated."""
    from ctlens.data.ct_report import CTReportDataset, collate_ct_report

    dataset = CTReportDataset(path)
    items = [dataset[i] for i in range(len(dataset))]
    for item in items:
        collate_ct_report([item])
    return [item["volume"].numpy() for item in items]


def read_reports(path: Path) -> Any:
    """A reports / labels CSV for CLIP: reports, labels and patients of :mod:`ctlens.data.ct_report`."""
    from ctlens.data.ct_report import read_labels, read_patients, read_reports

    read_reports(path)
    read_patients(path)
    return read_labels(path, ["Emphysema", "Cardiomegaly"])[1]


def read_ct_rate(path: Path) -> Any:
    """CT-RATE metadata CSV and the volume it describes (``ctlens convert v.nii.gz --ct-rate-metadata m.csv``)."""
    from ctlens.io import save
    from ctlens.io.ct_rate import load_ct_rate, read_ct_rate_metadata

    read_ct_rate_metadata(path)
    volume = load_ct_rate(path.with_name(VOLUME), path)
    save(volume, path.with_name("out.nii.gz"))
    return volume


def read_checkpoint(path: Path) -> Any:
    """A CLIP3D checkpoint folder: :func:`ctlens.models.clip3d.checkpoint.load_model_checkpoint`."""
    from ctlens.models.clip3d.checkpoint import load_model_checkpoint

    load_model_checkpoint(path)


def read_findings(path: Path) -> Any:
    """A findings JSON file read back (:meth:`ctlens.analysis.findings.Findings.load`)."""
    from ctlens.analysis.findings import Findings

    return Findings.load(path)


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
    pending: str | None = None
    """Why the reader is known to break the invariant still (a fix in a module other owners hold), or None."""
    short: int = 40
    """Crafted inputs in ``make test`` (slow readers fewer: the fuzz tests stay within about a minute)."""


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
    "bmp": Reader(
        read_image,
        bmp_bytes().map(lambda b: (b, ".bmp")),
        lambda: [(bmp_seed(k), ".bmp") for k in BMP_SEEDS],
        ("ctlens.io.image2d_reader", "ctlens.io.bmp_rle"),
    ),
    "tiff": Reader(
        read_image,
        tiff_bytes().map(lambda b: (b, ".tif")),
        lambda: (
            [(tiff_seed(m, c, 9, 7), ".tif") for m, c in PILLOW_SEEDS]
            + [
                (tifffile_seed(k), ".tiff")
                for k in TIFFFILE_SEEDS
                if k not in ("planar", "float16", "float64", "pages")
            ]
        ),
        ("ctlens.io.image2d_reader",),
        short=30,
    ),
    "nifti": Reader(
        read_volume,
        nifti_bytes(),
        lambda: [(nifti_seed(), ".nii"), (nifti_seed("float32", (3, 2)), ".nii")],
        ("ctlens.io.nifti",),
        short=25,
    ),
    "nrrd_mha": Reader(
        read_volume,
        itk_bytes(),
        itk_seeds,
        ("ctlens.io.itk_image", "ctlens.io.detached_header"),
        short=15,
    ),
    "dicom": Reader(
        read_volume,
        dicom_bytes(),
        dicom_seeds,
        (
            "ctlens.io.dicom_reader",
            "ctlens.io.dicom_pixels",
            "ctlens.io.dicom_headers",
            "ctlens.io.dicom_series",
            "ctlens.io.dicom_parse",
            "ctlens.io.dicom_geometry",
        ),
        short=10,
    ),
    "zip": Reader(
        read_zip,
        zip_bytes(),
        lambda: [(zip_seed(), ".zip")],
        ("ctlens.io.archive", "ctlens.io.decompress_budget"),
        short=6,
    ),
    "h5": Reader(
        read_h5, h5_bytes(), lambda: [(h5_seed(), ".h5")], ("ctlens.data.ct_report", "ctlens.data.h5_volumes"), short=10
    ),
    "reports_csv": Reader(
        read_reports,
        reports_bytes(),
        lambda: [(reports_seed(), ".csv")],
        ("ctlens.data.ct_report",),
        short=10,
    ),
    "ct_rate_csv": Reader(
        read_ct_rate,
        metadata_bytes(),
        lambda: [(metadata_bundle(metadata_seed()), ".bundle")],
        ("ctlens.io.ct_rate",),
        short=12,
    ),
    "checkpoint": Reader(
        read_checkpoint,
        checkpoint_bytes(),
        lambda: [(checkpoint_seed(), ".bundle")],
        ("ctlens.models.clip3d.checkpoint", "ctlens.models.clip3d.config"),
        short=6,
    ),
    "service_form": Reader(
        post_form,
        form_bytes(),
        lambda: [(form_seed(), ".json")],
        ("ctlens.api.uploads", "ctlens.api.intake", "ctlens.api.routes.chat", "ctlens.api.routes.images"),
        short=8,
    ),
    "findings_json": Reader(
        read_findings,
        findings_bytes(),
        lambda: [(findings_seed(), ".json")],
        ("ctlens.analysis.findings",),
        short=20,
    ),
    "labels": Reader(
        read_labels,
        labels_bytes(),
        lambda: [(csv_seed(), ".csv"), (b'{"s1": "a;b", "s2": ["b"]}', ".json")],
        ("ctlens.data.labels",),
    ),
}
