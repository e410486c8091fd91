"""Neural network modules: 3D CLIP (:mod:`ctlens.models.clip3d`) and the slice-interpolation VAE /
diffusion UNet (:mod:`ctlens.models.ldm`). Needs torch; imports only ``ctlens.core`` and torch."""
