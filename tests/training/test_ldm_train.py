"""LDM training on CPU with a tiny config: trains, saves, resumes to the same losses, samples with DDIM."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from ctlens.core.errors import InterpolationError
from ctlens.core.volume import Volume
from ctlens.pipelines.interp.interpolate import interpolate
from ctlens.training.checkpoints import load_checkpoint
from ctlens.training.ldm.config import TrainConfig, load_config
from ctlens.training.ldm.train import train

TINY_MODEL = {
    "vae": {"channels": [4, 8, 8, 8], "num_res_blocks": 1, "norm_num_groups": 4, "latent_channels": 4},
    "unet": {
        "channels": [8, 8],
        "attention_levels": [False, False],
        "num_res_blocks": 1,
        "norm_num_groups": 4,
        "num_head_channels": 4,
    },
    "diffusion": {"num_train_timesteps": 50},
}


def _volume() -> Volume:
    rng = np.random.default_rng(0)
    z, y, x = np.mgrid[:12, :32, :32]
    body = np.where((y - 16) ** 2 + (x - 16 - z / 3) ** 2 < 120, 40.0, -1000.0)
    return Volume((body + rng.normal(0, 20, body.shape)).astype(np.int16), spacing=(1.0, 1.0, 1.0))


def _config(out: Path, steps: int, root: Path | None = None, **train: object) -> TrainConfig:
    return TrainConfig.from_dict(
        {
            "data": {"factor": 2, "depth": 4, "patch": 32, "simulation": "slab", "axis": "z", "slices_per_item": 2},
            "model": TINY_MODEL,
            "train": {
                "out_dir": str(out),
                "steps": steps,
                "batch_size": 1,
                "lr": 1e-3,
                "save_every": 2,
                "val_every": 0,
                "val_sampling_steps": 2,
                **train,
            },
            "vae_checkpoint": str((root or out.parent) / "vae"),
        }
    )


@pytest.fixture(scope="module")
def vae_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("ldm")
    result = train("vae", _config(root / "vae", 2, val_every=2), volumes=[_volume()], progress=False)
    assert len(result.losses) == 2 and all(np.isfinite(list(result.losses.values())))
    assert (root / "vae" / "val_0000002.png").is_file()
    assert json.loads((root / "vae" / "metrics.jsonl").read_text().splitlines()[0])["step"] == 2
    return root


def test_ldm_trains_saves_and_resumes_to_the_same_loss(vae_run: Path) -> None:
    out = vae_run / "ldm"
    first = train("ldm", _config(out, 4), volumes=[_volume()], progress=False)
    assert sorted(first.losses) == [0, 1, 2, 3]
    tensors, meta = load_checkpoint(out / "step_0000002.json")
    assert meta["step"] == 2 and meta["kind"] == "ldm" and meta["latent_scale"] > 0
    assert any(k.startswith("unet.") for k in tensors) and any(k.startswith("vae.") for k in tensors)
    assert any(k.startswith("optim.") for k in tensors)
    resumed = _config(vae_run / "ldm2", 4, resume=str(out / "step_0000002.json"))
    again = train("ldm", resumed, volumes=[_volume()], progress=False)
    assert sorted(again.losses) == [2, 3]
    np.testing.assert_allclose([again.losses[2], again.losses[3]], [first.losses[2], first.losses[3]], rtol=1e-5)
    # determinism: a fresh run from scratch reproduces the first loss
    fresh = train("ldm", _config(vae_run / "ldm3", 1, resume="none"), volumes=[_volume()], progress=False)
    assert fresh.losses[0] == pytest.approx(first.losses[0], rel=1e-5)


def test_ddim_sampling_through_interpolate_has_the_right_grid(vae_run: Path) -> None:
    out = vae_run / "ldm"
    if not (out / "latest.json").is_file():
        train("ldm", _config(out, 2), volumes=[_volume()], progress=False)
    vol = Volume(_volume().array[::2], spacing=(2.0, 0.7, 0.7), origin=(1.0, 2.0, 3.0))
    result = interpolate(vol, factor=2, method="ldm", checkpoint=out, sampling_steps=2, progress=False)
    assert result.shape == (11, 32, 32)
    assert result.spacing == (1.0, 0.7, 0.7)
    np.testing.assert_allclose(result.affine[:3, 3], vol.affine[:3, 3])
    assert result.array.dtype == np.int16 and np.isfinite(result.array).all()


def test_config_files_parse_and_typos_are_errors(tmp_path: Path) -> None:
    repo = Path(__file__).resolve().parents[2]
    for name in ("vae_training.yaml", "slice_interpolation.yaml"):
        cfg = load_config(repo / "config" / name)
        assert cfg.model.vae.downsample == 8 and cfg.model.vae.latent_channels == 4
    bad = tmp_path / "bad.yaml"
    bad.write_text("train:\n  stpes: 3\n")
    with pytest.raises(InterpolationError, match="unknown key"):
        load_config(bad)


def test_ldm_without_vae_checkpoint_is_a_clear_error(tmp_path: Path) -> None:
    cfg = _config(tmp_path / "x", 1)
    cfg.vae_checkpoint = None
    with pytest.raises(InterpolationError, match="vae_checkpoint"):
        train("ldm", cfg, volumes=[_volume()], progress=False)
    assert torch.get_num_threads() >= 1
