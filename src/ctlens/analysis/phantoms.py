"""Synthetic CT phantoms with known answers, for tests, docs and benchmarks.

:func:`chest_phantom`: air around an elliptic soft-tissue body (40 HU) holding two ellipsoid lungs
(``lung_hu``, default -850 HU), a trachea (-1000 HU) reaching the top slices, optionally a sphere of
emphysema (``-980 HU``) inside the right lung and a soft-tissue nodule (40 HU) inside the left lung.
The truth dict gives the analytic volumes and the voxel counts actually drawn.

:func:`lesion_phantom`: the chest phantom on a finer grid with a branching vessel tree (40 HU tubes of 6, 4.5
and 3.5 mm radius from the mediastinum into the left lung), and optionally a nodule touching a 5 mm vessel
and a juxta-pleural mass in the right lung, for the vessel-suppression tests.

:func:`chest_case_phantom` and :func:`head_case_phantom`: the same anatomy with every choice a parameter (field
of view, slice thickness, nodule side / position / size, vessel tree side, emphysema, white or smoothed noise,
bleed position), for the held-out synthetic evaluation (:mod:`ctlens.analysis.synthetic_eval`).

:func:`head_phantom`: a skull ring (1000 HU) around brain (30 HU), optionally a hyperdense blob (70 HU).

Example:
    >>> vol, truth = chest_phantom(emphysema_radius_mm=20.0)
    >>> vol.shape, round(truth["laa950_percent"], 1)
    ((40, 96, 128), 1.0)
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ctlens.core.volume import Volume

__all__ = ["chest_case_phantom", "chest_phantom", "head_case_phantom", "head_phantom", "lesion_phantom"]


def _grid_mm(shape: Sequence[int], spacing: Sequence[float]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Voxel-centre coordinates in mm relative to the array centre, broadcastable (z, y, x)."""
    axes = [(np.arange(n) - (n - 1) / 2.0) * s for n, s in zip(shape, spacing, strict=True)]
    return np.meshgrid(*axes, indexing="ij", sparse=True)  # type: ignore[return-value]


def chest_phantom(
    shape: Sequence[int] = (40, 96, 128),
    spacing: Sequence[float] = (5.0, 3.0, 3.0),
    *,
    lung_hu: float = -850.0,
    emphysema_radius_mm: float = 0.0,
    nodule_radius_mm: float = 0.0,
    noise_hu: float = 0.0,
    seed: int = 0,
) -> tuple[Volume, dict]:
    """A chest-like CT volume and its truth (volumes in mL, LAA-950 in %, nodule centre voxel)."""
    z, y, x = _grid_mm(shape, spacing)
    nz, ny, nx = shape
    hz = (nz - 1) / 2.0 * spacing[0]
    arr = np.full(tuple(shape), -1000.0, np.float32)
    body = (y / (0.45 * ny * spacing[1])) ** 2 + (x / (0.47 * nx * spacing[2])) ** 2 <= 1.0
    arr[np.broadcast_to(body, arr.shape)] = 40.0
    a_lr, a_ap, a_z = 0.17 * nx * spacing[2], 0.3 * ny * spacing[1], 0.75 * hz
    centre_x = 0.23 * nx * spacing[2]
    # array x increases to the patient's left (LPS +x), so x > 0 is the left lung
    right = ((x + centre_x) / a_lr) ** 2 + (y / a_ap) ** 2 + (z / a_z) ** 2 <= 1.0
    left = ((x - centre_x) / a_lr) ** 2 + (y / a_ap) ** 2 + (z / a_z) ** 2 <= 1.0
    arr[right] = lung_hu
    arr[left] = lung_hu
    trachea = (x**2 + (y / 1.0) ** 2 <= 8.0**2) & (z >= 0.5 * hz)
    trachea = np.broadcast_to(trachea, arr.shape) & ~right & ~left
    arr[trachea] = -1000.0
    truth: dict = {}
    voxel_ml = float(np.prod(spacing)) / 1000.0
    r_ml, l_ml = float(right.sum()) * voxel_ml, float(left.sum()) * voxel_ml
    truth["right_ml"], truth["left_ml"] = r_ml, l_ml
    truth["right_ml_analytic"] = truth["left_ml_analytic"] = 4.0 / 3.0 * np.pi * a_lr * a_ap * a_z / 1000.0
    emph = np.zeros(arr.shape, bool)
    if emphysema_radius_mm > 0:
        emph = ((x + centre_x) ** 2 + y**2 + z**2 <= emphysema_radius_mm**2) & right
        arr[emph] = -980.0
    truth["emphysema_ml"] = float(emph.sum()) * voxel_ml
    truth["emphysema_ml_analytic"] = 4.0 / 3.0 * np.pi * emphysema_radius_mm**3 / 1000.0
    truth["laa950_percent"] = 100.0 * float(emph.sum()) / float(right.sum() + left.sum())
    if nodule_radius_mm > 0:
        nodule = ((x - centre_x) ** 2 + (y + 0.1 * a_ap) ** 2 + (z - 0.2 * a_z) ** 2 <= nodule_radius_mm**2) & left
        arr[nodule] = 40.0
        truth["nodule_voxel"] = tuple(float(c) for c in np.argwhere(nodule).mean(axis=0))
        truth["nodule_ml"] = float(nodule.sum()) * voxel_ml
    if noise_hu > 0:
        arr += np.random.default_rng(seed).normal(0.0, noise_hu, arr.shape).astype(np.float32)
    vol = Volume(np.round(arr).astype(np.int16), spacing=tuple(spacing), origin=(-200.0, -150.0, -100.0), modality="CT")
    return vol, truth


