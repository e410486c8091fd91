"""One interface for every LLM provider: a prompt in, streamed text and the token use out.

A :class:`ChatPrompt` holds only de-identified material: the system text, earlier turns of the
conversation, the question and key images (PNG bytes rendered from pixel data, never DICOM headers).
A provider's :meth:`Provider.stream` yields :class:`TextDelta` pieces and ends with one :class:`ChatDone`
carrying the token use and an estimated cost.

Example:
    >>> prompt = ChatPrompt(question="Any nodules?", context="3 candidates", images=[])
    >>> prompt.user_text().startswith("Any nodules?")
    True
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass, field

from ctlens.llm.providers.pricing import estimate_cost_usd

DEFAULT_SYSTEM = (
    "You are a radiology assistant looking at de-identified CT images and automatic measurements. "
    "Answer briefly and concretely, say what you are unsure about, and never give a diagnosis as certain: "
    "a clinician must confirm every finding."
)


@dataclass(frozen=True)
class ChatImage:
    """One image sent to the model (PNG or JPEG bytes) and the label that tells it what it shows."""

    data: bytes
    label: str = ""
    media_type: str = "image/png"


@dataclass
class ChatPrompt:
    """What a provider sends: system text, earlier turns, the question, study context and images."""

    question: str
    context: str = ""
    images: list[ChatImage] = field(default_factory=list)
    history: list[tuple[str, str]] = field(default_factory=list)
    """Earlier ``(role, text)`` turns, role ``"user"`` or ``"assistant"``, oldest first."""
    system: str = DEFAULT_SYSTEM

    def user_text(self) -> str:
        """The question followed by the study context and image labels, as one text block."""
        parts = [self.question.strip()]
        if self.context:
            parts.append("Study context (automatic, de-identified):\n" + self.context.strip())
        labels = [f"image {i + 1}: {img.label}" for i, img in enumerate(self.images) if img.label]
        if labels:
            parts.append("Images:\n" + "\n".join(labels))
        return "\n\n".join(parts)


@dataclass(frozen=True)
class Usage:
    """Tokens the provider counted (or the offline provider estimated)."""

    input_tokens: int = 0
    output_tokens: int = 0


@dataclass(frozen=True)
class TextDelta:
    """A piece of the streamed answer."""

    text: str


@dataclass(frozen=True)
class ChatDone:
    """The end of an answer: provider, model, token use and estimated cost in USD (None if unknown)."""

    provider: str
    model: str
    usage: Usage
    cost_usd: float | None
    offline: bool = False

    def as_dict(self) -> dict:
        """JSON-ready summary."""
        return {
            "provider": self.provider,
            "model": self.model,
            "input_tokens": self.usage.input_tokens,
            "output_tokens": self.usage.output_tokens,
            "cost_usd": self.cost_usd,
            "offline": self.offline,
        }


ChatEvent = TextDelta | ChatDone


class Provider(ABC):
    """A chat model behind one interface; subclasses wrap one official SDK."""

    name: str = "provider"
    offline: bool = False

    def __init__(self, model: str, *, max_output_tokens: int = 1024) -> None:
        self.model = model
        self.max_output_tokens = max_output_tokens

    @abstractmethod
    def stream(self, prompt: ChatPrompt) -> Iterator[ChatEvent]:
        """Yield :class:`TextDelta` pieces, then exactly one :class:`ChatDone`."""

    def answer(self, prompt: ChatPrompt) -> tuple[str, ChatDone]:
        """The whole answer and its :class:`ChatDone` (collects :meth:`stream`)."""
        pieces: list[str] = []
        done: ChatDone | None = None
        for event in self.stream(prompt):
            if isinstance(event, TextDelta):
                pieces.append(event.text)
            else:
                done = event
        assert done is not None, "a provider must end its stream with ChatDone"
        return "".join(pieces), done

    def done(self, usage: Usage) -> ChatDone:
        """The closing event with the cost estimated from :mod:`ctlens.llm.providers.pricing`."""
        return ChatDone(
            provider=self.name,
            model=self.model,
            usage=usage,
            cost_usd=estimate_cost_usd(self.name, self.model, usage.input_tokens, usage.output_tokens),
            offline=self.offline,
        )
