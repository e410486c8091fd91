"""Zero-shot finding probabilities: "{finding} is present." vs "{finding} is not present.", softmaxed.

For each finding the positive and negative prompts are embedded (averaged over a prompt ensemble when
several template pairs are given, then re-normalised, as in CLIP's prompt ensembling; Radford et al.
2021), and ``p = softmax(scale * [v . t_pos, v . t_neg])[0]`` for each volume embedding ``v``
(CT-CLIP's zero-shot protocol, Hamamci et al. 2024).

Zero-shot means the prompts are not sentences the model was trained on. :func:`prompt_leaks` checks that
(the evaluation calls it with the training reports): a prompt leaks when, with its finding filled in (final
full stop dropped), it occurs in a training report, or when the template's fixed words frame a whole
training sentence (the finding slot standing for any words: ``"There is {finding}."`` leaks on
``"There is pleural fluid."``).
:data:`PROMPT_ENSEMBLE` avoids the synthetic benchmark's report templates (tested on every generated report).

Example:
    >>> import torch
    >>> from ctlens.models.clip3d import build_model, load_config
    >>> model = build_model(load_config("ctclip-tiny")).eval()
    >>> with torch.no_grad():
    ...     p = finding_probabilities(model, torch.nn.functional.normalize(torch.randn(3, 64), dim=-1), ["Emphysema"])
    >>> tuple(p.shape), bool(((p > 0) & (p < 1)).all())
    ((3, 1), True)
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

import torch
import torch.nn.functional as F

__all__ = ["DEFAULT_PROMPTS", "PROMPT_ENSEMBLE", "finding_probabilities", "prompt_embeddings", "prompt_leaks"]

DEFAULT_PROMPTS: tuple[tuple[str, str], ...] = (("{finding} is present.", "{finding} is not present."),)
"""CT-CLIP's template pair."""

PROMPT_ENSEMBLE: tuple[tuple[str, str], ...] = (
    ("{finding} is present.", "{finding} is not present."),
    ("Presence of {finding}.", "Absence of {finding}."),
    ("The scan shows {finding}.", "The scan shows no {finding}."),
    ("Positive for {finding}.", "Negative for {finding}."),
)
"""An optional ensemble of (positive, negative) template pairs; none of them is a synthetic report template."""

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


def _norm(text: str) -> str:
    return " ".join(str(text).lower().split())


def _frame(template: str) -> re.Pattern[str]:
    head, _, tail = _norm(template).partition("{finding}")
    return re.compile(re.escape(head) + r"[a-z0-9 ,'/()-]{1,60}?" + re.escape(tail) + "$")


def prompt_leaks(
    templates: Sequence[tuple[str, str]], findings: Sequence[str], reports: Iterable[str]
) -> list[dict[str, object]]:
    """Prompts that are not zero-shot for these training ``reports`` (module doc); ``[]`` when none leaks.

    Each leak: ``{"prompt", "kind" ("prompt text" | "template frame"), "reports" (how many), "example"}``.
    Case and spacing are ignored.

    Example:
        >>> leaks = prompt_leaks([("There is {finding}.", "No {finding}.")], ["Emphysema"],
        ...                      ["There is pleural fluid. Bones are normal.", "Normal."])
        >>> [(x["prompt"], x["kind"], x["reports"]) for x in leaks]
        [('There is {finding}.', 'template frame', 1)]
        >>> prompt_leaks([("{finding} is present.", "{finding} is not present.")], ["Emphysema"], ["No emphysema."])
        []
    """
    texts = [_norm(r) for r in reports if r]
    sentences = [[s for s in _SENTENCE_END.split(t) if s] for t in texts]
    leaks: list[dict[str, object]] = []
    for template in dict.fromkeys(t for pair in templates for t in pair):
        filled = [_norm(template.format(finding=f)).rstrip(".!?") for f in findings]  # also mid-sentence
        hits = [t for t in texts if any(f in t for f in filled)]
        if hits:
            leaks.append({"prompt": template, "kind": "prompt text", "reports": len(hits), "example": hits[0][:120]})
            continue
        frame = _frame(template)
        framed = [next(s for s in sent if frame.match(s)) for sent in sentences if any(frame.match(s) for s in sent)]
        if framed:
            leaks.append({"prompt": template, "kind": "template frame", "reports": len(framed), "example": framed[0]})
    return leaks


def prompt_embeddings(
    model: torch.nn.Module, findings: Sequence[str], templates: Sequence[tuple[str, str]] = DEFAULT_PROMPTS
) -> torch.Tensor:
    """``[len(findings), 2, embed_dim]``: normalised (ensemble-mean) positive and negative prompt embeddings."""
    texts = [tpl.format(finding=f) for f in findings for pair in templates for tpl in pair]
    emb = model.encode_text(texts).reshape(len(findings), len(templates), 2, -1)
    return F.normalize(emb.mean(dim=1), dim=-1)


def finding_probabilities(
    model: torch.nn.Module,
    volume_embeddings: torch.Tensor,
    findings: Sequence[str],
    templates: Sequence[tuple[str, str]] = DEFAULT_PROMPTS,
    prompts: torch.Tensor | None = None,
) -> torch.Tensor:
    """``[n_volumes, n_findings]`` probabilities that each finding is present (module doc).

    ``prompts`` (from :func:`prompt_embeddings`) skips re-encoding the texts.
    """
    if prompts is None:
        prompts = prompt_embeddings(model, findings, templates)
    prompts = prompts.to(volume_embeddings.device, volume_embeddings.dtype)
    logits = torch.einsum("ne,fce->nfc", volume_embeddings, prompts) * model.scale().to(volume_embeddings.dtype)
    return logits.softmax(dim=-1)[..., 0]
