"""Slice interpolation: classical, flow, self-supervised (SMORE) and latent-diffusion methods, the
evaluation harness and its metrics.

One module per step; see ``docs/architecture.md``.
"""
