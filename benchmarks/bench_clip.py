"""3D CLIP cost on CPU: embedding throughput / peak memory and a training step, against a 3D-ViT peer.

Ours: the ``ctclip-dinov2-small`` config -- DINOv2 ViT-S/14 (random weights here: no download) applied to
every slice (resized to 224 x 224), x-transformers slice fusion with CLS, MiniLM text tower.
Peer: a **CT-CLIP-like whole-volume 3D ViT** built from MONAI's ``ViT`` (patch ``(D/16) x 16 x 16`` ->
16 x 14 x 14 = 3,136 tokens, width 512, depth 8, 8 heads, MLP 2,048; CT-CLIP's CTViT uses width 512 and
8 transformer layers too, but factorises spatial / temporal attention), with a linear head to 512.

Each measurement runs in a fresh process (spawn) so its peak RSS (``ru_maxrss``) is its own; all use
``--threads`` torch threads. Training step: batch 2, AdamW, contrastive loss against random text
embeddings (ours: real MiniLM texts), with and without gradient checkpointing of the backbone.

Usage:
    python benchmarks/bench_clip.py [--threads 2] [--shape 160 224 224] [--train-shape 32 224 224]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import resource
import time
from typing import Any


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _peer(shape: tuple[int, int, int]) -> Any:
    import torch
    from monai.networks.nets import ViT

    class PeerEncoder(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.vit = ViT(
                in_channels=1,
                img_size=shape,
                patch_size=(shape[0] // 16, 16, 16),
                hidden_size=512,
                mlp_dim=2048,
                num_layers=8,
                num_heads=8,
                classification=False,
            )
            self.head = torch.nn.Linear(512, 512)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            tokens, _ = self.vit(x.float().unsqueeze(1) / 255.0)
            return torch.nn.functional.normalize(self.head(tokens.mean(dim=1)), dim=-1)

    return PeerEncoder()


def _ours(checkpointing: bool) -> Any:
    from ctlens.models.clip3d import build_model, load_config

    cfg = load_config("ctclip-dinov2-small")
    cfg.vision.pretrained = None  # no weights offline: random init (same cost)
    cfg.vision.grad_checkpointing = checkpointing
    return build_model(cfg)


def _job(kind: str, shape: tuple[int, int, int], threads: int, queue: Any) -> None:
    import torch

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    ours = kind.startswith("ours")
    train = "train" in kind
    model = _ours("ckpt" in kind) if ours else _peer(shape)
    batch = 2 if train else 1
    vols = torch.randint(0, 256, (batch, *shape), dtype=torch.uint8)
    base = _rss_mb()
    start = time.perf_counter()
    if not train:
        model.eval()
        with torch.no_grad():
            emb = model.encode_volume(vols) if ours else model(vols)
    else:
        from ctlens.models.clip3d import clip_loss

        model.train()
        opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-5)
        if ours:
            img, txt, scale = model(vols, **model.text.tokenize(["No effusion.", "Cardiomegaly."]))
        else:
            img = model(vols)
            txt = torch.nn.functional.normalize(torch.randn(batch, 512), dim=-1)
            scale = torch.tensor(14.3)
        loss = clip_loss(img, txt, scale)
        loss.backward()
        opt.step()
        emb = img
    seconds = time.perf_counter() - start
    queue.put({"kind": kind, "seconds": seconds, "peak_mb": _rss_mb(), "model_mb": base, "dim": int(emb.shape[-1])})


def run(kind: str, shape: tuple[int, int, int], threads: int) -> dict[str, Any]:
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_job, args=(kind, shape, threads, queue))
    proc.start()
    proc.join()
    if proc.exitcode != 0:
        return {"kind": kind, "seconds": float("nan"), "peak_mb": float("nan"), "error": f"exit {proc.exitcode}"}
    return queue.get()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--shape", type=int, nargs=3, default=(160, 224, 224))
    parser.add_argument("--train-shape", type=int, nargs=3, default=(32, 224, 224))
    parser.add_argument("--skip-train", action="store_true")
    args = parser.parse_args()
    import torch

    shape, tshape = tuple(args.shape), tuple(args.train_shape)
    print(f"torch {torch.__version__}, {os.cpu_count()} cores visible, {args.threads} threads")
    print("peer: CT-CLIP-like 3D ViT (MONAI ViT, 3,136 tokens, width 512, depth 8)")
    rows = [("embed", shape, "ours-embed", "peer-embed")]
    if not args.skip_train:
        rows += [
            ("train b2 (no ckpt)", tshape, "ours-train", "peer-train"),
            ("train b2 (ckpt)", tshape, "ours-train-ckpt", None),
        ]
    print(
        f"{'task':<20} {'shape':<14} {'ours s':>8} {'ours MB':>8} {'peer s':>8} {'peer MB':>8} {'peer/ours time':>14}"
    )
    results = {}
    for task, shp, ours_kind, peer_kind in rows:
        a = run(ours_kind, shp, args.threads)
        b = run(peer_kind, shp, args.threads) if peer_kind else None
        results[task] = (a, b)
        shape_txt = "x".join(map(str, shp))
        peer_s = f"{b['seconds']:>8.2f} {b['peak_mb']:>8.0f}" if b else f"{'-':>8} {'-':>8}"
        ratio = f"{b['seconds'] / a['seconds']:>13.2f}x" if b else f"{'-':>14}"
        print(f"{task:<20} {shape_txt:<14} {a['seconds']:>8.2f} {a['peak_mb']:>8.0f} {peer_s} {ratio}", flush=True)
    a, b = results["embed"]
    print(f"embedding throughput: ours {1 / a['seconds']:.4f} volumes/s, peer {1 / b['seconds']:.4f} volumes/s")
    print("MB = peak resident memory of the whole process (model, libraries and activations).")


if __name__ == "__main__":
    main()
