"""Series discovery: group image planes into series, drop scouts, choose one.

Planes are grouped by SeriesInstanceUID, then within a series by orientation,
matrix size and pixel spacing (a series mixing them is split, as dcm2niix does).
Localizers and scouts are dropped.

Example:
    >>> orientation_name(np.array([1, 0, 0, 0, 1, 0.0]))
    'axial'
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np

from ctlens.core.errors import SeriesSelectionError
from ctlens.io.dicom_headers import SliceRef
from ctlens.io.uid_hash import hash_uid

_SCOUT_WORDS = ("LOCALIZER", "SCOUT", "TOPOGRAM", "SURVIEW")


@dataclass
class SeriesInfo:
    """One series (or one orientation/size block of a series) found in the input."""

    index: int
    series_uid: str
    study_id: str
    description: str
    modality: str
    kernel: str
    n_slices: int
    rows: int
    columns: int
    orientation: str
    n_files: int
    transfer_syntax: str
    refs: list[SliceRef] = field(default_factory=list, repr=False)

    @property
    def series_id(self) -> str:
        """A short, non-identifying id of the series (a prefix of its hashed UID)."""
        return hash_uid(self.series_uid)[5:17]

    @property
    def voxels(self) -> int:
        return self.n_slices * self.rows * self.columns

    def label(self) -> str:
        """One line naming the series for messages."""
        return (
            f"#{self.index} '{self.description}' ({self.modality}, {self.orientation}, {self.n_slices} slices "
            f"{self.rows}x{self.columns}, kernel {self.kernel or '-'})"
        )


def slice_normal(iop: np.ndarray) -> np.ndarray:
    """Unit normal (row cosine x column cosine) of an ImageOrientationPatient."""
    n = np.cross(iop[:3], iop[3:])
    return n / np.linalg.norm(n)


def orientation_name(iop: np.ndarray) -> str:
    """'axial', 'coronal', 'sagittal' or 'oblique' from the slice normal's dominant LPS axis."""
    n = np.abs(slice_normal(iop))
    axis = int(np.argmax(n))
    if n[axis] < 0.8:
        return "oblique"
    return ("sagittal", "coronal", "axial")[axis]


def _is_scout(ref: SliceRef) -> bool:
    image_type = [str(v).upper() for v in (ref.header.get("ImageType") or [])]
    return any(word in t for t in image_type for word in _SCOUT_WORDS)


def _text(ref: SliceRef, keyword: str) -> str:
    value = ref.header.get(keyword, "")
    if isinstance(value, list | tuple) or hasattr(value, "__iter__") and not isinstance(value, str):
        value = "\\".join(str(v) for v in value)
    return str(value or "").strip()


def group_series(refs: list[SliceRef]) -> tuple[list[SeriesInfo], int]:
    """Group planes into series; return (series sorted by size, number of scout planes dropped)."""
    groups: dict[tuple, list[SliceRef]] = defaultdict(list)
    dropped = 0
    for ref in refs:
        if _is_scout(ref):
            dropped += 1
            continue
        key = (
            str(ref.header.get("SeriesInstanceUID", "")),
            tuple(np.round(ref.orientation, 3)),
            ref.rows,
            ref.columns,
            tuple(np.round(ref.pixel_spacing, 4)),
        )
        groups[key].append(ref)
    # A lone plane orthogonal to a real stack of the same study is a scout too.
    stacks = [g for g in groups.values() if len(g) > 1]
    for key, members in list(groups.items()):
        if len(members) == 1 and stacks:
            n = slice_normal(members[0].orientation)
            if all(abs(float(n @ slice_normal(s[0].orientation))) < 0.5 for s in stacks):
                dropped += 1
                del groups[key]
    infos = []
    for members in groups.values():
        first = members[0]
        infos.append(
            SeriesInfo(
                index=0,
                series_uid=str(first.header.get("SeriesInstanceUID", "")),
                study_id=hash_uid(str(first.header.get("StudyInstanceUID", "")))[5:17],
                description=_text(first, "SeriesDescription"),
                modality=_text(first, "Modality") or "OT",
                kernel=_text(first, "ConvolutionKernel"),
                n_slices=len(members),
                rows=first.rows,
                columns=first.columns,
                orientation=orientation_name(first.orientation),
                n_files=len({m.file.path for m in members}),
                transfer_syntax=str(getattr(first.header, "file_meta", {}).get("TransferSyntaxUID", "")),
                refs=members,
            )
        )
    infos.sort(key=lambda s: (-s.voxels, s.description, s.series_uid))
    for i, info in enumerate(infos):
        info.index = i
    return infos, dropped


