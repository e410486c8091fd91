"""Overlay montage PNG of :class:`~ctlens.analysis.findings.Findings`: ROI contours, candidate boxes, heatmap.

Each tile is one slice in a display window (lung for chest, brain for head, min-max otherwise), with the
heatmap blended in red/yellow (alpha proportional to the value), the ROI outline in green and each
candidate's in-plane box in yellow with its rank. Slices: those through the top candidates first, then
slices spread over the ROI. Array row 0 is at the top, column 0 on the left (radiological view for an
LPS-ordered DICOM array: the patient's right on the image's left).

Example:
    >>> import tempfile, pathlib
    >>> from ctlens.analysis import analyze, chest_phantom
    >>> vol, _ = chest_phantom(nodule_radius_mm=9.0)
    >>> out = render_overlay(vol, analyze(vol), pathlib.Path(tempfile.mkdtemp()) / "o.png")
    >>> out.suffix
    '.png'
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw
from scipy import ndimage

from ctlens.analysis.findings import Findings
from ctlens.core.volume import Volume
from ctlens.preprocess.windows import to_display_uint8, window_limits

__all__ = ["render_overlay"]

_REGION_WINDOWS = {"chest": "lung", "head": "brain"}
"""CT window (name in :data:`~ctlens.preprocess.windows.WINDOWS`) per body region; others: soft_tissue."""


def _gray(slice_: np.ndarray, region: str, is_ct: bool) -> np.ndarray:
    a = slice_.astype(np.float32)
    if is_ct:
        return to_display_uint8(a, *window_limits(_REGION_WINDOWS.get(region, "soft_tissue")))
    finite = a[np.isfinite(a)]
    lo, hi = np.percentile(finite, [1, 99]) if finite.size else (0.0, 0.0)
    return to_display_uint8(a, float(lo), float(hi))


def _pick_slices(findings: Findings, nz: int, n: int) -> list[int]:
    picked: list[int] = []
    for c in findings.candidates:
        z = int(round(c.centre_voxel[0]))
        if 0 <= z < nz and z not in picked:
            picked.append(z)
        if len(picked) >= n // 2:
            break
    pool = np.arange(nz)
    if findings.roi_mask is not None and findings.roi_mask.shape[0] == nz and findings.roi_mask.any():
        pool = np.flatnonzero(findings.roi_mask.any(axis=(1, 2)))
    for z in pool[np.linspace(0, len(pool) - 1, max(1, n)).round().astype(int)]:
        if len(picked) >= n:
            break
        if int(z) not in picked:
            picked.append(int(z))
    return sorted(picked)


def render_overlay(
    volume: Volume | np.ndarray, findings: Findings, path: str | Path, *, n_slices: int = 8, tile: int = 256
) -> Path:
    """Write the overlay montage PNG to ``path`` (atomically) and return the path."""
    from ctlens.io.files import atomic_output

    arr = volume.array if isinstance(volume, Volume) else np.asarray(volume)
    if arr.ndim == 2:
        arr = arr[None]
    is_ct = isinstance(volume, Volume) and volume.modality == "CT" and findings.region != "image2d"
    nz = arr.shape[0]
    slices = _pick_slices(findings, nz, min(n_slices, nz))
    tiles = []
    for z in slices:
        g = _gray(arr[z], findings.region, is_ct)
        rgb = np.stack([g] * 3, axis=-1).astype(np.float32)
        if findings.heatmap is not None and findings.heatmap.shape == arr.shape:
            h = np.clip(findings.heatmap[z], 0, 1)[..., None]
            colour = np.concatenate([np.ones_like(h), h, np.zeros_like(h)], axis=-1) * 255
            alpha = 0.6 * h
            rgb = rgb * (1 - alpha) + colour * alpha
        if findings.roi_mask is not None and findings.roi_mask.shape == arr.shape:
            m = findings.roi_mask[z]
            rgb[m & ~ndimage.binary_erosion(m, iterations=max(1, arr.shape[1] // 256))] = (0, 220, 0)
        img = Image.fromarray(rgb.clip(0, 255).astype(np.uint8))
        draw = ImageDraw.Draw(img)
        width = max(1, arr.shape[1] // 200)
        for rank, c in enumerate(findings.candidates, start=1):
            box = c.slice_boxes.get(z)
            if box is None and c.slice_range[0] <= z <= c.slice_range[1]:
                box = (c.bbox[1], c.bbox[2], c.bbox[4], c.bbox[5])
            if box is None:
                continue
            y0, x0, y1, x1 = box
            draw.rectangle([x0 - 2, y0 - 2, x1 + 2, y1 + 2], outline=(255, 255, 0), width=width)
            draw.text((x0, max(0, y0 - 14)), f"{rank}:{c.score:.2f}", fill=(255, 255, 0))
        scale = tile / max(img.size)
        img = img.resize((max(1, round(img.width * scale)), max(1, round(img.height * scale))))
        ImageDraw.Draw(img).text((3, 3), f"z={z}", fill=(0, 255, 255))
        tiles.append(img)
    cols = min(4, len(tiles))
    rows = -(-len(tiles) // cols)
    w = max(t.width for t in tiles)
    h = max(t.height for t in tiles)
    sheet = Image.new("RGB", (cols * w, rows * h + 16))
    for i, t in enumerate(tiles):
        sheet.paste(t, ((i % cols) * w, (i // cols) * h + 16))
    ImageDraw.Draw(sheet).text(
        (3, 2),
        f"{findings.region}: {len(findings.candidates)} candidate(s); yellow boxes, green ROI",
        fill=(255, 255, 255),
    )
    path = Path(path)
    with atomic_output(path) as tmp:
        sheet.save(tmp, format="PNG", optimize=True)
    return path
