"""Latent-diffusion (VAE + UNet) training: its configuration and loop.

One module per step; see ``docs/architecture.md``.
"""
