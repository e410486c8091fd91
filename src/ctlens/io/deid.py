"""De-identification (DICOM PS3.15 Basic Application Level Confidentiality Profile).

The profile's actions (PS3.15 Annex E, Table E.1-1) are kept as data in ``PROFILE_ACTIONS`` and applied, in
place and recursively into sequences, by :func:`deidentify_dataset`. :func:`deidentify_file` and
:func:`deidentify_path` read, de-identify and write DICOM files atomically; :func:`deidentify_meta` cleans the
small metadata dicts the rest of ctlens passes around.

What the profile does not cover and this module does not do: text burned into the pixels (a warning is logged and
put in the report when ``BurnedInAnnotation`` is not ``NO``) and identifying free text in attributes the profile
keeps.

Example:
    >>> hash_uid("1.2.3") == hash_uid("1.2.3") != hash_uid("1.2.4")
    True
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import os
import re
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pydicom
from pydicom.datadict import keyword_for_tag
from pydicom.dataelem import RawDataElement, empty_value_for_VR
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.multival import MultiValue
from pydicom.sequence import Sequence
from pydicom.tag import BaseTag

from ctlens.core.errors import CorruptFileError, CTLensError, InputNotFoundError, UnsupportedFormatError
from ctlens.io.dicom_headers import with_file_meta
from ctlens.io.dicom_magic import is_raw_dataset, looks_like_dicom, read_head

__all__ = [
    "FORBIDDEN_META_KEYS",
    "PROFILE_ACTIONS",
    "DeidReport",
    "deidentify_dataset",
    "deidentify_file",
    "deidentify_meta",
    "deidentify_path",
    "hash_uid",
]

logger = logging.getLogger(__name__)

_UID_ROOT = "2.25."


def hash_uid(uid: str, salt: str = "") -> str:
    """A stable replacement UID (``2.25.<decimal>``, at most 64 characters) for ``uid``."""
    digest = hashlib.sha256((salt + str(uid)).encode()).digest()
    return _UID_ROOT + str(int.from_bytes(digest[:16], "big"))


# --------------------------------------------------------------------------------------------------------------
# The profile as data.
#
# Source: DICOM PS3.15 (Security and System Management Profiles), Annex E, Table E.1-1 "Application Level
# Confidentiality Profile Attributes", column "Basic Prof." (no options). Actions:
#   D  replace with a non-zero-length dummy value of the same VR      Z  replace with a zero-length value
#   X  remove                                                           K  keep (sequences: still recursed into)
#   U  replace the UID with a consistent new one (hash_uid)
# Combined actions of the table are resolved as follows: "Z/D" -> Z (type 1/2 dates may be emptied);
# "X/Z", "X/D", "X/Z/D" -> X, except for attributes that are type 2 in the CT/MR image IODs, which get Z;
# "X/Z/U*" on reference sequences -> K (kept, recursed into, so the UIDs inside them get U and references stay
# consistent); D on a sequence is applied as Z (an empty sequence) because a dummy item could not be meaningful.
# --------------------------------------------------------------------------------------------------------------
PROFILE_ACTIONS: dict[str, str] = {
    # Patient
    "PatientName": "Z",
    "PatientID": "Z",
    "PatientBirthDate": "Z",
    "PatientBirthTime": "X",
    "PatientSex": "Z",
    "PatientAge": "X",
    "PatientSize": "X",
    "PatientWeight": "X",
    "PatientAddress": "X",
    "PatientTelephoneNumbers": "X",
    "PatientTelecomInformation": "X",
    "OtherPatientIDs": "X",
    "OtherPatientIDsSequence": "X",
    "OtherPatientNames": "X",
    "PatientBirthName": "X",
    "PatientMotherBirthName": "X",
    "EthnicGroup": "X",
    "Occupation": "X",
    "MedicalRecordLocator": "X",
    "MilitaryRank": "X",
    "BranchOfService": "X",
    "CountryOfResidence": "X",
    "RegionOfResidence": "X",
    "PatientReligiousPreference": "X",
    "PatientComments": "X",
    "PatientState": "X",
    "PatientTransportArrangements": "X",
    "PatientInstitutionResidence": "X",
    "PatientInsurancePlanCodeSequence": "X",
    "PatientPrimaryLanguageCodeSequence": "X",
    "PatientPrimaryLanguageModifierCodeSequence": "X",
    "PatientSexNeutered": "X",
    "IssuerOfPatientID": "X",
    "InsurancePlanIdentification": "X",
    "MedicalAlerts": "X",
    "Allergies": "X",
    "SmokingStatus": "X",
    "PregnancyStatus": "X",
    "LastMenstrualDate": "X",
    "SpecialNeeds": "X",
    "AdditionalPatientHistory": "X",
    "ReferencedPatientSequence": "X",
    "ReferencedPatientAliasSequence": "X",
    "ReferencedPatientPhotoSequence": "X",
    "ResponsiblePerson": "X",
    "ResponsibleOrganization": "X",
    "PersonAddress": "X",
    "PersonTelephoneNumbers": "X",
    "PersonName": "D",
    "PersonIdentificationCodeSequence": "D",
    # Visit / admission
    "AdmissionID": "X",
    "IssuerOfAdmissionID": "X",
    "AdmittingDate": "X",
    "AdmittingTime": "X",
    "AdmittingDiagnosesDescription": "X",
    "AdmittingDiagnosesCodeSequence": "X",
    "DischargeDiagnosisDescription": "X",
    "CurrentPatientLocation": "X",
    "ServiceEpisodeID": "X",
    "ServiceEpisodeDescription": "X",
    "IssuerOfServiceEpisodeID": "X",
    "VisitComments": "X",
    # Study, series, instance: dates and times
    "StudyDate": "Z",
    "StudyTime": "Z",
    "SeriesDate": "X",
    "SeriesTime": "X",
    "AcquisitionDate": "X",
    "AcquisitionTime": "X",
    "AcquisitionDateTime": "X",
    "ContentDate": "Z",
    "ContentTime": "Z",
    "InstanceCreationDate": "X",
    "InstanceCreationTime": "X",
    "OverlayDate": "X",
    "OverlayTime": "X",
    "CurveDate": "X",
    "CurveTime": "X",
    "DateOfSecondaryCapture": "X",
    "TimeOfSecondaryCapture": "X",
    "DateOfLastCalibration": "X",
    "TimeOfLastCalibration": "X",
    "EndAcquisitionDateTime": "X",
    "StartAcquisitionDateTime": "X",
    "TimezoneOffsetFromUTC": "X",
    # Study, series, instance: identifiers and descriptions
    "AccessionNumber": "Z",
    "IssuerOfAccessionNumberSequence": "X",
    "StudyID": "Z",
    "StudyIDIssuer": "X",
    "StudyDescription": "X",
    "SeriesDescription": "X",
    "ProtocolName": "X",
    "StudyComments": "X",
    "ImageComments": "X",
    "FrameComments": "X",
    "AcquisitionComments": "X",
    "ImagePresentationComments": "X",
    "IdentifyingComments": "X",
    "TextComments": "X",
    "TextString": "X",
    "DerivationDescription": "X",
    "ContributionDescription": "X",
    "ModifiedImageDescription": "X",
    "AcquisitionDeviceProcessingDescription": "X",
    "AcquisitionProtocolDescription": "X",
    "ContrastBolusAgent": "D",
    "ReasonForStudy": "X",
    "AcquisitionContextSequence": "X",
    "ContentSequence": "X",
    "IconImageSequence": "X",
    "GraphicAnnotationSequence": "D",
    "ReferencedStudySequence": "X",
    "ReferencedImageSequence": "K",
    "SourceImageSequence": "K",
    "ReferencedPerformedProcedureStepSequence": "X",
    "OriginalAttributesSequence": "X",
    "ModifiedAttributesSequence": "X",
    "DigitalSignaturesSequence": "X",
    "ReferencedDigitalSignatureSequence": "X",
    "ReferencedSOPInstanceMACSequence": "X",
    "MAC": "X",
    "DataSetTrailingPadding": "X",
    "ConfidentialityConstraintOnPatientDataDescription": "X",
    # People
    "ReferringPhysicianName": "Z",
    "ReferringPhysicianAddress": "X",
    "ReferringPhysicianTelephoneNumbers": "X",
    "ReferringPhysicianIdentificationSequence": "X",
    "ConsultingPhysicianName": "X",
    "ConsultingPhysicianIdentificationSequence": "X",
    "PerformingPhysicianName": "X",
    "PerformingPhysicianIdentificationSequence": "X",
    "NameOfPhysiciansReadingStudy": "X",
    "PhysiciansReadingStudyIdentificationSequence": "X",
    "PhysiciansOfRecord": "X",
    "PhysiciansOfRecordIdentificationSequence": "X",
    "OperatorsName": "X",
    "OperatorIdentificationSequence": "X",
    "RequestingPhysician": "X",
    "ScheduledPerformingPhysicianName": "X",
    "ScheduledPerformingPhysicianIdentificationSequence": "X",
    "HumanPerformerName": "X",
    "HumanPerformerOrganization": "X",
    "ActualHumanPerformersSequence": "X",
    "ScheduledHumanPerformersSequence": "X",
    "ContentCreatorName": "Z",
    "ContentCreatorIdentificationCodeSequence": "X",
    "AuthorObserverSequence": "X",
    "ParticipantSequence": "X",
    "VerifyingObserverName": "D",
    "VerifyingObserverSequence": "X",
    "VerifyingObserverIdentificationCodeSequence": "Z",
    "VerifyingOrganization": "X",
    "ReviewerName": "X",
    "PhysicianApprovingInterpretation": "X",
    "InterpretationApproverSequence": "X",
    "InterpretationAuthor": "X",
    "InterpretationRecorder": "X",
    "InterpretationTranscriber": "X",
    "InterpretationText": "X",
    "InterpretationDiagnosisDescription": "X",
    "InterpretationIDIssuer": "X",
    "Impressions": "X",
    "ResultsComments": "X",
    "ResultsIDIssuer": "X",
    "ResultsDistributionListSequence": "X",
    "DistributionName": "X",
    "DistributionAddress": "X",
    "NamesOfIntendedRecipientsOfResults": "X",
    "IntendedRecipientsOfResultsIdentificationSequence": "X",
    # Institution and equipment
    "InstitutionName": "X",
    "InstitutionAddress": "X",
    "InstitutionalDepartmentName": "X",
    "InstitutionCodeSequence": "X",
    "CustodialOrganizationSequence": "X",
    "StationName": "X",
    "DeviceSerialNumber": "X",
    "DetectorID": "X",
    "GantryID": "X",
    "GeneratorID": "X",
    "CassetteID": "X",
    "PlateID": "X",
    "ModifyingDeviceID": "X",
    "ModifyingDeviceManufacturer": "X",
    "PerformedLocation": "X",
    "PerformedStationAETitle": "X",
    "PerformedStationName": "X",
    "ScheduledStationAETitle": "X",
    "ScheduledStationName": "X",
    "ScheduledStationNameCodeSequence": "X",
    "ScheduledStationGeographicLocationCodeSequence": "X",
    "ScheduledStudyLocation": "X",
    "ScheduledStudyLocationAETitle": "X",
    "ScheduledProcedureStepLocation": "X",
    # Requests, orders, procedure steps
    "RequestAttributesSequence": "X",
    "RequestedProcedureID": "X",
    "RequestedProcedureDescription": "X",
    "RequestedProcedureComments": "X",
    "RequestedProcedureLocation": "X",
    "RequestedContrastAgent": "X",
    "RequestingService": "X",
    "ReasonForTheImagingServiceRequest": "X",
    "ImagingServiceRequestComments": "X",
    "PlacerOrderNumberImagingServiceRequest": "Z",
    "FillerOrderNumberImagingServiceRequest": "Z",
    "OrderEnteredBy": "X",
    "OrderEntererLocation": "X",
    "OrderCallbackPhoneNumber": "X",
    "PerformedProcedureStepID": "X",
    "PerformedProcedureStepDescription": "X",
    "PerformedProcedureStepStartDate": "X",
    "PerformedProcedureStepStartTime": "X",
    "PerformedProcedureStepEndDate": "X",
    "PerformedProcedureStepEndTime": "X",
    "CommentsOnThePerformedProcedureStep": "X",
    "ScheduledProcedureStepStartDate": "X",
    "ScheduledProcedureStepStartTime": "X",
    "ScheduledProcedureStepEndDate": "X",
    "ScheduledProcedureStepEndTime": "X",
    "ScheduledProcedureStepDescription": "X",
    "ScheduledProcedureStepID": "X",
    "PreMedication": "X",
    # Clinical trial
    "ClinicalTrialSponsorName": "D",
    "ClinicalTrialProtocolID": "D",
    "ClinicalTrialProtocolName": "Z",
    "ClinicalTrialSiteID": "Z",
    "ClinicalTrialSiteName": "Z",
    "ClinicalTrialSubjectID": "D",
    "ClinicalTrialSubjectReadingID": "D",
    "ClinicalTrialTimePointID": "Z",
    "ClinicalTrialTimePointDescription": "X",
    "ClinicalTrialCoordinatingCenterName": "Z",
    "ClinicalTrialProtocolEthicsCommitteeApprovalNumber": "X",
    # Topics / free text
    "TopicAuthor": "X",
    "TopicKeywords": "X",
    "TopicSubject": "X",
    "TopicTitle": "X",
    "Arbitrary": "X",
    "ROIInterpreter": "X",
    # UIDs (U); other UIDs follow the generic rule in _uid_action
    "StudyInstanceUID": "U",
    "SeriesInstanceUID": "U",
    "SOPInstanceUID": "U",
    "MediaStorageSOPInstanceUID": "U",
    "ReferencedSOPInstanceUID": "U",
    "ReferencedSOPInstanceUIDInFile": "U",
    "FrameOfReferenceUID": "U",
    "ReferencedFrameOfReferenceUID": "U",
    "RelatedFrameOfReferenceUID": "U",
    "SynchronizationFrameOfReferenceUID": "U",
    "InstanceCreatorUID": "U",
    "IrradiationEventUID": "U",
    "ConcatenationUID": "U",
    "DimensionOrganizationUID": "U",
    "DoseReferenceUID": "U",
    "FiducialUID": "U",
    "LargePaletteColorLookupTableUID": "U",
    "StorageMediaFileSetUID": "U",
    "TransactionUID": "U",
    "UID": "U",
    "DeviceUID": "U",
    "ContextGroupExtensionCreatorUID": "U",
    "TemplateExtensionCreatorUID": "U",
    "TemplateExtensionOrganizationUID": "U",
    "CreatorVersionUID": "U",
    "FailedSOPInstanceUIDList": "U",
    "RequestedSOPInstanceUID": "U",
    "AffectedSOPInstanceUID": "X",
    "DigitalSignatureUID": "X",
    # Transfer syntax, SOP classes and the profile's own markers stay.
    "TransferSyntaxUID": "K",
    "SOPClassUID": "K",
    "MediaStorageSOPClassUID": "K",
    "ReferencedSOPClassUID": "K",
    "ImplementationClassUID": "K",
    "PatientIdentityRemoved": "K",
    "DeidentificationMethod": "K",
    "DeidentificationMethodCodeSequence": "K",
}

# File meta elements that name the sending/receiving systems (not in Table E.1-1, which covers the data set).
_FILE_META_REMOVE = frozenset(
    {
        "SourceApplicationEntityTitle",
        "SendingApplicationEntityTitle",
        "ReceivingApplicationEntityTitle",
        "PrivateInformationCreatorUID",
        "PrivateInformation",
    }
)

_DICOM_UID_ROOT = "1.2.840.10008."  # UIDs defined by the standard itself (PS3.6 Annex A): never identifying
_PROFILE_NAME = "DICOM PS3.15 E.1 Basic Application Confidentiality Profile"  # fits LO (64 chars)
_PROFILE_CODE = ("113100", "DCM", "Basic Application Confidentiality Profile")

_DUMMY: dict[str, Any] = {
    "PN": "ANONYMOUS",
    "LO": "ANONYMIZED",
    "SH": "ANONYMIZED",
    "LT": "ANONYMIZED",
    "ST": "ANONYMIZED",
    "UT": "ANONYMIZED",
    "UC": "ANONYMIZED",
    "CS": "ANONYMIZED",
    "AE": "ANONYMOUS",
    "DA": "19000101",
    "TM": "000000",
    "DT": "19000101000000",
    "AS": "000Y",
    "IS": "0",
    "DS": "0",
    "US": 0,
    "SS": 0,
    "UL": 0,
    "SL": 0,
    "UV": 0,
    "SV": 0,
    "FL": 0.0,
    "FD": 0.0,
}


@dataclasses.dataclass
class DeidReport:
    """What :func:`deidentify_dataset` did to one data set.

    Entries are keywords (or ``(gggg,eeee)`` tags for unnamed elements); elements inside sequences are written as
    ``Sequence[index].Keyword``.

    Example:
        >>> r = DeidReport(removed=["PatientAddress"], emptied=["PatientName"], private_removed=2)
        >>> r.summary()
        'removed 1, emptied 1, replaced 0, UIDs replaced 0, private tags removed 2'
        >>> r.to_dict()["removed"]
        ['PatientAddress']
    """

    removed: list[str] = dataclasses.field(default_factory=list)
    emptied: list[str] = dataclasses.field(default_factory=list)
    replaced: list[str] = dataclasses.field(default_factory=list)
    uid_replaced: list[str] = dataclasses.field(default_factory=list)
    private_removed: int = 0
    warnings: list[str] = dataclasses.field(default_factory=list)
    source: str | None = None
    destination: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready copy of the report."""
        return dataclasses.asdict(self)

    def summary(self) -> str:
        """One line: how many elements were removed, emptied, replaced, and where the result went."""
        text = (
            f"removed {len(self.removed)}, emptied {len(self.emptied)}, replaced {len(self.replaced)}, "
            f"UIDs replaced {len(self.uid_replaced)}, private tags removed {self.private_removed}"
        )
        if self.source and self.destination:
            text = f"{self.source} -> {self.destination}: {text}"
        if self.warnings:
            text += f" ({len(self.warnings)} warning{'s' if len(self.warnings) > 1 else ''})"
        return text


