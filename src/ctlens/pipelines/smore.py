"""Self-supervised slice interpolation (the SMORE idea) trained on the scan itself, on CPU, in minutes.

SMORE (Zhao et al., "SMORE: a self-supervised anti-aliasing and super-resolution algorithm for MRI
using deep learning", IEEE TMI 40 (2021) 805-817): the in-plane axes of a scan are sharp; degrade them
the way the through-plane axis was acquired and a network learns to undo that degradation, then apply
it through-plane.

Here:

1. values: HU clipped to [-1024, 3071] -> [0, 1] (the evaluation convention);
2. training pairs: axial slices of the input, degraded along one fine in-plane axis by the factor
   (``profile="slab"``: Gaussian slice profile of FWHM = factor, what scanners do; ``"drop"``: every
   factor-th row, as in the papers' simulation; :mod:`ctlens.data.slice_profiles`) and brought back
   with the cubic B-spline baseline -> input; the original slice -> target;
3. a small residual CNN (``layers`` 3x3 convolutions, ``channels`` wide) learns ``target - input``
   on random patches (L1, Adam), ``steps`` steps with a progress bar;
4. inference: cubic baseline through-plane, then the network on every plane that contains the slice
   axis and a trained in-plane axis (coronal / sagittal), averaged over the planes used; with
   ``profile="drop"`` the known slices are copied back unchanged.

The in-plane axes used are those with spacing within 1.5x of the finest one (pass ``spacing``, the
input's ``(z, y, x)`` mm; default: both). The network learns to undo a ``factor`` x degradation at the
in-plane pixel size, so it works best when the target slice spacing is near the in-plane spacing.
Non-integer factors train with the nearest integer degradation.

Example:
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> vol = rng.normal(0, 200, (3, 24, 24)).astype(np.float32)
    >>> out = interpolate_smore(vol, np.linspace(0, 2, 5), factor=2, steps=2, progress=False)
    >>> out.shape, out.dtype
    ((5, 24, 24), dtype('float32'))
"""

from __future__ import annotations

import numpy as np

from ctlens.core.optional import require
from ctlens.data.slice_profiles import simulate_thick, thick_count
from ctlens.pipelines.interp_classic import interpolate_classic
from ctlens.pipelines.interp_grid import output_positions
from ctlens.pipelines.interp_metrics import HU_RANGE
from ctlens.pipelines.interp_progress import progress_iter

__all__ = ["build_smore_net", "interpolate_smore", "smore_training_pairs"]

_LOW, _HIGH = HU_RANGE
_SCALE = _HIGH - _LOW
MAX_TRAIN_SLICES = 24


def _unit(hu: np.ndarray) -> np.ndarray:
    return ((np.clip(np.asarray(hu, np.float32), _LOW, _HIGH) - _LOW) / _SCALE).astype(np.float32)


def build_smore_net(channels: int = 32, layers: int = 6):  # noqa: ANN201 - torch is imported lazily
    """The residual CNN: ``layers`` 3x3 convolutions with ReLU, predicting a correction to its input.

    Example:
        >>> net = build_smore_net(8, 3)
        >>> sum(p.numel() for p in net.parameters())
        737
    """
    torch = require("torch", extra="ml")
    nn = torch.nn
    parts: list = [nn.Conv2d(1, channels, 3, padding=1), nn.ReLU(inplace=True)]
    for _ in range(layers - 2):
        parts += [nn.Conv2d(channels, channels, 3, padding=1), nn.ReLU(inplace=True)]
    parts.append(nn.Conv2d(channels, 1, 3, padding=1))
    return nn.Sequential(*parts)


def _fine_axes(spacing: tuple[float, float, float] | None) -> tuple[int, ...]:
    if spacing is None:
        return (1, 2)
    sy, sx = float(spacing[1]), float(spacing[2])
    finest = min(sy, sx)
    return tuple(a for a, s in ((1, sy), (2, sx)) if s <= 1.5 * finest)


