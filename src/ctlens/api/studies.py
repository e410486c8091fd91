"""A key's studies: finding one (another key's is 404), its readiness (409 until analysed), its JSON, listing, deletion.

A study is a row per API key that points at one analysed content (by SHA-256); the content and its result are
shared by every key that sent the same bytes, the row, its audit trail and its conversation are not.
Deleting a study removes its row and conversation; once no key's study uses the content any more, also the
content's row, jobs, stored folder and any raw upload still staged for a job, and then the SQLite write-ahead log
is checkpointed (deleted rows are overwritten, ``secure_delete``), so no copy of the study stays behind.

Example:
    >>> links("st_1").slice
    '/api/studies/st_1/slices/{k}.png'
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ctlens.api.artifacts import Artifacts, load_artifacts, stored_warnings
from ctlens.api.schemas import JobRef, Study, StudyLinks, StudyList
from ctlens.api.viewer import number_candidates, viewer_block
from ctlens.core.errors import ServiceError
from ctlens.io.files import remove_path

if TYPE_CHECKING:
    from ctlens.api.context import ServiceContext


def links(study_id: str) -> StudyLinks:
    """The URLs of one study's resources."""
    base = f"/api/studies/{study_id}"
    return StudyLinks(
        self=base,
        slice=f"{base}/slices/{{k}}.png",
        heatmap=f"{base}/slices/{{k}}.png?overlay=heatmap",
        roi=f"{base}/slices/{{k}}.png?overlay=roi",
        volume=f"{base}/volume.nii.gz",
        payload=f"{base}/payload",
        compressed=f"{base}/compressed.ctz",
        chat=f"{base}/chat",
        heatmap_volume=f"{base}/overlays/heatmap.nii.gz",
        labels_volume=f"{base}/overlays/labels.nii.gz",
    )


def study_body(ctx: ServiceContext, study: dict[str, Any], *, cached: bool = False) -> Study:
    """The JSON of one study from its row and its content's cache entry."""
    result = ctx.cached_result(study["sha256"])
    if result is not None:
        entry = {"status": "ready", "error": None, "result": result}
    else:
        entry = ctx.store.content(study["sha256"]) or {"status": "failed", "error": "the study's data are gone"}
    body: dict[str, Any] = {
        "id": study["id"],
        "sha256": study["sha256"],
        "created": study["created"],
        "status": entry["status"],
        "cached": cached,
        "error": entry.get("error"),
        "links": links(study["id"]),
    }
    if entry["status"] == "ready" and isinstance(entry.get("result"), dict):
        body.update(entry["result"])
        body["findings"] = number_candidates(body.get("findings"))
        warnings = None if "reader_warnings" in body else stored_warnings(ctx.content_dir(study["sha256"]))
        body["viewer"] = viewer_block(entry["result"], warnings)
        if not body.get("has_heatmap"):
            body["links"] = body["links"].model_copy(update={"heatmap_volume": None})
    else:
        body["links"] = body["links"].model_copy(update={"heatmap_volume": None, "labels_volume": None})
    job = ctx.store.job_for_content(study["sha256"])
    if job is not None and job["owner"] == study["owner"] and entry["status"] != "ready":
        body["job"] = JobRef(id=job["id"], url=f"/api/jobs/{job['id']}")
    return Study(**body)


def owned_study(ctx: ServiceContext, owner: str, study_id: str) -> dict[str, Any]:
    """The study row of ``owner``'s study ``study_id``; 404 when there is none (or it is another key's)."""
    study = ctx.store.study(owner, study_id)
    if study is None:
        raise ServiceError(f"no study {study_id!r}", status=404)
    return study


def ready_result(ctx: ServiceContext, study: dict[str, Any]) -> dict[str, Any]:
    """The stored result of a study's content; 409 while it is being analysed (or when it failed or is gone)."""
    result = ctx.cached_result(study["sha256"])
    if result is None:
        status = (ctx.store.content(study["sha256"]) or {}).get("status", "missing")
        raise ServiceError(f"study {study['id']} is not ready (status: {status})", status=409)
    return result


def ready_study(ctx: ServiceContext, owner: str, study_id: str) -> Artifacts:
    """The stored artifacts of ``owner``'s analysed study: 404 as :func:`owned_study`, 409 as :func:`ready_result`."""
    study = owned_study(ctx, owner, study_id)
    ready_result(ctx, study)
    return load_artifacts(ctx.content_dir(study["sha256"]))


def list_studies(ctx: ServiceContext, owner: str, limit: int, offset: int) -> StudyList:
    """One page of ``owner``'s studies, newest first."""
    return StudyList(studies=[study_body(ctx, row) for row in ctx.store.studies(owner, limit, offset)])


def _remove_staged(ctx: ServiceContext, job: dict[str, Any]) -> None:
    """Remove the raw upload a job was to read (only a folder under the service's uploads)."""
    try:
        folder = json.loads(job.get("params") or "{}").get("folder")
    except ValueError:
        return
    if not folder:
        return
    path = Path(folder).resolve()
    if path.is_relative_to(ctx.uploads_root) and path != ctx.uploads_root:
        remove_path(path)


def delete_study(ctx: ServiceContext, owner: str, study_id: str) -> None:
    """Delete ``owner``'s study (404 when none); its content goes too once no other key's study uses it.

    The content's jobs and the raw uploads staged for them go with it; the database's write-ahead log is
    checkpointed afterwards.
    """
    sha = ctx.store.delete_study(owner, study_id)
    if sha is None:
        raise ServiceError(f"no study {study_id!r}", status=404)
    if sha:  # no other key's study uses the content any more
        for job in ctx.store.remove_jobs_for_content(sha):
            _remove_staged(ctx, job)
        ctx.forget_content(sha)
    ctx.store.audit(owner, "delete", study_id)
    ctx.store.checkpoint()