# --------------------------------------------------------------------------------------------------------------
# Data sets
# --------------------------------------------------------------------------------------------------------------


def _name(elem: pydicom.DataElement) -> str:
    return elem.keyword or keyword_for_tag(elem.tag) or str(elem.tag)


def _is_curve_or_overlay(tag: BaseTag) -> bool:
    """Repeating groups 50xx (retired curves) and 60xx (overlays, whose data may hold burned-in text)."""
    group = tag.group
    return (0x5000 <= group <= 0x501E or 0x6000 <= group <= 0x601E) and group % 2 == 0


def _uid_action(elem: pydicom.DataElement) -> str:
    """Action for a UI element the table does not list: keep class UIDs and the standard's own, else replace."""
    keyword = elem.keyword
    if keyword.endswith("ClassUID") or keyword in ("CodingSchemeUID", "MappingResourceUID", "ContextUID"):
        return "K"
    values = elem.value if isinstance(elem.value, MultiValue | list | tuple) else [elem.value]
    if values and all(str(v).startswith(_DICOM_UID_ROOT) for v in values if v):
        return "K"
    return "U"


def _replace_uids(elem: pydicom.DataElement, salt: str) -> bool:
    value = elem.value
    if value is None or value == "":
        return False
    if isinstance(value, MultiValue | list | tuple):
        elem.value = [hash_uid(str(v), salt) if v else v for v in value]
    else:
        elem.value = hash_uid(str(value), salt)
    return True


