"""``POST /api/chat`` (answers streamed as server-sent events), the conversation, ``POST /process-image``.

Example:
    >>> sse("delta", {"text": "hi"})
    'event: delta\\ndata: {"text": "hi"}\\n\\n'
"""

from __future__ import annotations

import base64
import io
import json
import logging
from typing import Any

from fastapi import APIRouter, Depends, File, Form, Request, UploadFile
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import StreamingResponse

from ctlens.api import services
from ctlens.api.chat import study_prompt
from ctlens.api.models import ChatAnswer, ChatTurn, Conversation, ProcessedImage
from ctlens.api.problems import status_for
from ctlens.api.render import render_slice
from ctlens.api.routes_studies import ERRORS, PROBLEM, _owned, _ready
from ctlens.api.security import Caller, require_key
from ctlens.api.store import new_id
from ctlens.api.uploads import IMAGE_KINDS, stage_uploads
from ctlens.core.errors import CTLensError, LLMProviderError, ServiceError
from ctlens.llm.providers import ChatDone, ChatImage, ChatPrompt, TextDelta, get_provider

logger = logging.getLogger("ctlens.api")
router = APIRouter()

MAX_CHAT_IMAGES = 4
MAX_CHAT_IMAGE_BYTES = 10 * 1024**2


def sse(event: str, data: dict[str, Any]) -> str:
    """One server-sent event."""
    return f"event: {event}\ndata: {json.dumps(data)}\n\n"


async def _clean_images(ctx, files: list[UploadFile]) -> list[ChatImage]:
    """Uploaded chat images, checked by content and re-encoded as PNG (drops EXIF/text chunks that may hold PHI)."""
    from PIL import Image

    if len(files) > MAX_CHAT_IMAGES:
        raise ServiceError(f"{len(files)} images, at most {MAX_CHAT_IMAGES} per question", status=413)
    out = []
    for i, upload in enumerate(files):
        data = await upload.read(MAX_CHAT_IMAGE_BYTES + 1)
        if len(data) > MAX_CHAT_IMAGE_BYTES:
            raise ServiceError(f"image #{i + 1} is larger than {MAX_CHAT_IMAGE_BYTES} bytes", status=413)
        if not (data[:8] == b"\x89PNG\r\n\x1a\n" or data[:3] == b"\xff\xd8\xff"):
            raise ServiceError(f"image #{i + 1} is not a PNG or JPEG (checked from its content)", status=415)
        Image.MAX_IMAGE_PIXELS = ctx.settings.max_image_pixels
        try:
            image = Image.open(io.BytesIO(data))
            if image.width * image.height > ctx.settings.max_image_pixels:
                raise ServiceError(f"image #{i + 1} has too many pixels", status=413)
            image = image.convert("RGB") if image.mode not in ("L", "RGB") else image
            image.load()
        except ServiceError:
            raise
        except Exception as exc:
            raise ServiceError(f"image #{i + 1} cannot be decoded ({type(exc).__name__})", status=422) from None
        image.thumbnail((1568, 1568))
        buf = io.BytesIO()
        image.save(buf, "PNG")
        out.append(ChatImage(buf.getvalue(), label=f"image {i + 1} attached by the user"))
    return out