def default_series(infos: list[SeriesInfo]) -> tuple[SeriesInfo, str]:
    """The largest axial CT series (else the largest series), with the reason for the choice."""
    axial_ct = [s for s in infos if s.modality == "CT" and s.orientation == "axial" and s.n_slices > 1]
    pool = axial_ct or infos
    chosen = max(pool, key=lambda s: s.voxels)
    why = "largest axial CT series" if axial_ct else "largest series (no axial CT series found)"
    if len(infos) == 1:
        why = "the only series"
    return chosen, f"picked {chosen.label()}: {why} of {len(infos)}"


def select_series(infos: list[SeriesInfo], selector: int | str | None, source: str) -> tuple[SeriesInfo, str]:
    """Choose one series by SeriesInstanceUID, index, description or kernel, with the reason for the choice.

    One rule for every caller (``ctlens --series`` passes its text unchanged): an ``int`` is an index. A string
    is tried, in order, as a SeriesInstanceUID or short series id (exact), as an index when it is all digits and
    a series has that index (as ``ctlens info`` numbers them), as part of the description (any case), and as
    the kernel (exact, any case). So ``"1"`` is the second series even if a description contains a 1, and a
    digit string with no series of that index (``"123456"``) is matched as text. Several matches at one step
    are an error that lists them.

    Example:
        >>> a = SeriesInfo(0, "1.2.3", "s", "Thorax 1.0 B40f", "CT", "B40f", 30, 512, 512, "axial", 30, "")
        >>> b = SeriesInfo(1, "1.2.4", "s", "Thorax 1.0 B70f", "CT", "B70f", 30, 512, 512, "axial", 30, "")
        >>> [select_series([a, b], sel, "x")[0].kernel for sel in ("1", 0, "1.2.4", "b70", "B40F")]
        ['B70f', 'B40f', 'B70f', 'B70f', 'B40f']
        >>> select_series([a, b], "1.0", "x")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        ctlens.core.errors.SeriesSelectionError: x: series selector '1.0' matches 2 series: #0 ... #1 ...
    """
    if not infos:
        raise SeriesSelectionError("no image series found", path=source)
    if selector is None:
        return default_series(infos)
    if isinstance(selector, int):
        if 0 <= selector < len(infos):
            return infos[selector], f"picked {infos[selector].label()} by index"
    else:
        text = str(selector).strip()
        exact = [s for s in infos if text in (s.series_uid, s.series_id)]
        by_index = [infos[int(text)]] if text.isdigit() and int(text) < len(infos) else []
        described = [s for s in infos if text.lower() in s.description.lower()]
        kernel = [s for s in infos if text.lower() == s.kernel.lower()]
        steps = ((exact, "UID"), (by_index, "index"), (described, "description"), (kernel, "kernel"))
        for matches, how in steps:
            if len(matches) == 1:
                return matches[0], f"picked {matches[0].label()} by {how}"
            if len(matches) > 1:
                raise SeriesSelectionError(
                    f"series selector {selector!r} matches {len(matches)} series: "
                    + "; ".join(s.label() for s in matches),
                    path=source,
                    hint="use the index shown by `ctlens info`",
                )
    raise SeriesSelectionError(
        f"no series matches {selector!r}; available: " + "; ".join(s.label() for s in infos),
        path=source,
        hint="pass an index, a SeriesInstanceUID or part of the description",
    )
