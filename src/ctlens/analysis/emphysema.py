"""Lung density measurements: emphysema index (LAA-950), mean lung density and PD15.

* LAA-950: percentage of lung voxels below -950 HU (Gevenois et al., AJRCCM 1996; the threshold validated
  against histology for 1 mm sections);
* MLD: mean lung density in HU;
* PD15: the 15th percentile of the lung density histogram in HU (Parr et al. / Dirksen, used in
  alpha-1 antitrypsin trials).

They are computed on the input grid (full resolution), inside the lung mask.

Example:
    >>> import numpy as np
    >>> hu = np.full((1, 2, 5), -850.0); hu[0, 0, :2] = -980.0
    >>> m = lung_density(hu, np.ones(hu.shape, bool))
    >>> m["laa950_percent"], m["mean_lung_density_hu"]
    (20.0, -876.0)
"""

from __future__ import annotations

import numpy as np

__all__ = ["LAA_THRESHOLD_HU", "lung_density"]

LAA_THRESHOLD_HU = -950.0


def lung_density(hu: np.ndarray, lung_mask: np.ndarray, *, threshold_hu: float = LAA_THRESHOLD_HU) -> dict:
    """``laa950_percent``, ``mean_lung_density_hu``, ``pd15_hu`` and ``lung_voxels`` inside ``lung_mask``."""
    values = np.asarray(hu)[np.asarray(lung_mask, bool)]
    if values.size == 0:
        return {"laa950_percent": None, "mean_lung_density_hu": None, "pd15_hu": None, "lung_voxels": 0}
    return {
        "laa950_percent": round(100.0 * float(np.count_nonzero(values < threshold_hu)) / values.size, 3),
        "mean_lung_density_hu": round(float(values.mean(dtype=np.float64)), 2),
        "pd15_hu": round(float(np.percentile(values, 15)), 1),
        "lung_voxels": int(values.size),
    }
