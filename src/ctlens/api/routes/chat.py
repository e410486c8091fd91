"""Chat routes: ``POST /api/chat`` (answers streamed as server-sent events), a study's conversation, its payload.

Example:
    >>> sorted(r.path for r in router.routes)
    ['/api/chat', '/api/studies/{study_id}/chat', '/api/studies/{study_id}/payload']
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, File, Form, Query, UploadFile
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import StreamingResponse

from ctlens.api import answers
from ctlens.api.chat import payload_summary
from ctlens.api.deps import Caller, Ctx, OwnedStudy, ReadyStudy
from ctlens.api.problems import ERRORS, PROBLEM
from ctlens.api.schemas import ChatAnswer, Conversation

router = APIRouter()


@router.post(
    "/api/chat",
    response_model=ChatAnswer,
    responses={200: {"content": {"text/event-stream": {}}}, 409: PROBLEM, 502: PROBLEM} | ERRORS,
    summary="Ask about a study and/or images; stream=true answers as server-sent events (delta, done)",
)
async def chat(
    ctx: Ctx,
    caller: Caller,
    message: str = Form(..., min_length=1, max_length=4000),
    study_id: str | None = Form(None, max_length=64),
    stream: bool = Form(False),
    provider: str | None = Form(None, pattern="^(auto|anthropic|openai|gemini|offline)$"),
    images: list[UploadFile] | None = File(None),
):
    question = await answers.ask(ctx, caller.id, message, study_id, provider, images or [])
    if not stream:
        return await run_in_threadpool(question.answer)
    return StreamingResponse(question.events(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"})


@router.get(
    "/api/studies/{study_id}/chat", response_model=Conversation, responses=ERRORS, summary="The study's conversation"
)
def conversation(study_id: str, study: OwnedStudy, ctx: Ctx, caller: Caller):
    return answers.conversation(ctx, caller.id, study_id)


@router.get(
    "/api/studies/{study_id}/payload",
    responses={409: PROBLEM, 503: PROBLEM} | ERRORS,
    summary="The de-identified LLM payload that a chat question about this study would send",
)
def study_payload(
    study_id: str,
    art: ReadyStudy,
    ctx: Ctx,
    caller: Caller,
    question: str = Query("Describe the key findings.", max_length=4000),
    provider: str = Query("anthropic", pattern="^(anthropic|openai|gemini)$"),
) -> dict[str, Any]:
    ctx.store.audit(caller.id, "export", study_id, f"payload:{provider}")
    return payload_summary(ctx, art, question, provider)