def head_phantom(
    shape: Sequence[int] = (24, 128, 128),
    spacing: Sequence[float] = (5.0, 1.5, 1.5),
    *,
    bleed_radius_mm: float = 0.0,
    bleed_hu: float = 70.0,
    noise_hu: float = 0.0,
    seed: int = 0,
) -> tuple[Volume, dict]:
    """A head-like CT: air, a 6 mm skull shell (1000 HU) around brain (30 HU), optional bleed sphere."""
    z, y, x = _grid_mm(shape, spacing)
    r_out = 0.45 * min(shape[1] * spacing[1], shape[2] * spacing[2])
    rz = 0.5 * shape[0] * spacing[0] * 1.2
    rho = np.sqrt((y / r_out) ** 2 + (x / r_out) ** 2 + (z / rz) ** 2)
    arr = np.full(tuple(shape), -1000.0, np.float32)
    head = rho <= 1.0
    arr[head] = 1000.0
    brain = rho <= 1.0 - 6.0 / r_out
    arr[brain] = 30.0
    truth: dict = {"brain_ml": float(brain.sum()) * float(np.prod(spacing)) / 1000.0}
    if bleed_radius_mm > 0:
        bleed = ((x - 0.3 * r_out) ** 2 + y**2 + z**2 <= bleed_radius_mm**2) & brain
        arr[bleed] = bleed_hu
        truth["bleed_voxel"] = tuple(float(c) for c in np.argwhere(bleed).mean(axis=0))
        truth["bleed_ml"] = float(bleed.sum()) * float(np.prod(spacing)) / 1000.0
    if noise_hu > 0:
        arr += np.random.default_rng(seed).normal(0.0, noise_hu, arr.shape).astype(np.float32)
    return Volume(np.round(arr).astype(np.int16), spacing=tuple(spacing), modality="CT"), truth


