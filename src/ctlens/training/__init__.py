"""Training loops, checkpoints and evaluation metrics (needs torch)."""
