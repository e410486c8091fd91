"""2-D images people send besides studies: chat attachments (checked, re-encoded) and ``POST /process-image``.

A chat attachment must be a PNG or JPEG by its content, within the byte and pixel caps; it is decoded and
re-encoded as PNG, which drops EXIF and text chunks that may hold PHI (:func:`clean_chat_images`). An image sent
to ``/process-image`` is staged like an upload, analysed in 2-D (ROI and heatmap) and answered as PNGs; nothing
is stored (:func:`process_image`).

Example:
    >>> MAX_CHAT_IMAGES, MAX_CHAT_IMAGE_BYTES // 1024**2
    (4, 10)
"""

from __future__ import annotations

import base64
import io
from typing import TYPE_CHECKING, Any

from fastapi.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from ctlens.api import services
from ctlens.api.processing import load_staged
from ctlens.api.slice_png import render_slice
from ctlens.api.store import new_id
from ctlens.api.uploads import IMAGE_KINDS, StagedUpload, stage_uploads
from ctlens.core.errors import CTLensError, ServiceError
from ctlens.core.settings import Settings
from ctlens.llm.providers import ChatImage

if TYPE_CHECKING:
    from ctlens.api.context import ServiceContext

MAX_CHAT_IMAGES = 4
MAX_CHAT_IMAGE_BYTES = 10 * 1024**2


async def clean_chat_images(settings: Settings, files: list[UploadFile]) -> list[ChatImage]:
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
        Image.MAX_IMAGE_PIXELS = settings.max_image_pixels
        try:
            image = Image.open(io.BytesIO(data))
            if image.width * image.height > settings.max_image_pixels:
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


def _image_findings(staged: StagedUpload, max_image_pixels: int) -> dict[str, Any]:
    """The 2-D analysis of a staged image: findings, the image with overlays and the heatmap, as base64 PNGs."""
    volume, _ = load_staged(staged, None, max_image_pixels)
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


async def process_image(ctx: ServiceContext, owner: str, file: UploadFile) -> dict[str, Any]:
    """``POST /process-image``: one PNG/JPEG staged, analysed in a worker thread, discarded; audited."""
    staged = await stage_uploads(
        [file],
        ctx.tmp_dir / new_id("img"),
        max_bytes=ctx.settings.max_upload_bytes,
        max_files=1,
    )
    try:
        if staged.kind not in IMAGE_KINDS:
            raise ServiceError("process-image takes one PNG or JPEG image", status=415)
        try:
            body = await run_in_threadpool(_image_findings, staged, ctx.settings.max_image_pixels)
        except CTLensError as exc:
            if isinstance(exc, ServiceError):
                raise
            raise ServiceError(exc.reason, status=422) from None
    finally:
        staged.discard()
    ctx.store.audit(owner, "process-image")
    return body
