"""YAML configs for the slice-interpolation VAE and latent diffusion training (``config/*.yaml``).

Sections: ``data`` (paths, factor, depth, patch, simulation, axis), ``model`` (``vae``, ``unet``,
``diffusion``), ``train`` (out_dir, steps, batch_size, lr, seed, amp, device, val_every, save_every,
...) and, for the diffusion model, ``vae_checkpoint``. Unknown keys are an error (typos never pass
silently). Relative paths are taken from the directory the command runs in.

Example:
    >>> cfg = TrainConfig.from_dict({"train": {"steps": 3}, "data": {"factor": 2, "depth": 4}})
    >>> cfg.train.steps, cfg.data.factor, cfg.model.vae.latent_channels
    (3, 2, 4)
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ctlens.core.errors import InterpolationError
from ctlens.models.ldm import DiffusionConfig, UNetConfig, VAEConfig

__all__ = ["DataSection", "ModelSection", "TrainConfig", "TrainSection", "load_config"]


@dataclass
class DataSection:
    paths: list[str] = field(default_factory=lambda: ["../shared/data"])
    val_paths: list[str] = field(default_factory=list)
    factor: int = 4
    depth: int = 16
    patch: int = 64
    simulation: str = "slab"
    axis: str = "auto"
    slices_per_item: int = 4
    """VAE training: slices taken from each item's thin stack."""


@dataclass
class ModelSection:
    vae: VAEConfig = field(default_factory=VAEConfig)
    unet: UNetConfig = field(default_factory=UNetConfig)
    diffusion: DiffusionConfig = field(default_factory=DiffusionConfig)


@dataclass
class TrainSection:
    out_dir: str = "runs/ldm"
    steps: int = 10000
    batch_size: int = 2
    lr: float = 1e-4
    weight_decay: float = 0.0
    seed: int = 0
    amp: bool = True
    device: str = "auto"
    val_every: int = 500
    save_every: int = 1000
    val_sampling_steps: int = 20
    resume: str = "auto"
    """``auto`` (latest checkpoint in out_dir if any), ``none`` or a checkpoint path."""


@dataclass
class TrainConfig:
    data: DataSection = field(default_factory=DataSection)
    model: ModelSection = field(default_factory=ModelSection)
    train: TrainSection = field(default_factory=TrainSection)
    vae_checkpoint: str | None = None

    @classmethod
    def from_dict(cls, raw: dict[str, Any], source: str = "config") -> TrainConfig:
        """Build from a nested dict, rejecting unknown keys with an error naming ``source``."""

        def build(kind: type, values: Any, where: str) -> Any:
            if values is None:
                return kind()
            if not isinstance(values, dict):
                raise InterpolationError(f"{where} must be a mapping, got {type(values).__name__}", path=source)
            known = {f.name: f for f in dataclasses.fields(kind)}
            unknown = sorted(set(values) - set(known))
            if unknown:
                raise InterpolationError(
                    f"unknown key(s) {', '.join(unknown)} in {where}", path=source, hint=f"known: {', '.join(known)}"
                )
            kwargs = {}
            for name, value in values.items():
                sub = {"vae": VAEConfig, "unet": UNetConfig, "diffusion": DiffusionConfig}.get(name)
                if where == "model" and sub is not None:
                    kwargs[name] = build(sub, value, f"model.{name}")
                else:
                    kwargs[name] = value
            return kind(**kwargs)

        raw = dict(raw or {})
        unknown = sorted(set(raw) - {"data", "model", "train", "vae_checkpoint"})
        if unknown:
            raise InterpolationError(f"unknown section(s) {', '.join(unknown)}", path=source)
        return cls(
            data=build(DataSection, raw.get("data"), "data"),
            model=build(ModelSection, raw.get("model"), "model"),
            train=build(TrainSection, raw.get("train"), "train"),
            vae_checkpoint=raw.get("vae_checkpoint"),
        )

    def to_dict(self) -> dict[str, Any]:
        """Plain nested dict (JSON / YAML friendly)."""
        return {
            "data": dataclasses.asdict(self.data),
            "model": {
                "vae": self.model.vae.to_dict(),
                "unet": self.model.unet.to_dict(),
                "diffusion": self.model.diffusion.to_dict(),
            },
            "train": dataclasses.asdict(self.train),
            "vae_checkpoint": self.vae_checkpoint,
        }


def load_config(path: str | Path, overrides: dict[str, Any] | None = None) -> TrainConfig:
    """Read a YAML config; ``overrides`` like ``{"train.steps": 10}`` replace single values.

    Example:
        >>> import tempfile, pathlib
        >>> p = pathlib.Path(tempfile.mkdtemp()) / "c.yaml"
        >>> _ = p.write_text("train:\\n  steps: 5\\n")
        >>> load_config(p, {"train.batch_size": 1}).train.batch_size
        1
    """
    import yaml

    file = Path(path)
    if not file.is_file():
        raise InterpolationError("config file not found", path=file, hint="see config/ for examples")
    try:
        raw = yaml.safe_load(file.read_text()) or {}
    except yaml.YAMLError as exc:
        raise InterpolationError(f"not valid YAML ({exc})", path=file) from None
    for dotted, value in (overrides or {}).items():
        node = raw
        *parents, leaf = dotted.split(".")
        for key in parents:
            node = node.setdefault(key, {})
        node[leaf] = value
    return TrainConfig.from_dict(raw, source=str(file))
