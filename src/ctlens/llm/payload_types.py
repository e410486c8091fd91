"""What a payload is: :class:`Payload`, its :class:`PayloadImage` s and their :class:`Tile` records, and ``Box``.

A payload is built by :func:`ctlens.llm.payload.build_payload`; its request body for a provider is
:func:`ctlens.llm.providers.formats.payload_request`. Here: the records, as plain JSON (:meth:`Payload.to_dict`,
:meth:`Payload.save_json`) and as one PNG to look at (:meth:`Payload.save_preview`).

Example:
    >>> t = Tile(3, 7.5, "lung", (10, 50, 0, 64), 1.0, (0, 14, 64, 54))
    >>> t.shows((3, 4, 12, 40, 8, 60)), t.shows((3, 4, 0, 60, 8, 60))
    (True, False)
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ctlens.llm.providers.base import ChatImage
from ctlens.llm.providers.formats import payload_request

__all__ = ["Box", "Payload", "PayloadImage", "Tile"]

Box = tuple[int, int, int, int, int, int]
"""``(z0, z1, y0, y1, x0, x1)`` voxel indices, half-open like Python slices."""


@dataclass(frozen=True)
class Tile:
    """What one tile of an image shows: slice, window, voxel region, and how large it is drawn."""

    slice_index: int
    z_mm: float
    window: str
    region: tuple[int, int, int, int]
    """``(y0, y1, x0, x1)`` half-open voxel bounds shown."""
    scale: float
    """Image pixels per voxel (the smaller of the row and column scales), as the model sees it."""
    pixel_box: tuple[int, int, int, int]
    """``(x0, y0, x1, y1)`` of the tile's pixels in the image (label band excluded)."""
    kind: str = "montage"

    def shows(self, box: Box) -> bool:
        """True when this tile shows slice ``z`` of ``box`` and its whole in-plane extent."""
        z0, z1, y0, y1, x0, x1 = box
        ry0, ry1, rx0, rx1 = self.region
        return z0 <= self.slice_index < z1 and ry0 <= y0 and y1 <= ry1 and rx0 <= x0 and x1 <= rx1

    def to_dict(self) -> dict[str, Any]:
        """The record as plain JSON types."""
        return {
            "slice_index": self.slice_index,
            "z_mm": self.z_mm,
            "window": self.window,
            "region_yx": list(self.region),
            "scale": self.scale,
            "pixel_box": list(self.pixel_box),
            "kind": self.kind,
        }


@dataclass
class PayloadImage:
    """One PNG of the payload, its cost and what it shows."""

    png: bytes
    width: int
    height: int
    tokens: int
    provider_size: tuple[int, int]
    title: str
    tiles: list[Tile] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """The record as plain JSON types (the PNG by its size only)."""
        return {
            "title": self.title,
            "width": self.width,
            "height": self.height,
            "tokens": self.tokens,
            "png_bytes": len(self.png),
            "tiles": [t.to_dict() for t in self.tiles],
        }


@dataclass
class Payload:
    """A ready-to-send payload; see :func:`ctlens.llm.payload.build_payload`."""

    provider: str
    model: str
    detail: str | None
    question: str
    text: str
    facts: dict[str, Any]
    images: list[PayloadImage]
    image_tokens: int
    text_token_bound: int
    token_estimate: int
    token_budget: int

    def chat_images(self) -> list[ChatImage]:
        """The images as chat images (PNG bytes labelled with their titles), in order."""
        return [ChatImage(im.png, im.title) for im in self.images]

    def to_dict(self, *, include_request: bool = True) -> dict[str, Any]:
        """Everything as plain JSON types: accounting, text, facts, image records, and the request."""
        out: dict[str, Any] = {
            "provider": self.provider,
            "model": self.model,
            "detail": self.detail,
            "token_budget": self.token_budget,
            "token_estimate": self.token_estimate,
            "image_tokens": self.image_tokens,
            "text_token_bound": self.text_token_bound,
            "question": self.question,
            "text": self.text,
            "facts": self.facts,
            "images": [im.to_dict() for im in self.images],
        }
        if include_request:
            out["request"] = payload_request(self)
        return out

    def save_json(self, path: str | Path) -> Path:
        """Write :meth:`to_dict` as JSON atomically (no half-written file on failure)."""
        from ctlens.io.files import atomic_output

        with atomic_output(path) as tmp:
            tmp.write_text(json.dumps(self.to_dict(), indent=1))
        return Path(path)

    def save_preview(self, path: str | Path) -> Path:
        """Write all images, one under the other, as one PNG (to look at what is sent)."""
        from PIL import Image

        from ctlens.io.files import atomic_output
        from ctlens.llm.labelled_montage import encode_png

        pics = [Image.open(io.BytesIO(im.png)).convert("RGB") for im in self.images]
        width = max(p.width for p in pics)
        height = sum(p.height for p in pics) + 8 * (len(pics) - 1)
        sheet = Image.new("RGB", (width, height), (40, 40, 40))
        y = 0
        for p in pics:
            sheet.paste(p, (0, y))
            y += p.height + 8
        with atomic_output(path) as tmp:
            tmp.write_bytes(encode_png(sheet))
        return Path(path)
