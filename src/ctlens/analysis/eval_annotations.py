"""Reference lesions for the analysis evaluation (``ctlens analyze-eval``), on the display grid of a series.

Every source becomes :class:`Lesion` s in the index space of ``to_display(volume)``, the space in which
:func:`ctlens.analysis.analyze` reports candidates (``centre_voxel``, ``bbox``, ``slice_boxes``):

* **PASCAL VOC XML** boxes, one file per slice named ``<SOPInstanceUID>.xml`` (Lung-PET-CT-Dx); ``xmin``/``xmax``
  are pixel columns, ``ymin``/``ymax`` rows of that slice. Boxes of one label on slices at most
  ``MAX_GAP_SLICES`` apart that overlap in-plane are one lesion. Hit: the candidate centre lies in the lesion's
  3-D box (widened by half a voxel);
* a **mask** (NIfTI or any file ctlens reads): each 26-connected component of non-zero voxels is a lesion. The
  mask is mapped onto the series through both geometries (nearest neighbour), so it need not share the grid.
  Hit: the candidate centre voxel is in the component;
* a **CSV of world coordinates** like LUNA16's ``annotations.csv``: ``seriesuid, coordX, coordY, coordZ,
  diameter_mm`` (LPS millimetres, as in ITK / MetaImage files). A row belongs to a series when ``seriesuid`` is
  its SeriesInstanceUID or its file / folder name. Hit: the candidate centre is within the sphere (the LUNA16
  rule).

Example:
    >>> import numpy as np
    >>> from ctlens.core.volume import Volume
    >>> vol = Volume(np.zeros((10, 20, 20), np.int16), spacing=(2.0, 1.0, 1.0))
    >>> [les] = sphere_lesions(vol, [(10.0, 10.0, 10.0, 6.0)])
    >>> les.box, les.contains((5.0, 10.0, 12.0), (12.0, 10.0, 10.0))
    ((4, 7, 7, 6, 13, 13), True)
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy import ndimage

from ctlens.core.errors import CorruptFileError, InputNotFoundError
from ctlens.core.volume import Volume
from ctlens.io.annotations import read_voc_boxes
from ctlens.io.uid_hash import hash_uid
from ctlens.preprocess.display import to_display

__all__ = [
    "CSV_COLUMNS",
    "MAX_GAP_SLICES",
    "Lesion",
    "csv_rows_for_series",
    "mask_lesions",
    "read_coordinate_csv",
    "sphere_lesions",
    "voc_index",
    "voc_lesions",
]

MAX_GAP_SLICES = 2
"""Annotated boxes at most this many slices apart (and overlapping in-plane) belong to one lesion."""
CSV_COLUMNS = ("seriesuid", "coordX", "coordY", "coordZ", "diameter_mm")
"""Columns of a coordinate CSV (LUNA16's ``annotations.csv``); names are matched case-insensitively."""

Box3 = tuple[int, int, int, int, int, int]
Box2 = tuple[int, int, int, int]


@dataclass
class Lesion:
    """One reference lesion on the display grid: inclusive ``box`` ``(z0, y0, x0, z1, y1, x1)``, in-plane
    ``slice_boxes`` ``{z: (y0, x0, y1, x1)}``, LPS centre and a size; ``source`` is ``voc``, ``mask`` or ``csv``."""

    name: str
    source: str
    box: Box3
    slice_boxes: dict[int, Box2]
    centre_mm: tuple[float, float, float]
    diameter_mm: float
    radius_mm: float = 0.0
    labels: np.ndarray | None = field(default=None, repr=False)
    labels_offset: tuple[int, int, int] = (0, 0, 0)
    label: int = 0

    def contains(self, centre_voxel: Sequence[float], centre_mm: Sequence[float]) -> bool:
        """Whether a candidate centre (display index and LPS mm) hits this lesion (module doc)."""
        if self.source == "csv":
            return float(np.linalg.norm(np.subtract(centre_mm, self.centre_mm))) <= self.radius_mm
        if self.labels is not None:
            idx = np.round(np.asarray(centre_voxel, float)).astype(int) - np.asarray(self.labels_offset)
            if np.any(idx < 0) or np.any(idx >= self.labels.shape):
                return False
            return bool(self.labels[tuple(idx)] == self.label)
        lo, hi = np.asarray(self.box[:3], float) - 0.5, np.asarray(self.box[3:], float) + 0.5
        return bool(np.all(np.asarray(centre_voxel, float) >= lo) and np.all(np.asarray(centre_voxel, float) <= hi))


def _display_points(volume: Volume, disp: Volume, points: np.ndarray) -> np.ndarray:
    """Stored-grid indices -> display-grid indices (exact: flips and transposes only)."""
    return disp.index(volume.world(np.asarray(points, float)))


def voc_index(folder: str | Path) -> dict[str, Path]:
    """``{hashed SOPInstanceUID: xml path}`` of every ``*.xml`` below ``folder`` (hashed as the readers hash).

    Example:
        >>> import tempfile
        >>> voc_index(tempfile.mkdtemp())
        {}
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise InputNotFoundError("no such folder of PASCAL VOC annotations", path=folder.name)
    return {hash_uid(p.stem): p for p in sorted(folder.rglob("*.xml"))}


def _slice_indices(volume: Volume) -> dict[str, int]:
    """Hashed SOPInstanceUID -> stored slice index; after resampling, the nearest resampled slice."""
    meta = volume.meta or {}
    uids = meta.get("sop_uids") or []
    if uids:
        return {u: i for i, u in enumerate(uids)}
    source, src_pos, pos = (
        meta.get("source_sop_uids"),
        meta.get("source_slice_positions_mm"),
        meta.get("slice_positions_mm"),
    )
    if not source or not src_pos or not pos or len(source) != len(src_pos):
        return {}
    pos = np.asarray(pos, float)
    return {u: int(np.argmin(np.abs(pos - p))) for u, p in zip(source, src_pos, strict=True)}


def _group(boxes: list[tuple[str, int, Box2]], max_gap: int) -> list[list[int]]:
    """Union-find of (label, z, box) entries: same label, |dz| <= max_gap, overlapping in-plane."""
    parent = list(range(len(boxes)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i, (la, za, a) in enumerate(boxes):
        for j in range(i + 1, len(boxes)):
            lb, zb, b = boxes[j]
            overlap = a[0] <= b[2] and b[0] <= a[2] and a[1] <= b[3] and b[1] <= a[3]
            if la == lb and abs(za - zb) <= max_gap and overlap:
                parent[root(j)] = root(i)
    groups: dict[int, list[int]] = {}
    for i in range(len(boxes)):
        groups.setdefault(root(i), []).append(i)
    return sorted(groups.values(), key=lambda g: min(boxes[i][1] for i in g))


def _lesion_from_slices(name: str, source: str, disp: Volume, slices: dict[int, Box2]) -> Lesion:
    zs = sorted(slices)
    y0, x0 = min(b[0] for b in slices.values()), min(b[1] for b in slices.values())
    y1, x1 = max(b[2] for b in slices.values()), max(b[3] for b in slices.values())
    centre = disp.world(((zs[0] + zs[-1]) / 2, (y0 + y1) / 2, (x0 + x1) / 2))
    sz, sy, sx = disp.spacing
    size = max(max((b[2] - b[0] + 1) * sy, (b[3] - b[1] + 1) * sx) for b in slices.values())
    return Lesion(
        name=name,
        source=source,
        box=(zs[0], y0, x0, zs[-1], y1, x1),
        slice_boxes=dict(sorted(slices.items())),
        centre_mm=tuple(round(float(c), 2) for c in centre),  # type: ignore[arg-type]
        diameter_mm=round(float(size), 1),
    )


def voc_lesions(volume: Volume, index: dict[str, Path], max_gap: int = MAX_GAP_SLICES) -> list[Lesion]:
    """Lesions of ``volume`` from VOC files (``index`` from :func:`voc_index`); files of other series are ignored."""
    disp = to_display(volume)
    boxes: list[tuple[str, int, Box2]] = []
    for uid, k in _slice_indices(volume).items():
        if uid not in index:
            continue
        for label, xmin, ymin, xmax, ymax in read_voc_boxes(index[uid]):
            pts = np.round(_display_points(volume, disp, [[k, ymin, xmin], [k, ymax, xmax]])).astype(int)
            lo, hi = pts.min(axis=0), pts.max(axis=0)
            boxes.append((label, int(lo[0]), (int(lo[1]), int(lo[2]), int(hi[1]), int(hi[2]))))
    lesions = []
    for n, group in enumerate(_group(boxes, max_gap), start=1):
        slices: dict[int, Box2] = {}
        for i in group:
            _, z, b = boxes[i]
            old = slices.get(z, b)
            slices[z] = (min(old[0], b[0]), min(old[1], b[1]), max(old[2], b[2]), max(old[3], b[3]))
        label = boxes[group[0]][0] or "lesion"
        lesions.append(_lesion_from_slices(f"{label}#{n} ({len(slices)} annotated slices)", "voc", disp, slices))
    return lesions


def mask_lesions(mask: Volume, volume: Volume) -> list[Lesion]:
    """One lesion per 26-connected component of ``mask > 0``, mapped onto ``volume``'s display grid."""
    disp = to_display(volume)
    nz = np.nonzero(np.asarray(mask.array) != 0)
    if not nz[0].size:
        return []
    lo, hi = np.array([a.min() for a in nz]) - 0.5, np.array([a.max() for a in nz]) + 0.5
    corners = np.array(
        [[(lo, hi)[i][0], (lo, hi)[j][1], (lo, hi)[k][2]] for i in (0, 1) for j in (0, 1) for k in (0, 1)]
    )
    where = disp.index(mask.world(corners))
    start = np.clip(np.floor(where.min(axis=0)).astype(int), 0, np.asarray(disp.shape))
    stop = np.clip(np.ceil(where.max(axis=0)).astype(int) + 1, 0, np.asarray(disp.shape))
    if np.any(stop <= start):
        return []  # the mask lies outside the series
    to_mask = np.linalg.inv(mask.affine) @ disp.affine  # display index -> mask index
    offset = to_mask[:3, :3] @ start + to_mask[:3, 3]
    binary = (np.asarray(mask.array) != 0).astype(np.uint8)
    sub = ndimage.affine_transform(binary, to_mask[:3, :3], offset, output_shape=tuple(stop - start), order=0)
    labels, n = ndimage.label(sub, structure=np.ones((3, 3, 3), bool))
    voxel_ml = float(np.prod(disp.spacing)) / 1000.0
    lesions = []
    for i, sl in enumerate(ndimage.find_objects(labels), start=1):
        if sl is None:
            continue
        comp = labels[sl] == i
        slices = {}
        for dz in range(comp.shape[0]):
            ys, xs = np.nonzero(comp[dz])
            if ys.size:
                z = int(start[0] + sl[0].start + dz)
                y0, x0 = int(start[1] + sl[1].start), int(start[2] + sl[2].start)
                slices[z] = (y0 + int(ys.min()), x0 + int(xs.min()), y0 + int(ys.max()), x0 + int(xs.max()))
        les = _lesion_from_slices(f"component {i}", "mask", disp, slices)
        les.centre_mm = tuple(  # type: ignore[assignment]
            round(float(c), 2) for c in disp.world(np.add(ndimage.center_of_mass(labels == i), start))
        )
        les.diameter_mm = round(float((6.0 * comp.sum() * voxel_ml * 1000.0 / np.pi) ** (1 / 3)), 1)
        les.labels, les.labels_offset, les.label = labels, tuple(int(s) for s in start), i  # type: ignore[assignment]
        lesions.append(les)
    return lesions


def read_coordinate_csv(path: str | Path) -> dict[str, list[tuple[float, float, float, float]]]:
    """``{seriesuid: [(x, y, z, diameter_mm), ...]}`` of a LUNA16-style CSV (module doc); clear errors naming it.

    Example:
        >>> import tempfile, pathlib
        >>> p = pathlib.Path(tempfile.mkdtemp()) / "a.csv"
        >>> _ = p.write_text("seriesuid,coordX,coordY,coordZ,diameter_mm\\n1.2.3,-10,20.5,-100,8\\n")
        >>> read_coordinate_csv(p)
        {'1.2.3': [(-10.0, 20.5, -100.0, 8.0)]}
    """
    path = Path(path)
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            rows = list(csv.DictReader(fh))
            header = [h.strip() for h in (rows[0].keys() if rows else [])]
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise CorruptFileError(f"not a readable CSV ({exc.__class__.__name__})", path=path.name) from exc
    lower = {h.lower(): h for h in header}
    missing = [c for c in CSV_COLUMNS if c.lower() not in lower]
    if rows and missing:
        raise CorruptFileError(
            f"coordinate CSV lacks the columns {missing}", path=path.name, hint=f"needs {CSV_COLUMNS}"
        )
    out: dict[str, list[tuple[float, float, float, float]]] = {}
    for n, row in enumerate(rows, start=2):
        clean = {k.strip().lower(): (v or "").strip() for k, v in row.items() if k is not None}
        try:
            x, y, z, d = (float(clean[c.lower()]) for c in CSV_COLUMNS[1:])
        except ValueError:
            raise CorruptFileError(f"line {n}: coordinates and diameter must be numbers", path=path.name) from None
        if not all(np.isfinite((x, y, z, d))) or d <= 0:
            raise CorruptFileError(f"line {n}: non-finite coordinates or a diameter <= 0", path=path.name)
        out.setdefault(clean["seriesuid"], []).append((x, y, z, d))
    return out


def csv_rows_for_series(
    rows: dict[str, list[tuple[float, float, float, float]]], volume: Volume, names: Iterable[str]
) -> list[tuple[float, float, float, float]]:
    """The rows whose ``seriesuid`` is the series' SeriesInstanceUID (compared hashed) or one of its ``names``."""
    keys = set(names)
    series_uid = (volume.meta or {}).get("series_uid")
    return [r for uid, rs in rows.items() if uid in keys or (series_uid and hash_uid(uid) == series_uid) for r in rs]


def sphere_lesions(volume: Volume, rows: Sequence[tuple[float, float, float, float]]) -> list[Lesion]:
    """One spherical lesion per ``(x, y, z, diameter_mm)`` (LPS mm) on ``volume``'s display grid."""
    disp = to_display(volume)
    shape = np.asarray(disp.shape)
    normal = np.asarray(disp.direction, float)[:, 0]
    lesions = []
    for n, (x, y, z, d) in enumerate(rows, start=1):
        centre, r = np.array([x, y, z], float), d / 2.0
        c_idx = disp.index(centre)
        half = r / np.asarray(disp.spacing)
        lo = np.clip(np.ceil(c_idx - half - 1e-9), 0, shape - 1).astype(int)
        hi = np.clip(np.floor(c_idx + half + 1e-9), 0, shape - 1).astype(int)
        slices: dict[int, Box2] = {}
        for zi in range(lo[0], hi[0] + 1):
            dist = float(np.dot(disp.world((zi, c_idx[1], c_idx[2])) - centre, normal))
            rr = np.sqrt(max(r * r - dist * dist, 0.0))
            ys = np.clip(
                [np.ceil(c_idx[1] - rr / disp.spacing[1]), np.floor(c_idx[1] + rr / disp.spacing[1])], 0, shape[1] - 1
            )
            xs = np.clip(
                [np.ceil(c_idx[2] - rr / disp.spacing[2]), np.floor(c_idx[2] + rr / disp.spacing[2])], 0, shape[2] - 1
            )
            if ys[1] >= ys[0] and xs[1] >= xs[0]:
                slices[zi] = (int(ys[0]), int(xs[0]), int(ys[1]), int(xs[1]))
        lesions.append(
            Lesion(
                name=f"row {n} ({d:g} mm)",
                source="csv",
                box=(int(lo[0]), int(lo[1]), int(lo[2]), int(hi[0]), int(hi[1]), int(hi[2])),
                slice_boxes=slices,
                centre_mm=(float(x), float(y), float(z)),
                diameter_mm=float(d),
                radius_mm=r,
            )
        )
    return lesions
