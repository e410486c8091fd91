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

from ctlens.core.errors import CorruptFileError, SeriesSelectionError
from ctlens.core.volume import Volume
from ctlens.io.uid_hash import hash_uid


def slice_index_for_sop(volume: Volume, sop_instance_uid: str) -> int:
    """Slice index ``z`` of the image whose (original) SOPInstanceUID is given.

    The volume stores only hashed UIDs; the given UID is hashed the same way.
    Raises :class:`SeriesSelectionError` when the image is not part of the volume.
    """
    uids = volume.meta.get("sop_uids") or []
    target = hash_uid(sop_instance_uid)
    try:
        return uids.index(target)
    except ValueError:
        raise SeriesSelectionError(
            f"SOPInstanceUID {sop_instance_uid} is not a slice of this volume",
            hint="the annotation may belong to another series (or the volume was resampled)",
        ) from None


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
