"""Series discovery: group image planes into series, drop scouts and duplicates, choose one.

Planes are grouped by SeriesInstanceUID and SeriesNumber, then within a series by orientation,
matrix size and pixel spacing (a series mixing them is split, as dcm2niix does). Where positions
repeat within such a block, it is split further into acquisitions, echoes, image types or time
points (:mod:`ctlens.io.series_split`): each part is its own entry, labelled (``acq 2``) and
selectable by index or by its key (``<series id>-acq2``), except stacks of one image repeated over
time or diffusion direction, which are the volumes of one entry (:mod:`ctlens.io.series_volumes`,
``SeriesInfo.n_volumes``). Files repeating another file's SOPInstanceUID are dropped (with a note).

Localizers and scouts are dropped (:func:`is_localizer`): ImageType ``LOCALIZER`` (and the like), a
description naming one, a lone plane orthogonal to a real stack, and a series whose few planes lie in
three orthogonal orientations (GE's 3-plane localizer, ImageType ``ORIGINAL\\PRIMARY\\OTHER``). A folder
holding nothing but localizers still lists them.

Example:
    >>> orientation_name(np.array([1, 0, 0, 0, 1, 0.0]))
    'axial'
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np
from pydicom.dataset import Dataset

from ctlens.core.errors import SeriesSelectionError
from ctlens.io.clean_descriptor import clean_descriptor
from ctlens.io.dicom_headers import SliceRef
from ctlens.io.dicom_parse import plain
from ctlens.io.series_split import drop_duplicates, split_repeats
from ctlens.io.series_volumes import group_volumes, volume_fields
from ctlens.io.uid_hash import hash_uid

_SCOUT_WORDS = ("LOCALIZER", "SCOUT", "TOPOGRAM", "SURVIEW")
"""ImageType values (parts of) that mark a localizer."""
_SCOUT_DESCRIPTION = re.compile(
    r"(?<![A-Z0-9])(LOCALI[SZ]ER|LOCALI[SZ]ERS|SCOUT|SCOUTS|TOPOGRAM|SURVIEW|SURVEY|3[ -]?PLANE|TRI[ -]?PILOT"
    r"|AAHEAD[ _]?SCOUT|PILOT|LOC|3PL[ _-]?LOC|PLAN[ _-]?SCAN)(?![A-Z0-9])"
)
"""Series description words that name a localizer (any case)."""
_FEW_PLANES = 16
"""A 3-plane localizer holds at most this many planes per orientation."""


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
    """The planes of the entry's first volume (the one read by default)."""
    part: str = ""
    """What tells this entry apart from others of its series (``acq 2``, ``echo 1``, ``series 3``); "" if whole."""
    part_key: str = ""
    """The same as a stable short key (``acq2``); "" if whole."""
    volumes: list[list[SliceRef]] = field(default_factory=list, repr=False)
    """The planes of each volume of a 4-D entry (time points, diffusion directions), in acquisition order; empty
    for a 3-D entry (whose one volume is ``refs``)."""
    volume_labels: list[str] = field(default_factory=list, repr=False)
    """What tells each volume apart (``time point 3``), as ``volumes``."""

    @property
    def n_volumes(self) -> int:
        """Volumes in this entry (1 for a 3-D series).

        Example:
            >>> SeriesInfo(0, "1.2.3", "s", "fMRI", "MR", "", 30, 64, 64, "axial", 30, "").n_volumes
            1
        """
        return max(1, len(self.volumes))

    def volume_refs(self, k: int) -> list[SliceRef]:
        """The planes of volume ``k`` (0-based)."""
        return self.volumes[k] if self.volumes else self.refs

    @property
    def series_id(self) -> str:
        """A short, non-identifying, stable key of the entry: a prefix of its hashed UID, then its part key if any.

        Example:
            >>> info = SeriesInfo(0, "1.2.3", "s", "Thorax", "CT", "B40f", 3, 8, 8, "axial", 3, "", part_key="acq2")
            >>> info.series_id == hash_uid("1.2.3")[5:17] + "-acq2"
            True
        """
        base = hash_uid(self.series_uid)[5:17]
        return f"{base}-{self.part_key}" if self.part_key else base

    @property
    def voxels(self) -> int:
        return self.n_slices * self.rows * self.columns

    def label(self) -> str:
        """One line naming the series for messages (its description cleaned of anything not allow-listed).

        Selection still matches the raw description in memory (:func:`select_series`).

        Example:
            >>> SeriesInfo(0, "1.2.3", "s", "Doe^Jane Thorax", "CT", "B40f", 3, 8, 8, "axial", 3, "").label()
            "#0 'Thorax' (CT, axial, 3 slices 8x8, kernel B40f)"
        """
        part = f" {self.part}" if self.part else ""
        description = clean_descriptor(self.description, extra_words=[self.kernel])
        volumes = f", {self.n_volumes} volumes" if self.n_volumes > 1 else ""
        return (
            f"#{self.index} '{description}'{part} ({self.modality}, {self.orientation}, {self.n_slices} slices "
            f"{self.rows}x{self.columns}, kernel {self.kernel or '-'}){volumes}"
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


def is_localizer(ref: SliceRef) -> bool:
    """Whether the plane's ImageType or SeriesDescription marks it as a localizer (scout, survey, 3-plane...).

    Example:
        >>> from pydicom.dataset import Dataset
        >>> ds = Dataset(); ds.SeriesDescription = "3-Plane Loc"
        >>> is_localizer(SliceRef(None, None, ds, np.zeros(3), np.array([1, 0, 0, 0, 1, 0.0]), (1, 1), 2, 2, 1, 0, ""))
        True
    """
    return _localizer(ref.value("ImageType"), ref.value("SeriesDescription"))


def is_localizer_header(ds: Dataset) -> bool:
    """:func:`is_localizer` for one header (the rule the reader and the DICOM results both apply).

    Example:
        >>> from pydicom.dataset import Dataset
        >>> ds = Dataset(); ds.ImageType = ["ORIGINAL", "PRIMARY", "LOCALIZER"]
        >>> is_localizer_header(ds), is_localizer_header(Dataset())
        (True, False)
    """
    return _localizer(plain(ds.get("ImageType")), plain(ds.get("SeriesDescription")))


def _localizer(image_type: object, description: object) -> bool:
    """The localizer rule on plain values (:func:`ctlens.io.dicom_parse.plain`)."""
    types = image_type if isinstance(image_type, tuple) else (image_type,) if image_type else ()
    if any(word in str(t).upper() for t in types for word in _SCOUT_WORDS):
        return True
    return bool(_SCOUT_DESCRIPTION.search(str(description or "").upper()))


def _three_plane(blocks: list[list[SliceRef]]) -> bool:
    """Whether the blocks of one series are a 3-plane localizer: few planes each, three orthogonal orientations."""
    if len(blocks) < 3 or any(len(b) > _FEW_PLANES for b in blocks):
        return False
    normals = [slice_normal(b[0].orientation) for b in blocks]
    return any(
        abs(float(a @ b)) < 0.5 and abs(float(a @ c)) < 0.5 and abs(float(b @ c)) < 0.5
        for i, a in enumerate(normals)
        for j, b in enumerate(normals[i + 1 :], i + 1)
        for c in normals[j + 1 :]
    )


def _text(ref: SliceRef, keyword: str) -> str:
    """The header's ``keyword`` as one line of text (several values joined by backslashes), "" if absent."""
    value = ref.value(keyword)
    if isinstance(value, tuple):
        return "\\".join(str(v) for v in value).strip()
    return str(value or "").strip()


def _blocks(refs: list[SliceRef], drop_scouts: bool = True) -> tuple[list[list[SliceRef]], int]:
    """Planes by (UID, SeriesNumber, orientation, matrix, pixel spacing); (blocks, scout planes dropped)."""
    groups: dict[tuple, list[SliceRef]] = defaultdict(list)
    dropped = 0
    if drop_scouts:
        kept = [ref for ref in refs if not is_localizer(ref)]
        dropped, refs = len(refs) - len(kept), kept
    # rounded once for all planes (the same numbers as rounding each plane's own)
    orientations = np.round(np.array([r.orientation for r in refs], dtype=np.float64).reshape(-1, 6), 3).tolist()
    spacings = np.round(np.array([r.pixel_spacing for r in refs], dtype=np.float64).reshape(-1, 2), 4).tolist()
    for ref, orientation, spacing in zip(refs, orientations, spacings, strict=True):
        key = (
            str(ref.value("SeriesInstanceUID") or ""),
            _text(ref, "SeriesNumber"),
            tuple(orientation),
            ref.rows,
            ref.columns,
            tuple(spacing),
        )
        groups[key].append(ref)
    if not drop_scouts:
        return list(groups.values()), 0
    by_series: dict[tuple, list[tuple]] = defaultdict(list)
    for key in groups:
        by_series[key[:2]].append(key)
    for keys in by_series.values():  # a 3-plane localizer (GE: ImageType ORIGINAL\PRIMARY\OTHER)
        if _three_plane([groups[k] for k in keys]):
            for k in keys:
                dropped += len(groups.pop(k))
    # A lone plane orthogonal to a real stack of the same study is a scout too.
    stacks = [g for g in groups.values() if len(g) > 1]
    for key, members in list(groups.items()):
        if len(members) == 1 and stacks:
            n = slice_normal(members[0].orientation)
            if all(abs(float(n @ slice_normal(s[0].orientation))) < 0.5 for s in stacks):
                dropped += 1
                del groups[key]
    return list(groups.values()), dropped


def _info(members: list[SliceRef], part: str, part_key: str) -> SeriesInfo:
    first = members[0]
    return SeriesInfo(
        index=0,
        series_uid=str(first.value("SeriesInstanceUID") or ""),
        study_id=hash_uid(str(first.value("StudyInstanceUID") or ""))[5:17],
        description=_text(first, "SeriesDescription"),
        modality=_text(first, "Modality") or "OT",
        kernel=_text(first, "ConvolutionKernel"),
        n_slices=len(members),
        rows=first.rows,
        columns=first.columns,
        orientation=orientation_name(first.orientation),
        n_files=len({m.file.path for m in members}),
        transfer_syntax=first.transfer_syntax,
        refs=members,
        part=part,
        part_key=part_key,
    )


def _unique_keys(infos: list[SeriesInfo]) -> None:
    """Name the parts of a UID split by SeriesNumber (``series 3``), and make every entry's key unique."""
    by_uid: dict[str, list[SeriesInfo]] = defaultdict(list)
    for info in infos:
        by_uid[info.series_uid].append(info)
    for members in by_uid.values():
        numbers = {_text(m.refs[0], "SeriesNumber") for m in members}
        if len(numbers) > 1:
            for m in members:
                number = _text(m.refs[0], "SeriesNumber") or "-"
                m.part = ", ".join(filter(None, [f"series {number}", m.part]))
                m.part_key = "-".join(filter(None, [f"sn{number if number != '-' else 'none'}", m.part_key]))
        seen: dict[str, int] = defaultdict(int)
        for m in members:  # blocks of another orientation or size: b2, b3, ... (the first keeps its key)
            seen[m.series_id] += 1
            if seen[m.series_id] > 1:
                m.part_key = "-".join(filter(None, [m.part_key, f"b{seen[m.series_id]}"]))


def group_series(refs: list[SliceRef]) -> tuple[list[SeriesInfo], list[str]]:
    """Group planes into series entries; return (entries sorted by size, notes on what was dropped).

    Example:
        >>> group_series([])
        ([], [])
    """
    refs, duplicates = drop_duplicates(refs)
    notes = []
    if duplicates:
        shown = ", ".join(duplicates[:5]) + (", ..." if len(duplicates) > 5 else "")
        notes.append(f"dropped {len(duplicates)} duplicated file(s) (same SOPInstanceUID as another file): {shown}")
    blocks, scouts = _blocks(refs)
    if scouts and not blocks:  # nothing but localizers: list them rather than nothing
        blocks, scouts = _blocks(refs, drop_scouts=False)
        notes.append("only localizer/scout images found: listing them")
    if scouts:
        notes.append(f"dropped {scouts} localizer/scout image(s)")
    infos = []
    order: dict[int, int] = {}
    for members in blocks:
        modality = _text(members[0], "Modality") or "OT"
        parts = split_repeats(members, instance_order=modality.upper() != "CT")
        for k, entry in enumerate(group_volumes(parts, modality)):
            info = _info(entry.volumes[0].refs, entry.label, entry.key)
            if len(entry.volumes) > 1:
                info.volumes = [v.refs for v in entry.volumes]
                info.volume_labels = entry.volume_labels(volume_fields(modality))
                info.n_files = len({r.file.path for v in info.volumes for r in v})
            order[id(info)] = k
            infos.append(info)
    _unique_keys(infos)
    infos.sort(key=lambda s: (-s.voxels, s.description, s.series_uid, order[id(s)], s.part_key))
    for i, info in enumerate(infos):
        info.index = i
    return infos, notes


def siblings(infos: list[SeriesInfo], info: SeriesInfo) -> list[SeriesInfo]:
    """The entries split from ``info``'s series where its positions repeat (acquisitions, echoes...), itself included.

    Example:
        >>> a = SeriesInfo(0, "1.2.3", "s", "Thorax", "CT", "B40f", 3, 8, 8, "axial", 3, "", part="acq 1")
        >>> [s.part for s in siblings([a], a)]
        ['acq 1']
    """
    if not info.part:
        return [info]
    return [s for s in infos if s.series_uid == info.series_uid and s.part and s.orientation == info.orientation]


def default_series(infos: list[SeriesInfo]) -> tuple[SeriesInfo, str]:
    """The largest axial CT series (else the largest series), with the reason for the choice.

    Among entries of one size the first listed wins (the lowest acquisition, echo or time point of a split
    series); the reason then says which other parts there are and how to pick one.
    """
    axial_ct = [s for s in infos if s.modality == "CT" and s.orientation == "axial" and s.n_slices > 1]
    pool = axial_ct or infos
    chosen = max(pool, key=lambda s: s.voxels)
    why = "largest axial CT series" if axial_ct else "largest series (no axial CT series found)"
    if len(infos) == 1:
        why = "the only series"
    return chosen, f"picked {chosen.label()}: {why} of {len(infos)}" + split_note(infos, chosen, implicit=True)


IMPLICIT_PART = "the largest (else the first) of its parts"
"""In a selection's reason when a split series' part was chosen for the caller (who then gets a warning)."""


def _natural(text: str) -> list:
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", text)]


def split_note(infos: list[SeriesInfo], chosen: SeriesInfo, implicit: bool = False) -> str:
    """``"; its series holds 3 parts at overlapping positions ..."`` when ``chosen`` is one part of a split series.

    ``implicit``: the part was chosen for the caller (default or a selector matching every part); the note then
    says so (:data:`IMPLICIT_PART`) and how to pick the others.

    Example:
        >>> a = SeriesInfo(0, "1.2.3", "s", "Thorax", "CT", "B40f", 3, 8, 8, "axial", 3, "", part="acq 1")
        >>> split_note([a], a)
        ''
    """
    parts = sorted(siblings(infos, chosen), key=lambda s: _natural(s.part))
    if len(parts) < 2:
        return ""
    note = f"; its series holds {len(parts)} parts at overlapping positions ({', '.join(s.part for s in parts)})"
    if not implicit:
        return note
    others = "; ".join(f"#{s.index} {s.part} (series={s.series_id!r})" for s in parts if s is not chosen)
    return f"{note}: read {chosen.part}, {IMPLICIT_PART}; to read another, pass {others}"


def select_series(infos: list[SeriesInfo], selector: int | str | None, source: str) -> tuple[SeriesInfo, str]:
    """Choose one series by SeriesInstanceUID, index, description or kernel, with the reason for the choice.

    One rule for every caller (``ctlens --series`` passes its text unchanged): an ``int`` is an index. A string
    is tried, in order, as a SeriesInstanceUID or series key (exact), as an index when it is all digits and
    a series has that index (as ``ctlens info`` numbers them), as part of the description (any case), as
    the kernel (exact, any case), and as a part's label (``"acq 2"``, any case). So ``"1"`` is the second series
    even if a description contains a 1, and a digit string with no series of that index (``"123456"``) is matched
    as text. Several matches at one step are an error that lists them, except a SeriesInstanceUID whose series
    was split into parts (acquisitions, echoes...): it picks among them as the default does, and says so.

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
            return infos[selector], f"picked {infos[selector].label()} by index" + split_note(infos, infos[selector])
    else:
        text = str(selector).strip()
        by_key = [s for s in infos if text == s.series_id]
        exact = [s for s in infos if text in (s.series_uid, hash_uid(s.series_uid)[5:17])]
        by_index = [infos[int(text)]] if text.isdigit() and int(text) < len(infos) else []
        described = [s for s in infos if text.lower() in s.description.lower()]
        kernel = [s for s in infos if text.lower() == s.kernel.lower()]
        part = [s for s in infos if s.part and text.lower() == s.part.lower()]
        steps = (
            (by_key, "key"),
            (exact, "UID"),
            (by_index, "index"),
            (described, "description"),
            (kernel, "kernel"),
            (part, "part"),
        )
        for matches, how in steps:
            implicit = len(matches) > 1 and all(s.part for s in matches) and len({s.series_uid for s in matches}) == 1
            if implicit:
                matches = [default_series(matches)[0]]  # the parts of one split series: the default one, explained
            if len(matches) == 1:
                return matches[0], f"picked {matches[0].label()} by {how}" + split_note(infos, matches[0], implicit)
            if len(matches) > 1:
                raise SeriesSelectionError(
                    f"series selector {selector!r} matches {len(matches)} series: "
                    + "; ".join(f"{s.label()} [series={s.series_id!r}]" if s.part else s.label() for s in matches),
                    path=source,
                    hint="use the index shown by `ctlens info`",
                )
    raise SeriesSelectionError(
        f"no series matches {selector!r}; available: " + "; ".join(s.label() for s in infos),
        path=source,
        hint="pass an index, a SeriesInstanceUID or part of the description",
    )
