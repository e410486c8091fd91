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
3. a small residual CNN (``layers`` 3x3 convolutions, ``channels`` wide, last layer zero-initialised so
   the untrained method is exactly cubic) learns ``target - input`` on random flipped patches of pairs
   made at ``phases`` sampling offsets per slice (mean squared error, Adam with cosine decay), ``steps``
   steps with a progress bar. The loss is L2, not SMORE's L1: the residual to learn is aliasing whose sign
   varies from patch to patch, and L1 learns its conditional median (about zero here) where L2 learns its
   mean. Measured on the shared CTs (development data, method told the matched profile;
   docs/interpolation.md), L2 gains +0.3 to +1.3 dB over L1 in every setting (slab x4: +0.88 -> +1.60 dB
   over cubic); told the other profile the gain mostly vanishes (same page); ``loss="l1"`` keeps the old
   behaviour;
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
from ctlens.core.progress import ProgressCallback, announce
from ctlens.data.slice_profiles import simulate_thick, thick_count
from ctlens.pipelines.interp.classic import interpolate_classic
from ctlens.pipelines.interp.grid import output_positions
from ctlens.pipelines.interp.metrics import HU_RANGE
from ctlens.pipelines.interp.progress import progress_iter

__all__ = ["LOSSES", "build_smore_net", "interpolate_smore", "smore_training_pairs"]

_LOW, _HIGH = HU_RANGE
_SCALE = _HIGH - _LOW
_CENTRE, _SPREAD = 0.25, 0.1
"""Network input: unit values minus ``_CENTRE`` (about soft tissue) over ``_SPREAD``; residual times ``_SPREAD``."""


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
    last = nn.Conv2d(channels, 1, 3, padding=1)
    nn.init.zeros_(last.weight)  # starts as the identity correction: the untrained method *is* cubic
    nn.init.zeros_(last.bias)
    parts.append(last)
    return nn.Sequential(*parts)


def _fine_axes(spacing: tuple[float, float, float] | None) -> tuple[int, ...]:
    if spacing is None:
        return (1, 2)
    sy, sx = float(spacing[1]), float(spacing[2])
    finest = min(sy, sx)
    return tuple(a for a, s in ((1, sy), (2, sx)) if s <= 1.5 * finest)


def smore_training_pairs(
    unit: np.ndarray, factor: int, profile: str, axes: tuple[int, ...], *, phases: int = 1, max_slices: int = 24
) -> list[tuple[np.ndarray, np.ndarray]]:
    """(cubic-from-degraded, original) 2-D pairs from axial slices, degraded axis first (rows).

    ``phases`` > 1 also degrades each slice starting at rows ``1 .. phases - 1`` (more distinct pairs
    from the same slice); at most ``max_slices`` slices are used, evenly spread.

    Example:
        >>> import numpy as np
        >>> pairs = smore_training_pairs(np.zeros((2, 9, 5), np.float32), 4, "drop", (1,))
        >>> len(pairs), pairs[0][0].shape
        (2, (9, 5))
    """
    step = max(1, int(np.ceil(unit.shape[0] / max_slices)))
    pairs = []
    for z in range(0, unit.shape[0], step):
        for axis in axes:
            image = unit[z] if axis == 1 else unit[z].T
            for phase in range(min(phases, factor)):
                keep = thick_count(image.shape[0] - phase, factor)
                if keep < 2:
                    continue
                target = np.ascontiguousarray(image[phase : phase + (keep - 1) * factor + 1])
                thick = simulate_thick(target[:, :, None], factor, profile)
                blurry = interpolate_classic(thick, output_positions(keep, factor), "cubic", progress=False)[:, :, 0]
                pairs.append((blurry.astype(np.float32), target.astype(np.float32)))
    return pairs


def _normalise(x):  # noqa: ANN001, ANN202 - torch tensors; unit values -> roughly zero-mean, unit-scale
    return (x - _CENTRE) / _SPREAD


LOSSES = ("l2", "l1")


