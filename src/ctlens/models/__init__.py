"""Neural network modules: 3D CLIP, VAE / diffusion UNet (needs torch; imports only core and torch)."""