def _empty(elem: pydicom.DataElement) -> None:
    elem.value = Sequence() if elem.VR == "SQ" else empty_value_for_VR(elem.VR)


def _apply(ds: Dataset, salt: str, report: DeidReport, prefix: str, *, file_meta: bool = False) -> None:
    for tag in list(ds.keys()):
        elem = ds[tag]
        name = prefix + _name(elem)
        if tag.is_private:
            del ds[tag]
            report.private_removed += 1
            continue
        if _is_curve_or_overlay(tag) or (tag.element == 0 and tag.group != 0x0002):
            # curves, overlays and (retired) group lengths, which would be wrong after the changes
            del ds[tag]
            report.removed.append(name)
            continue
        if file_meta and elem.keyword in _FILE_META_REMOVE:
            del ds[tag]
            report.removed.append(name)
            continue
        action = PROFILE_ACTIONS.get(elem.keyword)
        if action is None:
            if elem.VR == "UI":
                action = _uid_action(elem)
            elif elem.VR == "PN":
                action = "Z"  # a name the table does not list (e.g. in a sequence item): empty it, to be safe
            else:
                action = "K"
        if action == "X":
            del ds[tag]
            report.removed.append(name)
        elif action == "Z" or (action == "D" and elem.VR == "SQ"):
            if not elem.is_empty:
                _empty(elem)
                report.emptied.append(name)
        elif action == "D":
            dummy = _DUMMY.get(elem.VR)
            if dummy is None:
                _empty(elem)
                report.emptied.append(name)
            else:
                elem.value = dummy
                report.replaced.append(name)
        elif action == "U":
            if elem.VR == "UI":
                if _replace_uids(elem, salt):
                    report.uid_replaced.append(name)
            elif not elem.is_empty:  # a UID keyword with an unexpected VR: do not keep what we cannot map
                _empty(elem)
                report.emptied.append(name)
        elif elem.VR == "SQ" and elem.value:
            for i, item in enumerate(elem.value):
                _apply(item, salt, report, f"{name}[{i}].")


