"""Visual tower part 1: a DINOv2 ViT (``transformers.Dinov2Model``) applied to every slice of a volume.

Weights: ``VisionConfig.pretrained`` names a local directory or a Hugging Face id that is looked up in
the local cache only (``local_files_only=True``, no network); the same weights as the
``facebook/dinov2-*`` releases. When nothing is found the backbone is built from the config with random
weights (right when a checkpoint's weights are loaded next). The choice is logged (INFO) and kept in
:attr:`SliceEncoder.weights_source`. Training entry points call :func:`require_backbone_weights` first: it refuses
to start from random weights when the config names weights that are not there, says where it looked, and lets
``allow_random_init=True`` (``--allow-random-init``) through.

Example:
    >>> import torch
    >>> from ctlens.models.clip3d.config import VisionConfig
    >>> enc = SliceEncoder(VisionConfig(image_size=16, patch_size=8, hidden_size=32, num_hidden_layers=1,
    ...                                 num_attention_heads=2))
    >>> tuple(enc(torch.zeros(2, 5, 24, 24, dtype=torch.uint8)).shape), enc.weights_source
    ((2, 5, 32), 'random init')
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch
from torch import nn

from ctlens.core.errors import InputNotFoundError
from ctlens.models.clip3d.config import VisionConfig
from ctlens.models.clip3d.slice_input import hu_windows_to_unit, slices_to_backbone_input

__all__ = ["BackboneWeightsError", "SliceEncoder", "backbone_weights", "load_dinov2", "require_backbone_weights"]

log = logging.getLogger(__name__)

POOLS = ("cls", "mean", "max", "mean_max")
"""Per-slice read-outs: the CLS token, the mean or max of the patch tokens, or mean and max concatenated."""


class BackboneWeightsError(InputNotFoundError):
    """Training would start from a randomly initialised DINOv2 because the named weights were not found."""


_WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")


def backbone_weights(cfg: VisionConfig) -> tuple[bool, str]:
    """``(found, where)``: whether ``cfg.pretrained`` can be loaded offline, and where it was looked for.

    ``pretrained=None`` asks for random weights: ``(False, "random init requested by the config")``.

    Example:
        >>> backbone_weights(VisionConfig(pretrained="/no/such/dinov2"))
        (False, 'directory /no/such/dinov2 (no such directory)')
    """
    if not cfg.pretrained:
        return False, "random init requested by the config"
    path = Path(cfg.pretrained)
    if path.exists() or "/" in cfg.pretrained and cfg.pretrained.startswith((".", "/", "~")):
        if not path.is_dir():
            return False, f"directory {path} (no such directory)"
        found = (path / "config.json").is_file() and any((path / f).is_file() for f in _WEIGHT_FILES)
        return found, f"directory {path}" + ("" if found else f" (needs config.json and one of {_WEIGHT_FILES})")
    from huggingface_hub import constants, try_to_load_from_cache

    cache = constants.HF_HUB_CACHE
    try:
        config = try_to_load_from_cache(cfg.pretrained, "config.json", cache_dir=cache)
        weights = [try_to_load_from_cache(cfg.pretrained, f, cache_dir=cache) for f in _WEIGHT_FILES]
    except ValueError as exc:  # not a valid repo id
        return False, f"Hugging Face cache {cache} ({exc})"
    found = isinstance(config, str) and any(isinstance(w, str) for w in weights)
    return found, f"Hugging Face cache {cache} for {cfg.pretrained} (offline; HF_HOME / HF_HUB_CACHE move it)"


def require_backbone_weights(cfg: VisionConfig, allow_random_init: bool = False) -> str:
    """Where the backbone weights come from; :class:`BackboneWeightsError` when they are named but missing.

    A config with ``pretrained=None`` asks for random weights itself and passes. With ``allow_random_init`` a
    missing backbone is accepted (and said so in the returned text).

    Example:
        >>> require_backbone_weights(VisionConfig(pretrained="/no/such/dinov2"), allow_random_init=True)
        'random init (allowed): weights not found in directory /no/such/dinov2 (no such directory)'
    """
    found, where = backbone_weights(cfg)
    if found:
        return f"pretrained {cfg.pretrained} from {where}"
    if not cfg.pretrained:
        return where
    if allow_random_init:
        return f"random init (allowed): weights not found in {where}"
    raise BackboneWeightsError(
        f"DINOv2 weights {cfg.pretrained!r} not found; looked in {where}",
        hint="download them once (huggingface-cli download facebook/dinov2-base) or name a local folder, "
        "or pass --allow-random-init to train from random weights on purpose",
    )


def load_dinov2(cfg: VisionConfig) -> tuple[nn.Module, str]:
    """``(Dinov2Model, source)``: pretrained from a local dir / the HF cache when present, else random init."""
    from transformers import Dinov2Config, Dinov2Model

    if cfg.pretrained:
        try:
            model = Dinov2Model.from_pretrained(cfg.pretrained, local_files_only=True)
            source = f"pretrained {cfg.pretrained}"
            if model.config.hidden_size != cfg.hidden_size:
                log.warning(
                    "DINOv2 %s has hidden size %d, config says %d: using the weights' architecture",
                    cfg.pretrained,
                    model.config.hidden_size,
                    cfg.hidden_size,
                )
            log.info("CLIP3D visual backbone: %s", source)
            return model, source
        except (OSError, ValueError) as exc:
            where = "directory" if Path(cfg.pretrained).exists() else "local Hugging Face cache"
            log.warning(
                "CLIP3D visual backbone: %s not usable from the %s (%s); random init",
                cfg.pretrained,
                where,
                str(exc).splitlines()[0][:200],
            )
    config = Dinov2Config(
        image_size=cfg.image_size,
        patch_size=cfg.patch_size,
        hidden_size=cfg.hidden_size,
        num_hidden_layers=cfg.num_hidden_layers,
        num_attention_heads=cfg.num_attention_heads,
        mlp_ratio=cfg.mlp_ratio,
    )
    log.info("CLIP3D visual backbone: random init (%d layers, width %d)", cfg.num_hidden_layers, cfg.hidden_size)
    return Dinov2Model(config), "random init"


class SliceEncoder(nn.Module):
    """``[B, D, H, W]`` volume batch -> ``[B, D, C]`` slice features from a per-slice DINOv2."""

    def __init__(self, cfg: VisionConfig, hu_range: tuple[float, float] = (-1000.0, 1000.0)) -> None:
        super().__init__()
        self.cfg = cfg
        self.windows = hu_windows_to_unit(cfg.windows, hu_range) if cfg.windows else None
        self.backbone, self.weights_source = load_dinov2(cfg)
        if cfg.pool not in POOLS:
            raise ValueError(f"vision.pool must be one of {POOLS}, got {cfg.pool!r}")
        self.width = int(self.backbone.config.hidden_size) * (2 if cfg.pool == "mean_max" else 1)
        self.image_size = int(cfg.image_size)
        if cfg.grad_checkpointing and not cfg.freeze:
            enable = getattr(self.backbone, "activation_checkpointing_enable", None)  # transformers >= 5 name
            (enable or self.backbone.gradient_checkpointing_enable)()
        if cfg.freeze:
            self.backbone.requires_grad_(False)
        mask_token = getattr(getattr(self.backbone, "embeddings", None), "mask_token", None)
        if isinstance(mask_token, nn.Parameter):
            mask_token.requires_grad_(False)  # only used for masked-image pretraining; unused here (and by DDP)

    def _features(self, pixels: torch.Tensor) -> torch.Tensor:
        hidden = self.backbone(pixel_values=pixels).last_hidden_state  # [N, 1 + patches, C] (after layernorm)
        patches = hidden[:, 1:]
        if self.cfg.pool == "cls":
            return hidden[:, 0]
        if self.cfg.pool == "max":
            return patches.amax(dim=1)
        if self.cfg.pool == "mean_max":  # mean for diffuse change, max for small local findings
            return torch.cat([patches.mean(dim=1), patches.amax(dim=1)], dim=-1)
        return patches.mean(dim=1)

    def forward(self, volumes: torch.Tensor) -> torch.Tensor:
        b, d = volumes.shape[:2]
        dtype = next(self.backbone.parameters()).dtype
        pixels = slices_to_backbone_input(
            volumes, self.image_size, self.cfg.mean, self.cfg.std, dtype=dtype, windows=self.windows
        )
        chunk = self.cfg.slice_chunk or pixels.shape[0]
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.cfg.freeze):
            feats = [self._features(pixels[i : i + chunk]) for i in range(0, pixels.shape[0], chunk)]
        return torch.cat(feats).reshape(b, d, -1)
