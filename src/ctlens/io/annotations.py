"""Map per-slice annotations (keyed by SOPInstanceUID) onto a loaded Volume.

Example:
    >>> from ctlens.core.volume import Volume
    >>> import numpy as np
    >>> from ctlens.io.uid_hash import hash_uid
    >>> v = Volume(np.zeros((2, 4, 4)), meta={"sop_uids": [hash_uid("1.2.3"), hash_uid("1.2.4")]})
    >>> slice_index_for_sop(v, "1.2.4")
    1
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ctlens.core.errors import CorruptFileError, SeriesSelectionError
from ctlens.core.volume import Volume
from ctlens.io.uid_hash import hash_uid


def slice_index_for_sop(volume: Volume, sop_instance_uid: str) -> int:
    """Slice index ``z`` of the image whose (original) SOPInstanceUID is given.

    The volume stores only hashed UIDs; the given UID is hashed the same way. A volume resampled onto an even grid
    (``meta["sop_uids"]`` empty) maps the image through ``source_sop_uids`` and ``source_slice_positions_mm`` to the
    grid slice nearest its position. Raises :class:`SeriesSelectionError` when the image is not part of the volume.

    Example:
        >>> import numpy as np
        >>> vol = Volume(np.zeros((3, 2, 2), np.int16), spacing=(2.0, 1.0, 1.0),
        ...              meta={"sop_uids": [], "source_sop_uids": [hash_uid("1.2"), hash_uid("1.3")],
        ...                    "source_slice_positions_mm": [0.0, 3.1]})
        >>> slice_index_for_sop(vol, "1.3")
        2
    """
    uids = volume.meta.get("sop_uids") or []
    target = hash_uid(sop_instance_uid)
    if target in uids:
        return uids.index(target)
    source = volume.meta.get("source_sop_uids") or []
    positions = volume.meta.get("source_slice_positions_mm") or []
    if not uids and target in source and len(positions) == len(source):
        z = float(positions[source.index(target)])
        return int(np.clip(round(z / float(volume.spacing[0])), 0, volume.shape[0] - 1))
    raise SeriesSelectionError(
        f"SOPInstanceUID {sop_instance_uid} is not a slice of this volume",
        hint="the annotation may belong to another series (or the volume was resampled)",
    )


@dataclass(frozen=True)
class BoxAnnotation:
    """An in-plane box on one slice: ``x`` = column, ``y`` = row, inclusive pixel bounds."""

    slice_index: int
    label: str
    xmin: int
    ymin: int
    xmax: int
    ymax: int
    source: str


def read_voc_boxes(xml_path: str | Path) -> list[tuple[str, int, int, int, int]]:
    """``(label, xmin, ymin, xmax, ymax)`` for each object of a PASCAL VOC XML file."""
    try:
        root = ET.parse(xml_path).getroot()
    except (ET.ParseError, OSError) as exc:
        raise CorruptFileError(f"not a readable PASCAL VOC XML file ({exc})", path=xml_path) from exc
    boxes = []
    for obj in root.iter("object"):
        box = obj.find("bndbox")
        if box is None:
            continue
        coords = [int(float(box.findtext(k, "0"))) for k in ("xmin", "ymin", "xmax", "ymax")]
        boxes.append((obj.findtext("name", "").strip(), *coords))
    return boxes


def voc_annotations_for_volume(volume: Volume, folder: str | Path) -> list[BoxAnnotation]:
    """Boxes from a folder of VOC XML files named ``<SOPInstanceUID>.xml`` that belong to ``volume``.

    Files for images of other series are ignored.
    """
    out = []
    for xml in sorted(Path(folder).glob("*.xml")):
        try:
            k = slice_index_for_sop(volume, xml.stem)
        except SeriesSelectionError:
            continue
        out.extend(BoxAnnotation(k, label, *coords, source=xml.name) for label, *coords in read_voc_boxes(xml))
    return sorted(out, key=lambda b: b.slice_index)
