"""Quantitative CT analysis: body region, lungs, emphysema, nodule / mass candidates, heatmaps."""