def _in_tube(z, y, x, p0: Sequence[float], p1: Sequence[float], r0: float, r1: float | None = None) -> np.ndarray:
    """Points within the tube ``p0 -> p1`` (mm, (z, y, x)) whose radius goes linearly from ``r0`` to ``r1``."""
    a, d = np.asarray(p0, float), np.asarray(p1, float) - np.asarray(p0, float)
    t = np.clip(((z - a[0]) * d[0] + (y - a[1]) * d[1] + (x - a[2]) * d[2]) / float(d @ d), 0.0, 1.0)
    dist = np.sqrt((z - a[0] - t * d[0]) ** 2 + (y - a[1] - t * d[1]) ** 2 + (x - a[2] - t * d[2]) ** 2)
    return dist <= r0 + ((r0 if r1 is None else r1) - r0) * t


def lesion_phantom(
    shape: Sequence[int] = (40, 160, 208),
    spacing: Sequence[float] = (4.0, 1.25, 1.25),
    *,
    vessel_tree: bool = True,
    nodule_on_vessel_mm: float = 0.0,
    juxtapleural_mm: float = 0.0,
    noise_hu: float = 0.0,
    seed: int = 0,
) -> tuple[Volume, dict]:
    """Chest phantom with a vessel tree (left lung), a nodule of radius ``nodule_on_vessel_mm`` touching a
    5 mm vessel and a juxta-pleural mass of radius ``juxtapleural_mm`` (right lung); truth: their centre voxels.

    Example:
        >>> vol, truth = lesion_phantom(nodule_on_vessel_mm=9.0)
        >>> vol.shape, sorted(truth)
        ((40, 160, 208), ['nodule_voxel', 'tree_voxels'])
    """
    vol, _ = chest_phantom(shape, spacing)
    arr = vol.array.astype(np.float32)
    z, y, x = _grid_mm(shape, spacing)
    body = arr > -990  # the body ellipse, lungs included
    truth: dict = {}
    cx = 0.23 * shape[2] * spacing[2]  # lung centres at x = -cx (right) and +cx (left)
    if vessel_tree:
        # trunk from the mediastinum, two branches, four terminal branches tapering to 1 mm (vessels narrow
        # towards the periphery; they do not end in a round cap)
        segments = [((0, 0, 20), (0, 0, cx - 15), 6.0, 6.0)]
        for dz, dy in ((22, -12), (-22, 12)):
            mid = (dz, dy, cx + 12)
            segments.append(((0, 0, cx - 15), mid, 5.0, 4.5))
            for ez, ey in ((12, -8), (-8, 10)):
                segments.append((mid, (dz + ez, dy + ey, cx + 36), 4.0, 1.0))
        tree = np.zeros(arr.shape, bool)
        for p0, p1, r0, r1 in segments:
            tree |= _in_tube(z, y, x, p0, p1, r0, r1)
        arr[tree] = 40.0
        truth["tree_voxels"] = np.argwhere(tree)
    if nodule_on_vessel_mm > 0:
        r = nodule_on_vessel_mm
        vessel = _in_tube(z, y, x, (-45, 15, -cx), (45, 15, -cx), 5.0)
        centre = (8.0, 15.0, -cx - (r + 5.0))
        nodule = (z - centre[0]) ** 2 + (y - centre[1]) ** 2 + (x - centre[2]) ** 2 <= r * r
        arr[vessel | nodule] = 40.0
        truth["nodule_voxel"] = tuple(float(c) for c in np.argwhere(nodule).mean(axis=0))
    if juxtapleural_mm > 0:
        r = juxtapleural_mm
        a_lr, a_ap, a_z = (
            0.17 * shape[2] * spacing[2],
            0.3 * shape[1] * spacing[1],
            0.75 * (shape[0] - 1) / 2 * spacing[0],
        )
        zc, yc = -0.35 * a_z, -0.3 * a_ap
        edge = -cx - a_lr * np.sqrt(1.0 - (yc / a_ap) ** 2 - (zc / a_z) ** 2)  # lateral pleura of the right lung
        mass = ((z - zc) ** 2 + (y - yc) ** 2 + (x - edge - 0.4 * r) ** 2 <= r * r) & body
        arr[mass] = 40.0
        truth["mass_voxel"] = tuple(float(c) for c in np.argwhere(mass & (np.abs(x - edge) < 2 * r)).mean(axis=0))
    if noise_hu > 0:
        arr += np.random.default_rng(seed).normal(0.0, noise_hu, arr.shape).astype(np.float32)
    return vol.with_array(np.round(arr).astype(np.int16)), truth


