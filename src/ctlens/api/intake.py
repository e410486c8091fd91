"""The one path of new content into the service, for uploads and archive retrievals alike.

A content (keyed by the SHA-256 of its bytes) sent by one key is answered from the cache when it was analysed
before (:func:`answer_cached`; only new zero-shot scores may be written), or, once staged
(:func:`analyse_staged`): joined to an analysis another request is running (202), queued as a job when it is
big (202, :func:`ctlens.api.jobs.queue_job`), or analysed now (200; a failure forgets the content, so the same
bytes can be tried again). Staged files never outlive the request unless a job owns them. An :class:`Intake`
says who asked and how the study row and the audit trail record it; :func:`analyze_upload` is
``POST /api/analyze``.

Example:
    >>> Intake("key_1", "archive", "analyse").detail("cached"), Intake("key_1", "upload").detail("cached")
    ('analyse:cached', 'cached')
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from fastapi.concurrency import run_in_threadpool
from starlette.requests import Request

from ctlens.api.jobs import queue_job
from ctlens.api.processing import analyse_now, refresh_user_models, refresh_zero_shot
from ctlens.api.schemas import Study
from ctlens.api.store import new_id
from ctlens.api.studies import study_body
from ctlens.api.uploads import StagedUpload, check_expansion, read_upload_form, series_key, stage_uploads, upload_key
from ctlens.io.decompress_budget import Budget

if TYPE_CHECKING:
    from ctlens.api.context import ServiceContext


@dataclass(frozen=True)
class Intake:
    """Who sent a content and how it is recorded: audit ``action`` with ``label`` before the outcome's detail.

    ``on_study`` sees the study row whenever it is fetched (the archive records where the content came from).
    """

    owner: str
    action: str
    label: str = ""
    on_study: Callable[[dict[str, Any]], None] | None = None

    def detail(self, outcome: str = "") -> str:
        """The audit detail of one outcome (``cached``, ``job`` or ``""`` for analysed now)."""
        return ":".join(part for part in (self.label, outcome) if part)

    def study(self, ctx: ServiceContext, sha: str) -> dict[str, Any]:
        """The owner's study row of the content (made on first use)."""
        study = ctx.store.study_for(self.owner, sha)
        if self.on_study is not None:
            self.on_study(study)
        return study

    def audit(self, ctx: ServiceContext, study: dict[str, Any], outcome: str = "") -> None:
        """Record the outcome in the owner's audit trail."""
        ctx.store.audit(self.owner, self.action, study["id"], self.detail(outcome))


def answer_cached(ctx: ServiceContext, intake: Intake, sha: str, result: dict[str, Any]) -> Study:
    """The study of a content analysed before, with zero-shot scores and user-model outputs brought up to date.

    ``cached`` is true only when the same key had sent these bytes before: another key's upload is not revealed.
    """
    ctx.metrics.cache_hits.inc()
    updated = refresh_zero_shot(result, ctx.content_dir(sha), ctx.settings.clip_checkpoint)
    if updated is not None:
        ctx.remember_result(sha, updated)
        result = updated
    refreshed = refresh_user_models(result, ctx.content_dir(sha), ctx.settings.user_models_dir)
    if refreshed is not None:  # models added, removed or rewritten since: their outputs, not stale ones
        ctx.remember_result(sha, refreshed)
    asked = time.time()
    study = intake.study(ctx, sha)
    intake.audit(ctx, study, "cached")
    return study_body(ctx, study, cached=float(study["created"]) < asked)


def analyse_staged(
    ctx: ServiceContext, intake: Intake, staged: StagedUpload, series: str | None = None
) -> tuple[int, Study]:
    """(HTTP status, study) of a staged content: 200 cached or analysed now, 202 in progress elsewhere or queued."""
    sha = staged.sha256
    queued = False
    try:
        check_expansion(staged, Budget.from_settings(ctx.settings))
        cached = ctx.cached_result(sha)
        if cached is not None:  # the same bytes were analysed before (uploaded or retrieved)
            staged.discard()
            return 200, answer_cached(ctx, intake, sha, cached)
        if not ctx.store.claim_content(sha, staged.nbytes):  # another request is analysing the same bytes
            staged.discard()
            return 202, study_body(ctx, intake.study(ctx, sha))
        ctx.metrics.cache_misses.inc()
        if staged.nbytes > ctx.settings.job_threshold_bytes:
            study = intake.study(ctx, sha)
            queue_job(ctx, intake.owner, study["id"], staged, series)
            queued = True
            intake.audit(ctx, study, "job")
            return 202, study_body(ctx, study)
        try:
            analyse_now(ctx, staged, series=series)
        except BaseException:
            ctx.forget_content(sha)
            raise
        study = intake.study(ctx, sha)
        intake.audit(ctx, study)
        return 200, study_body(ctx, study)
    except BaseException:
        if not queued:
            staged.discard()
        raise


async def analyze_upload(request: Request, ctx: ServiceContext, owner: str) -> tuple[int, Study]:
    """``POST /api/analyze``: the multipart upload answered from the cache before staging when it can, else staged
    and passed to :func:`analyse_staged` (in a worker thread)."""
    settings = ctx.settings
    intake = Intake(owner, "upload")
    caps = {"max_bytes": settings.max_upload_bytes, "max_files": settings.max_upload_files}
    form, files, series = await read_upload_form(request, settings.max_upload_files)
    try:
        sha = await upload_key(files, **caps)
        if sha is not None and series:  # another series of the same bytes is another content
            sha = series_key(sha, series)
        cached = ctx.cached_result(sha) if sha is not None else None
        if sha is not None and cached is not None:  # a cache hit: nothing is staged
            return 200, await run_in_threadpool(answer_cached, ctx, intake, sha, cached)
        staged = await stage_uploads(files, ctx.tmp_dir / new_id("up"), budget=Budget.from_settings(settings), **caps)
    finally:
        await form.close()
    if series:
        staged.sha256 = series_key(staged.sha256, series)
    return await run_in_threadpool(analyse_staged, ctx, intake, staged, series)
