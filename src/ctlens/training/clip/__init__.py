"""3D CLIP training: the loop, its schedule, distributed helpers, synthetic data and zero-shot evaluation.

One module per step; see ``docs/architecture.md``.
"""