@router.post(
    "/api/chat",
    response_model=ChatAnswer,
    responses={200: {"content": {"text/event-stream": {}}}, 409: PROBLEM, 502: PROBLEM} | ERRORS,
    summary="Ask about a study and/or images; stream=true answers as server-sent events (delta, done)",
)
async def chat(
    request: Request,
    message: str = Form(..., min_length=1, max_length=4000),
    study_id: str | None = Form(None, max_length=64),
    stream: bool = Form(False),
    provider: str | None = Form(None, pattern="^(auto|anthropic|openai|gemini|offline)$"),
    images: list[UploadFile] | None = File(None),
    caller: Caller = Depends(require_key),
):
    ctx = request.app.state.ctx
    try:
        llm = get_provider(ctx.settings, provider)
    except LLMProviderError as exc:  # asked for a provider this server has no key for
        raise ServiceError(exc.reason, status=422, hint=exc.hint) from None
    extra = await _clean_images(ctx, images or [])
    history: list[tuple[str, str]] = []
    estimate, source = None, "none"
    if study_id:
        _, art = await run_in_threadpool(_ready, ctx, caller, study_id)
        history = [(m["role"], m["content"]) for m in ctx.store.messages(study_id, caller.id)]
        prompt, estimate, source = await run_in_threadpool(study_prompt, ctx, art, message, llm, history)
        prompt.images.extend(extra)
        ctx.store.audit(caller.id, "chat", study_id, f"{llm.name}:{source}")
    else:
        prompt = ChatPrompt(question=message, images=extra)
    meta = {"provider": llm.name, "model": llm.model, "images": len(prompt.images), "token_estimate": estimate}

    def finish(answer: str, done: ChatDone) -> dict[str, Any]:
        body = {"answer": answer, **done.as_dict(), "token_estimate": estimate, "images": len(prompt.images)}
        if study_id:
            ctx.store.add_message(study_id, caller.id, "user", message)
            ctx.store.add_message(study_id, caller.id, "assistant", answer, done.as_dict())
        request.app.state.metrics.llm_tokens.labels(llm.name, "input").inc(done.usage.input_tokens)
        request.app.state.metrics.llm_tokens.labels(llm.name, "output").inc(done.usage.output_tokens)
        return body | {"study_id": study_id}

    if not stream:
        answer, done = await run_in_threadpool(llm.answer, prompt)
        return ChatAnswer(**finish(answer, done))

    def events():
        yield sse("meta", meta)
        pieces: list[str] = []
        try:
            for event in llm.stream(prompt):
                if isinstance(event, TextDelta):
                    pieces.append(event.text)
                    yield sse("delta", {"text": event.text})
                else:
                    yield sse("done", finish("".join(pieces), event))
        except CTLensError as exc:
            yield sse("error", {"status": status_for(exc), "detail": exc.one_line()})
        except Exception as exc:  # never a traceback into the stream
            logger.error("chat stream failed: %s", type(exc).__name__)
            yield sse("error", {"status": 500, "detail": f"internal error ({type(exc).__name__})"})

    return StreamingResponse(events(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"})


@router.get(
    "/api/studies/{study_id}/chat", response_model=Conversation, responses=ERRORS, summary="The study's conversation"
)
def conversation(study_id: str, request: Request, caller: Caller = Depends(require_key)):
    ctx = request.app.state.ctx
    _owned(ctx, caller, study_id)
    turns = [ChatTurn(**m) for m in ctx.store.messages(study_id, caller.id, limit=200)]
    return Conversation(study_id=study_id, messages=turns)


@router.post(
    "/process-image",
    response_model=ProcessedImage,
    responses={413: PROBLEM, 415: PROBLEM, 503: PROBLEM} | ERRORS,
    summary="2-D ROI and heatmap of one PNG/JPEG image (nothing is stored)",
)
async def process_image(request: Request, file: UploadFile = File(...), caller: Caller = Depends(require_key)):

    ctx = request.app.state.ctx
    staged = await stage_uploads(
        [file],
        ctx.tmp_dir / new_id("img"),
        max_bytes=ctx.settings.max_upload_bytes,
        max_files=1,
    )
    try:
        if staged.kind not in IMAGE_KINDS:
            raise ServiceError("process-image takes one PNG or JPEG image", status=415)

        def work() -> dict[str, Any]:
            from ctlens.api.processing import _load

            volume, _ = _load(staged, None, ctx.settings.max_image_pixels)
            findings, heat, roi = services.analyze_image(staged.input_path, volume.shape)
            overlay = render_slice(volume.array, 0, overlay="both", modality=volume.modality, heatmap=heat, roi=roi)
            heat_png = None
            if heat is not None:
                heat_png = render_slice(heat.astype("int16"), 0, window="auto", modality="OT")
            return {
                "shape": list(volume.shape[1:]),
                "findings": findings,
                "analysis": {"status": "done", "reason": ""},
                "overlay_png": base64.b64encode(overlay).decode("ascii"),
                "heatmap_png": base64.b64encode(heat_png).decode("ascii") if heat_png else None,
            }

        try:
            body = await run_in_threadpool(work)
        except CTLensError as exc:
            if isinstance(exc, ServiceError):
                raise
            raise ServiceError(exc.reason, status=422) from None
    finally:
        staged.discard()
    ctx.store.audit(caller.id, "process-image")
    return ProcessedImage(**body)