def _mark_deidentified(ds: Dataset, report: DeidReport) -> None:
    ds.PatientIdentityRemoved = "YES"
    existing = ds.get("DeidentificationMethod") or []
    methods = [existing] if isinstance(existing, str) else [str(m) for m in existing]
    if _PROFILE_NAME not in methods:
        methods.append(_PROFILE_NAME)
    ds.DeidentificationMethod = methods[0] if len(methods) == 1 else methods
    codes = ds.get("DeidentificationMethodCodeSequence") or Sequence()
    if not any(item.get("CodeValue") == _PROFILE_CODE[0] for item in codes):
        item = Dataset()
        item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = _PROFILE_CODE
        codes.append(item)
    ds.DeidentificationMethodCodeSequence = codes
    date_keywords = ("Date", "Time", "DateTime")
    if any(n.split(".")[-1].endswith(date_keywords) for n in report.removed + report.emptied + report.replaced):
        ds.LongitudinalTemporalInformationModified = "REMOVED"
    burned_in = str(ds.get("BurnedInAnnotation", "")).upper()
    if burned_in != "NO":
        message = (
            "BurnedInAnnotation is "
            + (repr(burned_in) if burned_in else "not given")
            + ": text in the pixels is not removed by this profile; check the images before sharing"
        )
        report.warnings.append(message)