def _noise(shape: Sequence[int], spacing: Sequence[float], std_hu: float, sigma_mm: float, seed: int) -> np.ndarray:
    """Gaussian noise of standard deviation ``std_hu``: white, or smoothed in-plane by ``sigma_mm`` (soft kernel)."""
    from scipy import ndimage

    noise = np.random.default_rng(seed).normal(0.0, 1.0, tuple(shape)).astype(np.float32)
    if sigma_mm > 0:
        noise = ndimage.gaussian_filter(noise, (0.0, sigma_mm / spacing[1], sigma_mm / spacing[2]))
        noise /= max(float(noise.std()), 1e-6)
    return noise * np.float32(std_hu)


def chest_case_phantom(
    fov_mm: Sequence[float] = (160.0, 200.0, 260.0),
    spacing: Sequence[float] = (2.5, 1.25, 1.25),
    *,
    lung_hu: float = -850.0,
    nodule_radius_mm: float = 0.0,
    nodule_side: str = "left",
    nodule_offset: Sequence[float] = (0.2, -0.1, 0.0),
    vessel_side: str | None = None,
    emphysema_radius_mm: float = 0.0,
    emphysema_side: str = "right",
    noise_hu: float = 0.0,
    noise_sigma_mm: float = 0.0,
    seed: int = 0,
) -> tuple[Volume, dict]:
    """A chest phantom of ``fov_mm`` (z, y, x) on ``spacing``, with a nodule (radius ``nodule_radius_mm``) at
    ``nodule_offset`` (fractions of the lung's semi-axes from its centre, z/y/x) in ``nodule_side``'s lung, a
    vessel tree in ``vessel_side``'s lung (or none), an emphysema sphere (-980 HU) and noise (white, or smoothed
    by ``noise_sigma_mm`` in-plane like a soft kernel). Truth: ``nodule_mask`` (bool, or None), ``nodule_ml``,
    ``laa950_percent`` (drawn emphysema voxels over lung voxels) and ``tree`` (bool).

    Example:
        >>> vol, truth = chest_case_phantom(nodule_radius_mm=6.0, nodule_side="right", vessel_side="left")
        >>> vol.shape, truth["nodule_ml"] > 0.8, truth["tree"]
        ((64, 160, 208), True, True)
    """
    shape = tuple(max(8, round(f / s)) for f, s in zip(fov_mm, spacing, strict=True))
    vol, _ = chest_phantom(shape, spacing, lung_hu=lung_hu)
    arr = vol.array.astype(np.float32)
    z, y, x = _grid_mm(shape, spacing)
    cx = 0.23 * shape[2] * spacing[2]
    a_lr, a_ap, a_z = 0.17 * shape[2] * spacing[2], 0.3 * shape[1] * spacing[1], 0.75 * (shape[0] - 1) / 2 * spacing[0]
    sign = {"left": 1.0, "right": -1.0}  # LPS +x (array x) is the patient's left
    lung = np.abs(arr - lung_hu) < 0.5
    truth: dict = {"tree": vessel_side is not None, "nodule_mask": None, "nodule_ml": 0.0}
    if vessel_side is not None:
        s = sign[vessel_side]
        segments = [((0, 0, s * 20), (0, 0, s * (cx - 15)), 6.0, 6.0)]
        for dz, dy in ((0.35 * a_z, -12), (-0.35 * a_z, 12)):
            mid = (dz, dy, s * (cx + 12))
            segments.append(((0, 0, s * (cx - 15)), mid, 5.0, 4.5))
            for ez, ey in ((0.2 * a_z, -8), (-0.15 * a_z, 10)):
                segments.append((mid, (dz + ez, dy + ey, s * (cx + 36)), 4.0, 1.0))
        tree = np.zeros(arr.shape, bool)
        for p0, p1, r0, r1 in segments:
            tree |= _in_tube(z, y, x, p0, p1, r0, r1)
        arr[tree] = 40.0
    voxel_ml = float(np.prod(spacing)) / 1000.0
    if emphysema_radius_mm > 0:
        s = sign[emphysema_side]
        emph = ((x - s * cx) ** 2 + (y - 0.2 * a_ap) ** 2 + (z + 0.3 * a_z) ** 2 <= emphysema_radius_mm**2) & lung
        arr[emph] = -980.0
        truth["laa950_percent"] = 100.0 * float(emph.sum()) / max(float(lung.sum()), 1.0)
    else:
        truth["laa950_percent"] = 0.0
    if nodule_radius_mm > 0:
        oz, oy, ox = nodule_offset
        c = (oz * a_z, oy * a_ap, sign[nodule_side] * cx + ox * a_lr)
        nodule = (z - c[0]) ** 2 + (y - c[1]) ** 2 + (x - c[2]) ** 2 <= nodule_radius_mm**2
        nodule = np.broadcast_to(nodule, arr.shape) & (arr > -990)  # inside the body (the lung, or on a vessel)
        arr[nodule] = 40.0
        truth["nodule_mask"] = nodule.copy()
        truth["nodule_ml"] = float(nodule.sum()) * voxel_ml
    if noise_hu > 0:
        arr += _noise(shape, spacing, noise_hu, noise_sigma_mm, seed)
    return vol.with_array(np.round(arr).astype(np.int16)), truth


