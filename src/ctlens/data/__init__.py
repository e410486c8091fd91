"""PyTorch datasets, collate functions and samplers (needs the `ml` extra: torch)."""
