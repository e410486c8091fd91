"""Quantitative CT analysis: body region, lungs, emphysema, nodule / mass candidates, head CT, heatmaps.

Example:
    >>> from ctlens.analysis import analyze, chest_phantom
    >>> vol, truth = chest_phantom(emphysema_radius_mm=20.0)
    >>> f = analyze(vol)
    >>> abs(f.measurements["laa950_percent"] - truth["laa950_percent"]) < 0.2
    True
"""

from ctlens.analysis.analyze import analyze, load_for_analysis
from ctlens.analysis.body_region import BodyRegion, body_region
from ctlens.analysis.emphysema import lung_density
from ctlens.analysis.findings import Candidate, Findings
from ctlens.analysis.head import analyze_head
from ctlens.analysis.image2d import analyze_image2d
from ctlens.analysis.lungs import LungSegmentation, segment_lungs
from ctlens.analysis.nodules import detect_lung_candidates
from ctlens.analysis.overlays import render_overlay
from ctlens.analysis.phantoms import chest_phantom, head_phantom

__all__ = [
    "BodyRegion",
    "Candidate",
    "Findings",
    "LungSegmentation",
    "analyze",
    "analyze_head",
    "analyze_image2d",
    "body_region",
    "chest_phantom",
    "detect_lung_candidates",
    "head_phantom",
    "lung_density",
    "load_for_analysis",
    "render_overlay",
    "segment_lungs",
]