def head_case_phantom(
    fov_mm: Sequence[float] = (120.0, 192.0, 192.0),
    spacing: Sequence[float] = (5.0, 1.5, 1.5),
    *,
    bleed_radius_mm: float = 0.0,
    bleed_hu: float = 70.0,
    bleed_offset: Sequence[float] = (0.0, 0.0, 0.3),
    noise_hu: float = 0.0,
    noise_sigma_mm: float = 0.0,
    seed: int = 0,
) -> tuple[Volume, dict]:
    """:func:`head_phantom`'s anatomy on ``fov_mm`` / ``spacing`` with the bleed at ``bleed_offset`` (fractions of
    the brain's semi-axes, z/y/x) and optionally smoothed noise. Truth: ``bleed_mask`` (or None), ``bleed_ml``,
    ``bleed_hu``.

    Example:
        >>> vol, truth = head_case_phantom(bleed_radius_mm=8.0, bleed_offset=(0.1, -0.3, -0.2))
        >>> vol.shape, round(truth["bleed_ml"], 1)
        ((24, 128, 128), 2.3)
    """
    shape = tuple(max(8, round(f / s)) for f, s in zip(fov_mm, spacing, strict=True))
    vol, truth = head_phantom(shape, spacing)
    arr = vol.array.astype(np.float32)
    z, y, x = _grid_mm(shape, spacing)
    r_out = 0.45 * min(shape[1] * spacing[1], shape[2] * spacing[2])
    rz = 0.5 * shape[0] * spacing[0] * 1.2
    truth.update({"bleed_mask": None, "bleed_ml": 0.0, "bleed_hu": bleed_hu})
    if bleed_radius_mm > 0:
        oz, oy, ox = bleed_offset
        bleed = (z - oz * rz) ** 2 + (y - oy * r_out) ** 2 + (x - ox * r_out) ** 2 <= bleed_radius_mm**2
        bleed = bleed & (np.abs(arr - 30.0) < 0.5)  # inside the brain
        arr[bleed] = bleed_hu
        truth["bleed_mask"] = bleed
        truth["bleed_ml"] = float(bleed.sum()) * float(np.prod(spacing)) / 1000.0
    if noise_hu > 0:
        arr += _noise(shape, spacing, noise_hu, noise_sigma_mm, seed)
    return vol.with_array(np.round(arr).astype(np.int16)), truth
