"""3D CLIP cost on CPU (or a GPU): embedding throughput / peak memory and a training step, against a 3D-ViT peer.

Ours: the ``ctclip-dinov2-small`` config -- DINOv2 ViT-S/14 (random weights here: no download) applied to
every slice (resized to 224 x 224), x-transformers slice fusion with CLS, MiniLM text tower.
Peer: a **CT-CLIP-like whole-volume 3D ViT** built from MONAI's ``ViT`` (patch ``(D/16) x 16 x 16`` ->
16 x 14 x 14 = 3,136 tokens, width 512, depth 8, 8 heads, MLP 2,048; CT-CLIP's CTViT uses width 512 and
8 transformer layers too, but factorises spatial / temporal attention), with a linear head to 512.

Each measurement runs in a fresh process (spawn) so its peak RSS (``VmHWM``) is its own; all use
``--threads`` torch threads. Training step: batch 2, AdamW, contrastive loss against random text
embeddings (ours: real MiniLM texts), with and without gradient checkpointing of the backbone.

On a GPU (``--device cuda``) memory is ``torch.cuda.max_memory_allocated`` instead of RSS, training uses
bf16 autocast as ``ctlens clip train`` does, and ``--max-gpu-gb 24`` adds the largest training batch
(doubling, then bisecting) whose peak stays within that budget, with and without checkpointing, for both.

Usage:
    python benchmarks/bench_clip.py [--threads 2] [--shape 160 224 224] [--train-shape 32 224 224]
    python benchmarks/bench_clip.py --device cuda --train-shape 160 224 224 --max-gpu-gb 24
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import time
from typing import Any

from ctlens.core.memory import peak_rss_mb


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


def _step(kind: str, model: Any, vols: Any, device: Any) -> Any:
    """One embedding (no grad) or one training step; returns the volume embeddings."""
    import contextlib

    import torch

    ours = kind.startswith("ours")
    if "train" not in kind:
        model.eval()
        with torch.no_grad():
            return model.encode_volume(vols) if ours else model(vols)
    from ctlens.models.clip3d import clip_loss

    model.train()
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-5)
    cuda = device.type == "cuda"
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if cuda else contextlib.nullcontext()
    texts = ["No effusion.", "Cardiomegaly."] * (vols.shape[0] // 2 + 1)
    with autocast:
        if ours:
            img, txt, scale = model(vols, **model.text.tokenize(texts[: vols.shape[0]], device))
        else:
            img = model(vols)
            txt = torch.nn.functional.normalize(torch.randn(vols.shape[0], 512, device=device), dim=-1)
            scale = torch.tensor(14.3, device=device)
    loss = clip_loss(img.float(), txt.float(), scale.float())
    loss.backward()
    opt.step()
    return img


def _job(kind: str, shape: tuple[int, int, int], threads: int, device_name: str, batch: int, queue: Any) -> None:
    import torch

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    device = torch.device(device_name)
    model = (_ours("ckpt" in kind) if kind.startswith("ours") else _peer(shape)).to(device)
    vols = torch.randint(0, 256, (batch, *shape), dtype=torch.uint8, device=device)
    base = peak_rss_mb()
    try:
        if device.type == "cuda":  # warm-up (kernels, cuDNN autotune), then a clean measurement
            _step(kind, model, vols, device)
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        start = time.perf_counter()
        emb = _step(kind, model, vols, device)
        if device.type == "cuda":
            torch.cuda.synchronize()
    except torch.OutOfMemoryError:
        queue.put({"kind": kind, "seconds": float("nan"), "peak_mb": float("nan"), "error": "out of memory"})
        return
    seconds = time.perf_counter() - start
    peak = torch.cuda.max_memory_allocated() / 2**20 if device.type == "cuda" else peak_rss_mb()
    queue.put({"kind": kind, "seconds": seconds, "peak_mb": peak, "model_mb": base, "dim": int(emb.shape[-1])})


def run(kind: str, shape: tuple[int, int, int], threads: int, device: str = "cpu", batch: int = 0) -> dict[str, Any]:
    """One measurement in a fresh spawned process (batch 0: 2 for training, 1 for embedding)."""
    batch = batch or (2 if "train" in kind else 1)
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_job, args=(kind, shape, threads, device, batch, queue))
    proc.start()
    proc.join()
    if proc.exitcode != 0:
        return {"kind": kind, "seconds": float("nan"), "peak_mb": float("nan"), "error": f"exit {proc.exitcode}"}
    return queue.get()


def largest_batch(kind: str, shape: tuple[int, int, int], device: str, budget_mb: float) -> tuple[int, dict[str, Any]]:
    """The largest training batch whose peak GPU memory stays within ``budget_mb`` (doubling, then bisection)."""

    def fits(b: int) -> dict[str, Any] | None:
        r = run(kind, shape, 1, device, b)
        return r if r.get("peak_mb", float("nan")) <= budget_mb else None

    best, best_row, b = 0, {}, 2
    while (row := fits(b)) is not None and b <= 512:
        best, best_row, b = b, row, b * 2
    lo, hi = best, b
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if (row := fits(mid)) is not None:
            lo, best, best_row = mid, mid, row
        else:
            hi = mid
    return best, best_row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--shape", type=int, nargs=3, default=(160, 224, 224))
    parser.add_argument("--train-shape", type=int, nargs=3, default=(32, 224, 224))
    parser.add_argument("--skip-train", action="store_true")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--max-gpu-gb", type=float, default=0.0, help="on cuda: also find the largest batch in this")
    args = parser.parse_args()
    import torch

    shape, tshape = tuple(args.shape), tuple(args.train_shape)
    where = torch.cuda.get_device_name() if args.device.startswith("cuda") else f"{args.threads} CPU threads"
    print(f"torch {torch.__version__}, {os.cpu_count()} cores visible, {where}")
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
        a = run(ours_kind, shp, args.threads, args.device)
        b = run(peer_kind, shp, args.threads, args.device) if peer_kind else None
        results[task] = (a, b)
        shape_txt = "x".join(map(str, shp))
        peer_s = f"{b['seconds']:>8.2f} {b['peak_mb']:>8.0f}" if b else f"{'-':>8} {'-':>8}"
        ratio = f"{b['seconds'] / a['seconds']:>13.2f}x" if b else f"{'-':>14}"
        print(f"{task:<20} {shape_txt:<14} {a['seconds']:>8.2f} {a['peak_mb']:>8.0f} {peer_s} {ratio}", flush=True)
    a, b = results["embed"]
    print(f"embedding throughput: ours {1 / a['seconds']:.4f} volumes/s, peer {1 / b['seconds']:.4f} volumes/s")
    if args.device.startswith("cuda"):
        print("MB = torch.cuda.max_memory_allocated (after one warm-up step).")
        if args.max_gpu_gb:
            for kind in ("ours-train", "ours-train-ckpt", "peer-train"):
                b, row = largest_batch(kind, tshape, args.device, args.max_gpu_gb * 1024)
                secs, peak = row.get("seconds", float("nan")), row.get("peak_mb", 0.0)
                print(f"largest batch in {args.max_gpu_gb:g} GB, {kind}: {b} ({secs:.2f} s/step, {peak:.0f} MB)")
    else:
        print("MB = peak resident memory of the whole process (model, libraries and activations).")


if __name__ == "__main__":
    main()
