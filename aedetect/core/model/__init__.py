"""The network and what it is built from: the CAE (cae), the plain denoising stacks
(plainnets), losses, SSIM, CPU speed settings (fastmath) and latent codes (codes)."""
