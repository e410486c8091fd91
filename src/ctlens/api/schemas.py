"""The API's request and response bodies (pydantic models): they are the OpenAPI schema the docs show.

Bodies of the studies, jobs, chat, health and key routes first, then those of the archive routes.

Example:
    >>> Health(status="ok").status
    'ok'
    >>> AnalyzeRequest(series_uid="1.2.3").series_uid
    '1.2.3'
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class Health(BaseModel):
    status: str


class Ready(BaseModel):
    status: str
    database: str
    layers: dict[str, bool] = Field(default_factory=dict)
    llm_provider: str = ""


class Me(BaseModel):
    key_id: str
    name: str


class JobRef(BaseModel):
    id: str
    url: str


class StudyLinks(BaseModel):
    self: str
    slice: str = Field(description="template: replace {k} by the slice index")
    heatmap: str
    roi: str
    volume: str
    payload: str
    compressed: str
    chat: str
    heatmap_volume: str | None = Field(None, description="the heatmap as NIfTI (float32 0..1) on the volume's grid")
    labels_volume: str | None = Field(None, description="lungs and candidate regions as a uint8 NIfTI label volume")


class SeriesRow(BaseModel):
    """One image series found in a DICOM upload (no identifiers)."""

    model_config = ConfigDict(extra="allow")

    index: int
    description: str = ""
    modality: str = ""
    kernel: str = ""
    orientation: str = ""
    slices: int = 0
    matrix: list[int] = Field(default_factory=list)
    analysed: bool = Field(False, description="this series is the one the study shows")
    selector: str | None = Field(None, description="send as the `series` form field of POST /api/analyze")


class Viewer(BaseModel):
    """How the web viewer opens a study."""

    default_preset: str | None = Field(
        None,
        description="window preset to open in: brain (head CT), lung (chest CT), soft_tissue (other CT); "
        "null for MR and 2-D images (automatic contrast)",
    )
    region: str | None = Field(None, description="body region found by the analysis")
    warnings: list[str] = Field(
        default_factory=list, description="the reader's geometry warnings (tilt corrected, spacing resampled, ...)"
    )
    slice_numbering: str = Field("1-based", description="slice numbers shown to people start at 1")
    presets: dict[str, list[float]] = Field(default_factory=dict, description="preset -> [width, level] in HU")
    labels: dict[str, str] = Field(default_factory=dict, description="label-volume value -> what it marks")


class Study(BaseModel):
    """A study: what was uploaded, its state and (when ready) the analysis result."""

    model_config = ConfigDict(extra="allow")

    id: str
    sha256: str
    status: str = Field(description="ready | processing | failed")
    cached: bool = False
    created: float
    error: str | None = None
    job: JobRef | None = None
    links: StudyLinks
    kind: str | None = None
    series: list[SeriesRow] = Field(default_factory=list)
    shape: list[int] | None = None
    spacing: list[float] | None = None
    modality: str | None = None
    analysis: dict[str, Any] | None = None
    findings: dict[str, Any] | None = None
    has_heatmap: bool = False
    has_roi: bool = False
    viewer: Viewer | None = None


class StudyList(BaseModel):
    studies: list[Study]


class Job(BaseModel):
    id: str
    state: str = Field(description="queued | running | done | failed")
    progress: float
    message: str
    error: str | None = None
    study_id: str
    study_url: str


class ChatAnswer(BaseModel):
    answer: str
    provider: str
    model: str
    offline: bool
    input_tokens: int
    output_tokens: int
    cost_usd: float | None
    token_estimate: int | None = None
    images: int = 0
    study_id: str | None = None


class ChatTurn(BaseModel):
    model_config = ConfigDict(extra="allow")

    role: str
    content: str
    created: float


class Conversation(BaseModel):
    study_id: str
    messages: list[ChatTurn]


class ProcessedImage(BaseModel):
    model_config = ConfigDict(extra="allow")

    shape: list[int]
    findings: dict[str, Any] | None
    analysis: dict[str, Any]
    overlay_png: str | None = Field(None, description="base64 PNG: image with heatmap and ROI outline")
    heatmap_png: str | None = Field(None, description="base64 PNG: heatmap, 0-255 grey")


class AuditEntry(BaseModel):
    ts: float
    action: str
    study_id: str | None
    detail: str


class AuditLog(BaseModel):
    entries: list[AuditEntry]

    @classmethod
    def from_rows(cls, rows: list[dict[str, Any]]) -> AuditLog:
        """The log from the store's audit rows (their other columns are not shown)."""
        return cls(entries=[AuditEntry(**{k: r[k] for k in ("ts", "action", "study_id", "detail")}) for r in rows])


# --- archive -----------------------------------------------------------------------------------------------------
UID_PATTERN = r"^[0-9]+(\.[0-9]+)+$"
"""A DICOM UID: digits in dot-separated components (checked on every UID a request names)."""


class ArchiveStatus(BaseModel):
    configured: bool = Field(description="whether CTLENS_DICOMWEB_URL names an archive")


class ArchiveStudy(BaseModel):
    study_uid: str
    date: str | None = None
    modalities: list[str] = Field(default_factory=list)
    series: int | None = Field(None, description="number of series in the study")
    instances: int | None = Field(None, description="number of instances in the study")


class ArchiveStudies(BaseModel):
    studies: list[ArchiveStudy]


class ArchiveSeries(BaseModel):
    series_uid: str
    modality: str | None = None
    number: int | None = None
    instances: int | None = None


class ArchiveSeriesList(BaseModel):
    study_uid: str
    series: list[ArchiveSeries]


class AnalyzeRequest(BaseModel):
    series_uid: str | None = Field(
        None,
        max_length=64,
        pattern=UID_PATTERN,
        description="the series to analyse (default: the largest image series)",
    )


class SendRequest(BaseModel):
    heatmap: bool = Field(False, description="also send the heatmap as a Secondary Capture series")


class StoredObject(BaseModel):
    modality: str
    sop_class_uid: str
    sop_instance_uid: str
    series_uid: str


class SentResults(BaseModel):
    study_id: str
    study_uid: str
    series_uid: str
    stored: list[StoredObject]


class StudyArchiveLink(BaseModel):
    study_id: str
    from_archive: bool
    study_uid: str | None = None
    series_uid: str | None = None