def deidentify_dataset(ds: Dataset, *, salt: str = "") -> DeidReport:
    """De-identify ``ds`` in place with the PS3.15 Basic Application Level Confidentiality Profile.

    Applies ``PROFILE_ACTIONS`` recursively into sequences (and to ``ds.file_meta``), removes all private tags,
    curves and overlays, replaces UIDs with ``hash_uid(uid, salt)`` (the same UID always gets the same
    replacement, so references between files stay consistent) and records the profile in
    ``PatientIdentityRemoved``, ``DeidentificationMethod`` and ``DeidentificationMethodCodeSequence`` (113100).

    Example:
        >>> from pydicom.dataset import Dataset
        >>> ds = Dataset()
        >>> ds.PatientName, ds.PatientAddress, ds.StudyInstanceUID = "Doe^Jane", "1 Main St", "1.2.3"
        >>> report = deidentify_dataset(ds)
        >>> str(ds.PatientName), "PatientAddress" in ds, ds.StudyInstanceUID == hash_uid("1.2.3")
        ('', False, True)
        >>> report.removed, report.emptied, ds.PatientIdentityRemoved
        (['PatientAddress'], ['PatientName'], 'YES')
    """
    report = DeidReport()
    file_meta = getattr(ds, "file_meta", None)
    if file_meta is not None:
        _apply(file_meta, salt, report, "file_meta.", file_meta=True)
    _apply(ds, salt, report, "")
    _mark_deidentified(ds, report)
    return report


