"""``python -m ctlens.compat.ctclip.zero_shot``: zero-shot findings of one scan with a trained 3D CLIP, over
:func:`ctlens.pipelines.zero_shot.zero_shot` (what ``ctlens clip zero-shot`` runs).

Flags: ``--model_path`` (checkpoint folder) ``--ct_path`` (DICOM folder/zip, NIfTI, NRRD/MHA) ``--metadata_path``
(CT-RATE ``*_metadata.csv`` when the scan is a CT-RATE NIfTI of stored values) ``--ct_rate_axes``
``--findings`` (default: CT-RATE's 18) ``--ensemble``. Prints JSON ``{finding: probability}``: model output,
not a diagnosis.

Example:
    >>> parser().parse_args(["--model_path", "m", "--ct_path", "a.nii.gz"]).ct_rate_axes
    'yxz'
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path

from ctlens.compat.ctclip.args import run_script

__all__ = ["main", "parser"]


def parser() -> argparse.ArgumentParser:
    """The script's flags."""
    p = argparse.ArgumentParser(prog="zero_shot.py", description="Zero-shot findings of one CT (ctlens)")
    p.add_argument("--model_path", required=True, type=Path)
    p.add_argument("--ct_path", required=True, type=Path)
    p.add_argument("--metadata_path", type=Path, default=None, help="CT-RATE *_metadata.csv")
    p.add_argument("--ct_rate_axes", choices=("yxz", "xyz"), default="yxz")
    p.add_argument("--findings", nargs="*", default=None)
    p.add_argument("--ensemble", action="store_true")
    return p


def _main(argv: Sequence[str] | None) -> int:
    from ctlens.data.ct_report import CT_RATE_FINDINGS
    from ctlens.pipelines.embed import load_clip
    from ctlens.pipelines.zero_shot import zero_shot

    a = parser().parse_args(argv)
    model = load_clip(a.model_path)
    if a.metadata_path is not None:
        from ctlens.io.ct_rate import load_ct_rate

        volume = load_ct_rate(a.ct_path, a.metadata_path, axes=a.ct_rate_axes)
    else:
        from ctlens.io.loader import load

        volume = load(a.ct_path)
    probs = zero_shot(volume, findings=a.findings or list(CT_RATE_FINDINGS), model=model, ensemble=a.ensemble)
    print(json.dumps(probs, indent=1))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the script; 0 when the probabilities were printed."""
    return run_script(_main, argv)


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
