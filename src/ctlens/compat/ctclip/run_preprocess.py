"""``python -m ctlens.compat.ctclip.run_preprocess``: seed 003's preprocessing flags over
:func:`ctlens.cache.hdf5_export.export_hdf5`.

``--ct_data_path`` (folder of volumes) ``--ct_out_path`` (HDF5) ``--metadata_path`` (CT-RATE ``*_metadata.csv``:
rescale and geometry are applied to each NIfTI) ``--target_shape D H W`` ``--num_workers`` ``--slide_b2u``
(slice 0 = lowest). ctlens additions: ``--ct_rate_axes yxz|xyz`` (NIfTI array layout, :mod:`ctlens.io.ct_rate`),
``--hu_min/--hu_max``, ``--export_metadata`` (CSV of what was written and why a volume failed).

Example:
    >>> parser().prog
    'run_preprocess.py'
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from ctlens.compat.ctclip.args import run_script, str2bool

__all__ = ["main", "parser"]


def parser() -> argparse.ArgumentParser:
    """The seed's flags (and ctlens's few additions)."""
    p = argparse.ArgumentParser(prog="run_preprocess.py", description="CT volumes -> one HDF5 file (ctlens)")
    p.add_argument("--ct_data_path", required=True, type=Path, help="folder of CT volumes (NIfTI, DICOM folders)")
    p.add_argument("--ct_out_path", required=True, type=Path, help="HDF5 file to write")
    p.add_argument("--metadata_path", type=Path, default=None, help="CT-RATE *_metadata.csv (rescale, geometry)")
    p.add_argument("--target_shape", type=int, nargs=3, default=[160, 224, 224], metavar=("D", "H", "W"))
    p.add_argument("--num_workers", type=int, default=4)
    p.add_argument("--slide_b2u", type=str2bool, nargs="?", const=True, default=True, help="slice 0 lowest")
    p.add_argument("--ct_rate_axes", choices=("yxz", "xyz"), default="yxz", help="NIfTI array layout (ctlens)")
    p.add_argument("--hu_min", type=float, default=-1000.0)
    p.add_argument("--hu_max", type=float, default=1000.0)
    p.add_argument("--export_metadata", type=Path, default=None, help="CSV of exported volumes (ctlens)")
    return p


def _main(argv: Sequence[str] | None) -> int:
    from ctlens.cache.hdf5_export import export_hdf5

    a = parser().parse_args(argv)
    report = export_hdf5(
        a.ct_data_path,
        a.ct_out_path,
        metadata_csv=a.export_metadata,
        target_shape=tuple(a.target_shape),
        num_workers=a.num_workers,
        slice_order="b2u" if a.slide_b2u else "u2b",
        hu_clip=(a.hu_min, a.hu_max),
        progress=False,
        ct_rate_metadata=a.metadata_path,
        ct_rate_axes=a.ct_rate_axes,
    )
    print(f"wrote {a.ct_out_path}: {len(report.written)} volume(s) of {tuple(a.target_shape)} uint8")
    for name, source, reason in report.failures:
        print(f"not exported: {source or name}: {reason}")
    return 0 if report.written else 1


def main(argv: Sequence[str] | None = None) -> int:
    """Run the script; 0 when at least one volume was written."""
    return run_script(_main, argv)


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