def _train(net, pairs, *, steps, patch, batch, lr, rng, progress, loss="l2"):  # noqa: ANN001, ANN202
    torch = require("torch", extra="ml")
    criterion = torch.nn.functional.mse_loss if loss == "l2" else torch.nn.functional.l1_loss
    optimiser = torch.optim.Adam(net.parameters(), lr=lr)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, T_max=max(1, steps))
    ph = min(patch, *(p[0].shape[0] for p in pairs))
    pw = min(patch, *(p[0].shape[1] for p in pairs))
    net.train()
    for _ in progress_iter(range(steps), "self-supervised training (SMORE)", enabled=progress):
        xs, ys = [], []
        for _ in range(batch):
            blurry, target = pairs[int(rng.integers(len(pairs)))]
            y0 = int(rng.integers(blurry.shape[0] - ph + 1))
            x0 = int(rng.integers(blurry.shape[1] - pw + 1))
            x, y = blurry[y0 : y0 + ph, x0 : x0 + pw], target[y0 : y0 + ph, x0 : x0 + pw]
            if rng.random() < 0.5:  # the degradation is symmetric: flips are free extra pairs
                x, y = x[::-1], y[::-1]
            if rng.random() < 0.5:
                x, y = x[:, ::-1], y[:, ::-1]
            xs.append(x)
            ys.append(y)
        x = torch.from_numpy(np.ascontiguousarray(np.stack(xs)[:, None]))
        y = torch.from_numpy(np.ascontiguousarray(np.stack(ys)[:, None]))
        residual = net(_normalise(x)) * _SPREAD
        error = criterion(x + residual, y)
        optimiser.zero_grad(set_to_none=True)
        error.backward()
        optimiser.step()
        schedule.step()
    net.eval()


def interpolate_smore(
    array: np.ndarray,
    positions: np.ndarray,
    *,
    factor: float,
    profile: str = "slab",
    spacing: tuple[float, float, float] | None = None,
    steps: int = 400,
    channels: int = 32,
    layers: int = 6,
    patch: int = 40,
    batch: int = 16,
    lr: float = 2e-3,
    phases: int = 4,
    max_slices: int = 48,
    seed: int = 0,
    loss: str = "l2",
    progress: bool | ProgressCallback = True,
) -> np.ndarray:
    """Train on the scan's in-plane axes, then interpolate ``array`` (HU) at ``positions``; float32 HU.

    ``loss``: ``"l2"`` (default, mean squared error) or ``"l1"`` (SMORE's choice); see the module docstring.

    Example:
        >>> import numpy as np
        >>> a = np.zeros((2, 16, 16), np.float32)
        >>> interpolate_smore(a, np.array([0.0, 0.5, 1.0]), factor=2, steps=1, progress=False).shape
        (3, 16, 16)
    """
    torch = require("torch", extra="ml")
    if loss not in LOSSES:
        raise ValueError(f"loss must be one of {LOSSES}, got {loss!r}")
    ifactor = max(2, int(round(factor)))
    axes = _fine_axes(spacing)
    unit = _unit(array)
    if callable(progress):
        announce(progress, "self-supervised training pairs")
    pairs = smore_training_pairs(unit, ifactor, profile, axes, phases=phases, max_slices=max_slices)
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    net = build_smore_net(channels, layers)
    if pairs and steps > 0:
        _train(net, pairs, steps=steps, patch=patch, batch=batch, lr=lr, rng=rng, progress=progress, loss=loss)
    base_hu = interpolate_classic(array, positions, "cubic", progress=progress)
    base = _unit(base_hu)
    correction = np.zeros_like(base)
    planes = [(axis, index) for axis in axes for index in range(base.shape[axis])]
    chunk = 16
    with torch.no_grad():
        for start in progress_iter(range(0, len(planes), chunk), "self-supervised inference", enabled=progress):
            group = planes[start : start + chunk]
            for axis in sorted(set(a for a, _ in group)):
                indices = [i for a, i in group if a == axis]
                stack = base[:, indices, :] if axis == 1 else base[:, :, indices]
                stack = np.moveaxis(stack, axis, 0)  # [planes, slices, other]
                x = torch.from_numpy(np.ascontiguousarray(stack)[:, None])
                residual = (net(_normalise(x)) * _SPREAD)[:, 0].numpy()
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
