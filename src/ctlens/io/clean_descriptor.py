"""PS3.15 "Clean Descriptors" for free text: keep only anatomical and technical words, drop everything else.

DICOM PS3.15 Annex E (Table E.1-1, column "Clean Desc. Opt.") lets a de-identifier keep descriptors such as
``SeriesDescription``, ``ProtocolName`` or comments *if* identifying information is removed from them. Sites put
names, dates, accession numbers and free notes in these fields, so cleaning here is an allow-list, not a block
list: :func:`clean_descriptor` keeps a word only when it is a known anatomical or technical word
(:data:`DESCRIPTOR_WORDS`), a slice thickness / tube voltage (``1.25MM``, ``5 mm``, ``120KV``), a decimal
below ten (``0.625``), or one of the caller's ``extra_words`` (the series' own reconstruction kernel). Anything else,
including every number that could be a date or an identifier, is removed; a descriptor with nothing left is ``""``.

Example:
    >>> clean_descriptor("Thorax 1.0 B70f DOE^JOHN 20240102 ACC12345", extra_words=["B70f"])
    'Thorax 1.0 B70f'
    >>> clean_descriptor("CT CHEST W/CONTRAST 5 mm arterial phase")
    'CT CHEST W CONTRAST 5 mm arterial phase'
    >>> clean_descriptor("Jane Smith"), clean_descriptor(None)
    ('', '')
"""

from __future__ import annotations

import re
from collections.abc import Iterable

__all__ = ["DESCRIPTOR_WORDS", "clean_descriptor"]

_ANATOMY = """
HEAD BRAIN SKULL NECK FACE FACIAL SINUS SINUSES ORBIT ORBITS TEMPORAL PETROUS MAXILLOFACIAL DENTAL
CHEST THORAX THORACIC LUNG LUNGS PULMONARY HEART CARDIAC CORONARY CORONARIES AORTA AORTIC MEDIASTINUM MEDIASTINAL
ABDOMEN ABDOMINAL ABD PELVIS PELVIC LIVER HEPATIC PANCREAS KIDNEY KIDNEYS RENAL ADRENAL BLADDER SPLEEN BOWEL COLON
SPINE SPINAL CERVICAL LUMBAR SACRUM CSPINE TSPINE LSPINE EXTREMITY EXTREMITIES UPPER LOWER ARM LEG KNEE HIP
SHOULDER WRIST ANKLE FOOT HAND ELBOW BONE BONES SOFT TISSUE VESSELS VASCULAR WHOLE BODY WB TRUNK CAP NCAP
"""
_TECHNIQUE = """
CT MR MRI PET SPECT CTA CTPA ANGIO ANGIOGRAPHY PERFUSION VENOGRAPHY COLONOGRAPHY CALCIUM SCORE SCORING
AXIAL AX AXI TRANSVERSE TRA CORONAL COR SAGITTAL SAG OBLIQUE MPR MIP MINIP VR VRT 3D 2D RECON RECONSTRUCTION
THIN THICK SLICE SLICES SECTION MM CM KV KVP KEV MAS
CONTRAST NONCONTRAST NON WITH WITHOUT W WO IV ORAL PRE POST NATIVE PLAIN ENHANCED UNENHANCED BOLUS TRACKING
ARTERIAL VENOUS PORTAL PORTALVENOUS NEPHROGRAPHIC EXCRETORY DELAYED DELAY LATE EARLY PHASE PHASES
LOCALIZER LOCALISER SCOUT TOPOGRAM SURVIEW SCANOGRAM PILOT
LOW HIGH DOSE LOWDOSE LDCT ULTRA RESOLUTION HR HRCT ROUTINE STANDARD STD SCREENING FOLLOW UP
KERNEL WINDOW SHARP SMOOTH SOFTTISSUE DETAIL EDGE LUNGWINDOW BONEWINDOW MEDIUM
ITERATIVE IR ASIR ASIRV VEO ADMIRE SAFIRE IDOSE IMR AIDR FBP DLIR TRUEFIDELITY
DUAL ENERGY SPECTRAL MONO MONOENERGETIC VNC IODINE DE
HELICAL SPIRAL SEQUENTIAL SEQUENCE SERIES PROTOCOL ADULT PEDIATRIC PAEDIATRIC
INSPIRATION EXPIRATION INSP EXP INSPIRATORY EXPIRATORY PRONE SUPINE BREATH HOLD
AND OF THE TO IN ON FOR
ORIGINAL PRIMARY SECONDARY DERIVED REFORMATTED
"""
DESCRIPTOR_WORDS: frozenset[str] = frozenset((_ANATOMY + _TECHNIQUE).split())
"""Words (upper case) a cleaned descriptor may keep: anatomy, plane, phase, contrast, kernel and dose words."""

_MEASURE = re.compile(r"^\d{1,3}(\.\d{1,3})?(MM|CM|KV|KVP|KEV|MAS)$")
_SMALL_DECIMAL = re.compile(r"^\d\.\d{1,3}$")
_SMALL_INTEGER = re.compile(r"^\d{1,3}$")
_UNITS = frozenset({"MM", "CM", "KV", "KVP", "KEV", "MAS"})
_WITHOUT = re.compile(r"\bW/O\b", re.IGNORECASE)
_TOKEN = re.compile(r"[A-Za-z0-9]+(?:\.[0-9]+[A-Za-z]*)?")


def _kept(token: str, following: str, extra: frozenset[str]) -> bool:
    upper = token.upper()
    if upper in DESCRIPTOR_WORDS or upper in extra:
        return True
    if _MEASURE.match(upper) or _SMALL_DECIMAL.match(upper):
        return True
    return bool(_SMALL_INTEGER.match(upper)) and following.upper() in _UNITS  # "5 mm", "120 kV"


def clean_descriptor(text: object, *, extra_words: Iterable[str] = (), max_length: int = 64) -> str:
    """``text`` with every word removed that is not an allowed anatomical/technical word (see the module).

    Words are runs of letters and digits (a decimal such as ``1.25`` is one word); kept words keep their
    spelling and are joined by single spaces; the result is cut to ``max_length`` characters at a word boundary.
    ``extra_words`` (compared ignoring case) are also kept, e.g. the series' own ``ConvolutionKernel``.

    Example:
        >>> clean_descriptor("PHIMARKER AXIAL 1.25mm Lung^Doe")
        'AXIAL 1.25mm Lung'
        >>> clean_descriptor("Br40d 3", extra_words=["Br40d"]), clean_descriptor("Series 123456")
        ('Br40d', 'Series')
    """
    if text is None:
        return ""
    if isinstance(text, list | tuple):
        text = " ".join(str(t) for t in text)
    extra = frozenset(str(w).upper() for w in extra_words if str(w).strip())
    tokens = _TOKEN.findall(_WITHOUT.sub("WO", str(text)))  # "W/O" must not become "W" (with)
    kept = [t for i, t in enumerate(tokens) if _kept(t, tokens[i + 1] if i + 1 < len(tokens) else "", extra)]
    out = ""
    for token in kept:
        candidate = f"{out} {token}" if out else token
        if len(candidate) > max_length:
            break
        out = candidate
    return out
