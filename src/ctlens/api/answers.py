"""Answering a chat question: the provider, the prompt, a whole answer or server-sent events, the conversation.

:func:`ask` prepares one :class:`Question`: the provider asked for (422 when this server has none for it), the
attached images (:func:`ctlens.api.images.clean_chat_images`) and, for a question about a study, the prompt
built from its stored artifacts (:func:`ctlens.api.chat.study_prompt`) with the study's conversation so far.
:meth:`Question.answer` answers at once, :meth:`Question.events` streams ``meta``, ``delta``... ``done`` (or
``error``) events; either way the turn is kept in the study's conversation and the tokens are counted.

Example:
    >>> sse("delta", {"text": "hi"})
    'event: delta\\ndata: {"text": "hi"}\\n\\n'
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from fastapi.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from ctlens.api.chat import study_prompt
from ctlens.api.images import clean_chat_images
from ctlens.api.problems import status_for
from ctlens.api.schemas import ChatAnswer, ChatTurn, Conversation
from ctlens.api.studies import ready_study
from ctlens.core.errors import CTLensError, LLMProviderError, ServiceError
from ctlens.llm.providers import ChatDone, ChatPrompt, Provider, TextDelta, get_provider

if TYPE_CHECKING:
    from ctlens.api.context import ServiceContext

logger = logging.getLogger("ctlens.api")


def sse(event: str, data: dict[str, Any]) -> str:
    """One server-sent event."""
    return f"event: {event}\ndata: {json.dumps(data)}\n\n"


@dataclass
class Question:
    """One prepared chat turn: who asks what, about which study, of which provider, with which prompt."""

    ctx: ServiceContext
    owner: str
    message: str
    study_id: str | None
    llm: Provider
    prompt: ChatPrompt
    estimate: int | None = None

    def meta(self) -> dict[str, Any]:
        """The stream's first event: provider, model, number of images, token estimate."""
        llm = self.llm
        return {
            "provider": llm.name,
            "model": llm.model,
            "images": len(self.prompt.images),
            "token_estimate": self.estimate,
        }

    def finish(self, answer: str, done: ChatDone) -> dict[str, Any]:
        """The answer's JSON; the turn is added to the study's conversation and the tokens are counted."""
        body = {"answer": answer, **done.as_dict(), "token_estimate": self.estimate, "images": len(self.prompt.images)}
        store = self.ctx.store
        if self.study_id:
            store.add_message(self.study_id, self.owner, "user", self.message)
            store.add_message(self.study_id, self.owner, "assistant", answer, done.as_dict())
        self.ctx.metrics.llm_tokens.labels(self.llm.name, "input").inc(done.usage.input_tokens)
        self.ctx.metrics.llm_tokens.labels(self.llm.name, "output").inc(done.usage.output_tokens)
        return body | {"study_id": self.study_id}

    def answer(self) -> ChatAnswer:
        """The whole answer (blocks on the provider)."""
        answer, done = self.llm.answer(self.prompt)
        return ChatAnswer(**self.finish(answer, done))

    def events(self) -> Iterator[str]:
        """The answer as server-sent events; a failure is one ``error`` event, never a traceback."""
        yield sse("meta", self.meta())
        pieces: list[str] = []
        try:
            for event in self.llm.stream(self.prompt):
                if isinstance(event, TextDelta):
                    pieces.append(event.text)
                    yield sse("delta", {"text": event.text})
                else:
                    yield sse("done", self.finish("".join(pieces), event))
        except CTLensError as exc:
            yield sse("error", {"status": status_for(exc), "detail": exc.one_line()})
        except Exception as exc:  # never a traceback into the stream
            logger.error("chat stream failed: %s", type(exc).__name__)
            yield sse("error", {"status": 500, "detail": f"internal error ({type(exc).__name__})"})


async def ask(
    ctx: ServiceContext,
    owner: str,
    message: str,
    study_id: str | None,
    provider: str | None,
    images: list[UploadFile],
) -> Question:
    """Prepare ``owner``'s question (about their ready study ``study_id``, if given); audited per study."""
    try:
        llm = get_provider(ctx.settings, provider)
    except LLMProviderError as exc:  # asked for a provider this server has no key for
        raise ServiceError(exc.reason, status=422, hint=exc.hint) from None
    extra = await clean_chat_images(ctx.settings, images)
    if not study_id:
        return Question(ctx, owner, message, None, llm, ChatPrompt(question=message, images=extra))
    art = await run_in_threadpool(ready_study, ctx, owner, study_id)
    history = [(m["role"], m["content"]) for m in ctx.store.messages(study_id, owner)]
    prompt, estimate, source = await run_in_threadpool(study_prompt, ctx, art, message, llm, history)
    prompt.images.extend(extra)
    ctx.store.audit(owner, "chat", study_id, f"{llm.name}:{source}")
    return Question(ctx, owner, message, study_id, llm, prompt, estimate)


def conversation(ctx: ServiceContext, owner: str, study_id: str) -> Conversation:
    """The conversation about ``owner``'s study (the last 200 turns)."""
    turns = [ChatTurn(**m) for m in ctx.store.messages(study_id, owner, limit=200)]
    return Conversation(study_id=study_id, messages=turns)