# --------------------------------------------------------------------------------------------------------------
# Files
# --------------------------------------------------------------------------------------------------------------


def _expected_native_pixel_bytes(ds: Dataset) -> int | None:
    try:
        rows, cols, bits = int(ds.Rows), int(ds.Columns), int(ds.BitsAllocated)
        samples = int(ds.get("SamplesPerPixel", 1) or 1)
        frames = int(ds.get("NumberOfFrames", 1) or 1)
    except (AttributeError, TypeError, ValueError):
        return None
    total_bits = rows * cols * samples * frames * bits
    return (total_bits + 7) // 8


def _read(src: Path) -> Dataset:
    """Read ``src`` strictly (PS3.10 file format required) and check it is complete."""
    if not src.exists():
        raise InputNotFoundError("file not found", path=src, hint="check the path")
    if src.is_dir():
        raise InputNotFoundError("is a folder, not a file", path=src, hint="use deidentify_path for folders")
    if src.stat().st_size == 0:
        raise CorruptFileError("file is empty (0 bytes)", path=src, hint="re-export or copy the file again")
    try:
        ds = pydicom.dcmread(src, force=is_raw_dataset(read_head(src)))  # a bare data set: no preamble, no DICM
    except InvalidDicomError as exc:
        raise CorruptFileError(
            f"not a DICOM file ({exc})",
            path=src,
            hint="DICOM PS3.10 files (with a 'DICM' header) and bare DICOM data sets can be read",
        ) from exc
    except (OSError, EOFError, ValueError, KeyError, IndexError, TypeError, NotImplementedError) as exc:
        raise CorruptFileError(
            f"cannot parse the DICOM file ({type(exc).__name__}: {exc})", path=src, hint="the file may be truncated"
        ) from exc
    hint = "the file is truncated or damaged; copy or re-export it"
    if not getattr(ds, "preamble", None) and "TransferSyntaxUID" not in getattr(ds, "file_meta", {}):
        ds = with_file_meta(ds)  # written back as a PS3.10 file, with file meta from its own encoding and UIDs
    if "TransferSyntaxUID" not in ds.file_meta:
        raise CorruptFileError("file meta information is incomplete (no TransferSyntaxUID)", path=src, hint=hint)
    if len(ds) == 0:
        raise CorruptFileError("no data set after the file meta information", path=src, hint=hint)
    for tag in ds.keys():
        raw = ds.get_item(tag)
        if (
            isinstance(raw, RawDataElement)
            and raw.value is not None
            and raw.length != 0xFFFFFFFF
            and len(raw.value) < raw.length
        ):
            keyword = keyword_for_tag(tag) or str(tag)
            raise CorruptFileError(
                f"truncated: {keyword} has {len(raw.value)} of its {raw.length} bytes", path=src, hint=hint
            )
    if "PixelData" in ds and not ds.file_meta.TransferSyntaxUID.is_compressed:
        expected = _expected_native_pixel_bytes(ds)
        actual = len(ds.PixelData or b"")
        if expected is not None and actual < expected:
            raise CorruptFileError(f"truncated pixel data ({actual} of {expected} bytes)", path=src, hint=hint)
    return ds


