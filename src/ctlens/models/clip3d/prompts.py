"""Zero-shot finding probabilities: "{finding} is present." vs "{finding} is not present.", softmaxed.

For each finding the positive and negative prompts are embedded (averaged over a prompt ensemble when
several template pairs are given, then re-normalised, as in CLIP's prompt ensembling; Radford et al.
2021), and ``p = softmax(scale * [v . t_pos, v . t_neg])[0]`` for each volume embedding ``v``
(CT-CLIP's zero-shot protocol, Hamamci et al. 2024).

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

from collections.abc import Sequence

import torch
import torch.nn.functional as F

__all__ = ["DEFAULT_PROMPTS", "PROMPT_ENSEMBLE", "finding_probabilities", "prompt_embeddings"]

DEFAULT_PROMPTS: tuple[tuple[str, str], ...] = (("{finding} is present.", "{finding} is not present."),)
"""CT-CLIP's template pair."""

PROMPT_ENSEMBLE: tuple[tuple[str, str], ...] = (
    ("{finding} is present.", "{finding} is not present."),
    ("There is {finding}.", "There is no {finding}."),
    ("{finding} is seen.", "No {finding} is seen."),
    ("Findings consistent with {finding}.", "No evidence of {finding}."),
)
"""An optional ensemble of (positive, negative) template pairs."""


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
