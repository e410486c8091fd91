"""Image tokens of LLM payloads: the naive payload vs ctlens payloads, per provider, on the shared DICOM series.

Peer: the naive payload, every slice sent as its own image at the series' matrix size (512 x 512), costed
with the same rules (:mod:`ctlens.llm.token_costs`). ctlens payloads are built with :func:`ctlens.llm.build_payload`
at budgets of 2000, 6000 and 15000 tokens; their estimate includes the text (an upper bound). Compression
cannot change any of these numbers: providers bill pixels, not bytes.

Usage:
    python benchmarks/bench_tokens.py [--data ../shared/data]

``token_table(data_dir)`` returns the same table as markdown (used by ``bench_codec.py``).
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import ctlens
from ctlens.io.dicom_headers import dicom_folders
from ctlens.llm.payload import DEFAULT_MODELS, build_payload
from ctlens.llm.token_costs import image_tokens

BUDGETS = (2000, 6000, 15000)
PROVIDERS = (
    ("anthropic", DEFAULT_MODELS["anthropic"]),
    ("anthropic", "claude-opus-4-7"),
    ("openai", "gpt-4o"),
    ("openai", "gpt-5.4"),
    ("gemini", DEFAULT_MODELS["gemini"]),
    ("gemini", "gemini-2.5-flash"),
)


def _load(folder: Path) -> ctlens.Volume:
    return ctlens.load(folder, uneven="resample")  # the GE head CT has uneven slice spacing


def token_table(data_dir: str | Path | None = None) -> str:
    """Markdown table: per series and provider/model, the naive payload's tokens; ctlens tokens (slices shown,
    smallest px per voxel) at each budget (two windows); and ctlens sending the naive payload's content (every
    slice, lung window, 1.0 px per voxel) with the ratio naive / ctlens for that same content."""
    data = Path(data_dir or os.environ.get("CTLENS_DATA_DIR") or Path(__file__).resolve().parents[2] / "shared/data")
    head = ["series", "slices", "provider / model", "naive tokens"]
    head += [f"ctlens @{b} (slices, px/voxel)" for b in BUDGETS]
    head += ["ctlens, naive's content", "naive / ctlens (same content)"]
    rows = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    for folder in dicom_folders(data):
        vol = _load(folder)
        nz, ny, nx = vol.shape
        name = str(folder.relative_to(data))
        for provider, model in PROVIDERS:
            naive = nz * image_tokens(nx, ny, provider, model)
            cells = [name, str(nz), f"{provider} / {model}", f"{naive:,}"]
            for budget in BUDGETS:
                try:
                    p = build_payload(vol, "Describe the findings.", provider, model, budget, progress=False)
                except ctlens.CTLensError:
                    cells.append("does not fit")
                    continue
                tiles = [t for im in p.images for t in im.tiles if t.kind == "montage"]
                shown = len({t.slice_index for t in tiles})
                scale = min(t.scale for t in tiles)
                cells.append(f"{p.token_estimate:,} ({shown}, {scale:.2f})")
            # The naive payload's content -- every slice, one window, native resolution -- as ctlens sends it:
            # cropped to the body and packed on the provider's cost steps (text included).
            same = build_payload(
                vol, "Describe the findings.", provider, model, 10**6, windows=("lung",), crops=False,
                min_scale=1.0, progress=False,
            )  # fmt: skip
            cells += [f"{same.token_estimate:,}", f"{naive / same.token_estimate:.2f}x"]
            rows.append("| " + " | ".join(cells) + " |")
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=None)
    args = parser.parse_args()
    print(token_table(args.data))


if __name__ == "__main__":
    main()