def _same_file(a: Path, b: Path) -> bool:
    if a.resolve() == b.resolve():
        return True
    try:
        return b.exists() and os.path.samefile(a, b)
    except OSError:  # pragma: no cover - races with a disappearing file
        return False


def _write_atomic(ds: Dataset, dst: Path) -> None:
    """Write ``ds`` to a temporary file next to ``dst`` and move it into place; never leave a partial file."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{dst.name}.", suffix=".tmp", dir=dst.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as fh:
            pydicom.dcmwrite(fh, ds, enforce_file_format=True)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, dst)
    except BaseException as exc:
        tmp.unlink(missing_ok=True)
        if isinstance(exc, CTLensError) or not isinstance(exc, Exception):
            raise
        raise CTLensError(
            f"could not write the de-identified file ({type(exc).__name__}: {exc})",
            path=dst,
            hint="check free space and permissions of the destination folder",
        ) from exc


def deidentify_file(src: Path, dst: Path, *, salt: str = "") -> DeidReport:
    """Read the DICOM file ``src``, de-identify it and write it atomically to ``dst``.

    ``dst`` may be an existing folder (the file keeps its name there) but never ``src`` itself. A non-DICOM,
    empty or truncated ``src`` raises :class:`CorruptFileError` naming the file and nothing is written.

    Example:
        >>> import tempfile, pydicom
        >>> from pydicom.data import get_testdata_file
        >>> tmp = tempfile.TemporaryDirectory()
        >>> out = Path(tmp.name) / "ct.dcm"
        >>> report = deidentify_file(Path(get_testdata_file("CT_small.dcm")), out, salt="s")
        >>> "PatientName" in report.emptied, pydicom.dcmread(out).PatientIdentityRemoved
        (True, 'YES')
        >>> tmp.cleanup()
    """
    src, dst = Path(src), Path(dst)
    if dst.is_dir():
        dst = dst / src.name
    if _same_file(src, dst):
        raise CTLensError(
            "refusing to overwrite the source file with its de-identified copy",
            path=src,
            hint="choose a different destination",
        )
    ds = _read(src)
    if ds.file_meta.get("MediaStorageSOPClassUID") == "1.2.840.10008.1.3.10":
        raise UnsupportedFormatError(
            "DICOMDIR files cannot be de-identified in place (their offsets would break)",
            path=src,
            hint="de-identify the image files and build a new DICOMDIR",
        )
    report = deidentify_dataset(ds, salt=salt)
    ds.preamble = b"\0" * 128  # the preamble is free-form and may carry anything
    _write_atomic(ds, dst)
    report.source, report.destination = str(src), str(dst)
    for message in report.warnings:
        logger.warning("%s: %s", src, message)
    return report


def _is_relative_to(path: Path, other: Path) -> bool:
    try:
        path.relative_to(other)
    except ValueError:
        return False
    return True


def _walk_files(folder: Path) -> list[Path]:
    """Every non-folder entry under ``folder``, sorted, without descending into symbolically linked folders."""
    found: list[Path] = []
    for root, dirs, files in os.walk(folder, followlinks=False):
        found.extend(Path(root) / name for name in files)
        found.extend(Path(root) / name for name in dirs if (Path(root) / name).is_symlink())
    return sorted(found)


def deidentify_path(src: Path, dst: Path, *, salt: str = "") -> list[DeidReport]:
    """De-identify a DICOM file, or every DICOM file under a folder, into ``dst``.

    For a folder, files are found recursively and written to the same relative path under ``dst`` (which must not
    lie inside ``src``); files that are not DICOM, or are damaged, are skipped with a logged warning, symbolic
    links and DICOMDIR files are skipped too. Use the same ``salt`` for every part of a study so the replaced
    UIDs keep matching.

    Example:
        >>> import tempfile, shutil
        >>> from pydicom.data import get_testdata_file
        >>> tmp = tempfile.TemporaryDirectory()
        >>> src, dst = Path(tmp.name) / "in", Path(tmp.name) / "out"
        >>> (src / "a").mkdir(parents=True)
        >>> _ = shutil.copy(get_testdata_file("CT_small.dcm"), src / "a" / "1.dcm")
        >>> [Path(r.destination).relative_to(dst).as_posix() for r in deidentify_path(src, dst)]
        ['a/1.dcm']
        >>> tmp.cleanup()
    """
    src, dst = Path(src), Path(dst)
    if not src.exists():
        raise InputNotFoundError("path not found", path=src, hint="check the path")
    if src.is_file():
        return [deidentify_file(src, dst, salt=salt)]
    src_real, dst_real = src.resolve(), dst.resolve()
    if _is_relative_to(dst_real, src_real):
        raise CTLensError(
            f"the destination {dst} lies inside the source folder",
            path=src,
            hint="choose a destination outside the folder being de-identified",
        )
    reports: list[DeidReport] = []
    for path in _walk_files(src):
        if path.is_symlink():
            logger.warning("%s: skipped (symbolic link)", path)
            continue
        if not looks_like_dicom(read_head(path)):
            logger.warning("%s: skipped (not a DICOM file)", path)
            continue
        try:
            reports.append(deidentify_file(path, dst / path.relative_to(src), salt=salt))
        except (CorruptFileError, UnsupportedFormatError) as exc:
            logger.warning("%s: skipped (%s)", path, exc.reason)
    if not reports:
        raise InputNotFoundError("no DICOM files found", path=src, hint="point at a folder of DICOM (.dcm) files")
    return reports


# --------------------------------------------------------------------------------------------------------------
# Metadata dicts
# --------------------------------------------------------------------------------------------------------------


def _snake(keyword: str) -> str:
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "_", keyword).lower()


def _norm(key: str) -> str:
    return re.sub(r"[^a-z0-9]", "", str(key).lower())


_EXTRA_FORBIDDEN = (
    "name",
    "patient",
    "birth_date",
    "date_of_birth",
    "dob",
    "birthdate",
    "age",
    "sex",
    "address",
    "phone",
    "telephone",
    "email",
    "mrn",
    "ssn",
    "accession",
    "study_id",
    "institution",
    "institution_name",
    "hospital",
    "physician",
    "referring_physician",
    "performing_physician",
    "operator",
    "operators",
    "operator_name",
    "station",
    "serial_number",
)
_IDENTIFYING_KEYWORDS = sorted(k for k, a in PROFILE_ACTIONS.items() if a in ("X", "Z", "D"))

#: Metadata keys :func:`deidentify_meta` drops: the profile's X/Z/D keywords, their snake_case forms, and common
#: names for identifiers. Matching ignores case, ``_``, ``-`` and spaces.
FORBIDDEN_META_KEYS: frozenset[str] = frozenset(
    [*_IDENTIFYING_KEYWORDS, *(_snake(k) for k in _IDENTIFYING_KEYWORDS), *_EXTRA_FORBIDDEN]
)
_FORBIDDEN_NORM = frozenset(_norm(k) for k in FORBIDDEN_META_KEYS)
# Fragments that make a key identifying wherever they occur in it (normalized form).
_FORBIDDEN_FRAGMENTS = (
    "patientname",
    "patientid",
    "birth",
    "address",
    "phone",
    "email",
    "physician",
    "operatorsname",
    "operatorname",
    "institution",
    "accession",
    "medicalrecord",
    "otherpatient",
    "studyid",
    "stationname",
    "serialnumber",
)


def _is_forbidden_key(key: str) -> bool:
    norm = _norm(key)
    if norm.endswith("uid"):
        return False
    return norm in _FORBIDDEN_NORM or any(fragment in norm for fragment in _FORBIDDEN_FRAGMENTS)


def _hash_meta_uid(value: Any) -> Any:
    if isinstance(value, str):
        if not value or value.startswith(_UID_ROOT) or value.startswith(_DICOM_UID_ROOT):
            return value
        return hash_uid(value)
    if isinstance(value, list | tuple):
        return type(value)(_hash_meta_uid(v) for v in value)
    return value


def deidentify_meta(meta: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of ``meta`` without identifying keys and with UID values hashed.

    Keys in :data:`FORBIDDEN_META_KEYS` (compared ignoring case and separators) or containing an identifying
    fragment (``birth``, ``address``, ``physician``, ...) are dropped. Values of keys ending in ``uid`` are
    replaced by :func:`hash_uid` unless already hashed (``2.25.``) or defined by DICOM (``1.2.840.10008.``).
    Nested dicts are cleaned the same way; ``meta`` is not changed.

    Example:
        >>> deidentify_meta({"patient_name": "Doe^Jane", "PatientID": "123", "manufacturer": "ACME",
        ...                  "series_uid": "2.25.1", "study_uid": "1.2.3"}) == {
        ...     "manufacturer": "ACME", "series_uid": "2.25.1", "study_uid": hash_uid("1.2.3")}
        True
    """
    out: dict[str, Any] = {}
    for key, value in meta.items():
        if _is_forbidden_key(key):
            continue
        if isinstance(value, Mapping):
            out[key] = deidentify_meta(value)
        elif _norm(key).endswith("uid") or _norm(key).endswith("uids"):
            out[key] = _hash_meta_uid(value)
        else:
            out[key] = value
    return out