def smore_training_pairs(
    unit: np.ndarray, factor: int, profile: str, axes: tuple[int, ...]
) -> list[tuple[np.ndarray, np.ndarray]]:
    """(cubic-from-degraded, original) 2-D pairs from axial slices, degraded axis first (rows).

    Example:
        >>> import numpy as np
        >>> pairs = smore_training_pairs(np.zeros((2, 9, 5), np.float32), 4, "drop", (1,))
        >>> len(pairs), pairs[0][0].shape
        (2, (9, 5))
    """
    step = max(1, unit.shape[0] // MAX_TRAIN_SLICES)
    pairs = []
    for z in range(0, unit.shape[0], step):
        for axis in axes:
            image = unit[z] if axis == 1 else unit[z].T
            keep = thick_count(image.shape[0], factor)
            if keep < 2:
                continue
            target = np.ascontiguousarray(image[: (keep - 1) * factor + 1])
            thick = simulate_thick(target[:, :, None], factor, profile)
            blurry = interpolate_classic(thick, output_positions(keep, factor), "cubic", progress=False)[:, :, 0]
            pairs.append((blurry.astype(np.float32), target.astype(np.float32)))
    return pairs


def interpolate_smore(
    array: np.ndarray,
    positions: np.ndarray,
    *,
    factor: float,
    profile: str = "slab",
    spacing: tuple[float, float, float] | None = None,
    steps: int = 200,
    channels: int = 24,
    layers: int = 5,
    patch: int = 32,
    batch: int = 8,
    lr: float = 1e-3,
    seed: int = 0,
    progress: bool = True,
) -> np.ndarray:
    """Train on the scan's in-plane axes, then interpolate ``array`` (HU) at ``positions``; float32 HU.

    Example:
        >>> import numpy as np
        >>> a = np.zeros((2, 16, 16), np.float32)
        >>> interpolate_smore(a, np.array([0.0, 0.5, 1.0]), factor=2, steps=1, progress=False).shape
        (3, 16, 16)
    """
    torch = require("torch", extra="ml")
    ifactor = max(2, int(round(factor)))
    axes = _fine_axes(spacing)
    unit = _unit(array)
    pairs = smore_training_pairs(unit, ifactor, profile, axes)
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    net = build_smore_net(channels, layers)
    if pairs and steps > 0:
        optimiser = torch.optim.Adam(net.parameters(), lr=lr)
        ph = min(patch, *(p[0].shape[0] for p in pairs))
        pw = min(patch, *(p[0].shape[1] for p in pairs))
        net.train()
        for _ in progress_iter(range(steps), "self-supervised training (SMORE)", enabled=progress):
            xs, ys = [], []
            for _ in range(batch):
                blurry, target = pairs[int(rng.integers(len(pairs)))]
                y0 = int(rng.integers(blurry.shape[0] - ph + 1))
                x0 = int(rng.integers(blurry.shape[1] - pw + 1))
                xs.append(blurry[y0 : y0 + ph, x0 : x0 + pw])
                ys.append(target[y0 : y0 + ph, x0 : x0 + pw])
            x = torch.from_numpy(np.stack(xs)[:, None])
            y = torch.from_numpy(np.stack(ys)[:, None])
            loss = torch.nn.functional.l1_loss(x + net(x), y)
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
    net.eval()
    base_hu = interpolate_classic(array, positions, "cubic", progress=progress)
    base = _unit(base_hu)
    correction = np.zeros_like(base)
    planes = [(axis, index) for axis in axes for index in range(base.shape[axis])]
    chunk = 8
    with torch.no_grad():
        for start in progress_iter(range(0, len(planes), chunk), "self-supervised inference", enabled=progress):
            group = planes[start : start + chunk]
            for axis in set(a for a, _ in group):
                indices = [i for a, i in group if a == axis]
                stack = base[:, indices, :] if axis == 1 else base[:, :, indices]
                stack = np.moveaxis(stack, axis, 0)  # [planes, slices, other]
                residual = net(torch.from_numpy(np.ascontiguousarray(stack)[:, None]))[:, 0].numpy()
                residual = np.moveaxis(residual, 0, axis)
                if axis == 1:
                    correction[:, indices, :] += residual / len(axes)
                else:
                    correction[:, :, indices] += residual / len(axes)
    out = base_hu + correction * _SCALE
    if profile == "drop":
        positions = np.asarray(positions, np.float64)
        known = np.flatnonzero(np.abs(positions - np.round(positions)) < 1e-6)
        out[known] = np.asarray(array, np.float32)[np.round(positions[known]).astype(int)]
    return out.astype(np.float32)
