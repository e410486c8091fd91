"""Data pipeline speed: cached image loads, on-the-fly preparation against peers, DataLoader throughput.

(a) cached ``CacheManager.load_image`` per image (memory-mapped uint8 ``.npy``), opened and fully read,
    against MONAI ``PersistentDataset``'s storage (``torch.save`` / ``torch.load`` of the same arrays);
    goal <= 2 ms per image (NeuroVFM's README quotes ~10 ms per cached image).
(b) on-the-fly ``prepare_for_inference`` per study (from a loaded Volume: RPI, 4 x 1 x 1 mm, pad to
    (4, 16, 16), brain / blood / bone windows, foreground mask) against
    * NeuroVFM's recipe as its README describes it: SimpleITK ``DICOMOrient`` to RPI and cubic B-spline
      resampling to 1 x 1 x 4 mm, then windows and padding;
    * TorchIO: ``ToOrientation("RPI")``, ``Resample((1, 1, 4))`` (linear), ``CropOrPad`` to the multiple,
      ``RescaleIntensity`` per window;
    * MONAI: ``Orientation("RPI")``, ``Spacing((1, 1, 4))`` (bilinear, float32), ``DivisiblePad``,
      ``ScaleIntensityRange`` per window.
    Every peer computes its mask with the same ``ctlens.preprocess.foreground_mask``, so the ratios
    compare orientation, resampling, padding and windowing. Goal: <= 1 s per chest CT, faster than each.
(c) ``torch.utils.data.DataLoader`` throughput (images/s, 2 workers) over ``ctlens.data.ImageDataset``
    reading the cache of (a).

Each timing is the best of ``--repeats`` runs after one warm-up (least disturbed by other processes).

Usage:
    python benchmarks/bench_data.py [--data ../shared/data] [--repeats 3] [--loads 200]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import SimpleITK as sitk

import ctlens
from ctlens.core.volume import Volume
from ctlens.io.lps_ras import nifti_affine
from ctlens.preprocess import (
    CT_CHANNELS,
    WINDOWS,
    apply_window,
    foreground_mask,
    pad_to_multiple,
    prepare_for_inference,
)

STUDIES = {
    "head CT (GE)": ("dcm_qa_ct_ge/dicom", {"uneven": "resample"}),
    "chest CT B40f": ("lung_pet_ct_dx/Lung_Dx-A0002/series_B40f_8mm", {}),
    "chest CT B70f": ("lung_pet_ct_dx/Lung_Dx-A0002/series_B70f_8mm", {}),
}
PATCH = (4, 16, 16)


def best_time(func: Callable[[], object], repeats: int) -> float:
    return best_times(func, repeats)[0]


def best_times(func: Callable[[], object], repeats: int) -> tuple[float, float]:
    """``(wall s, CPU s of this process)`` of the fastest of ``repeats`` runs after one warm-up.

    CPU time (all threads of the process) is much less disturbed by other processes on a busy machine.
    """
    func()
    runs = []
    for _ in range(repeats):
        wall, cpu = time.perf_counter(), time.process_time()
        func()
        runs.append((time.perf_counter() - wall, time.process_time() - cpu))
    return min(runs)


def _window_range(name: str) -> tuple[float, float]:
    width, level = WINDOWS[name]
    return level - width / 2, level + width / 2


# ---------------------------------------------------------------------------------------------------------
# (b) on-the-fly preparation: ctlens and its peers, each from the same loaded Volume


def ours(vol: Volume) -> dict[str, np.ndarray]:
    arrs, mask, _ = prepare_for_inference(vol, mode="ct")
    return {**arrs, "mask": mask}


def neurovfm_recipe(vol: Volume) -> dict[str, np.ndarray]:
    """NeuroVFM README: RPI, B-spline resampling to 1 x 1 x 4 mm (x, y, z), windows, pad to the patch multiple."""
    image = sitk.GetImageFromArray(vol.array)
    spacing, origin, direction = vol.itk_geometry()
    image.SetSpacing(spacing)
    image.SetOrigin(origin)
    image.SetDirection(direction)
    image = sitk.DICOMOrient(image, "RPI")
    new_spacing = (1.0, 1.0, 4.0)
    size = [max(1, round(n * s / t)) for n, s, t in zip(image.GetSize(), image.GetSpacing(), new_spacing, strict=True)]
    out = sitk.Resample(
        image,
        size,
        sitk.Transform(),
        sitk.sitkBSpline,
        image.GetOrigin(),
        new_spacing,
        image.GetDirection(),
        -1024.0,
        sitk.sitkFloat32,
    )
    arr = pad_to_multiple(sitk.GetArrayFromImage(out), PATCH, value=-1024.0)
    return {**{name: apply_window(arr, name) for name in CT_CHANNELS}, "mask": foreground_mask(arr, "ct")}


def torchio_recipe(vol: Volume) -> dict[str, np.ndarray]:
    import torch
    import torchio as tio

    tensor = torch.from_numpy(np.ascontiguousarray(vol.array.transpose(2, 1, 0)[None], dtype=np.float32))
    subject = tio.Subject(ct=tio.ScalarImage(tensor=tensor, affine=nifti_affine(vol)))
    subject = tio.Compose([tio.ToOrientation("RPI"), tio.Resample((1.0, 1.0, 4.0), image_interpolation="linear")])(
        subject
    )
    shape = [int(-(-n // m) * m) for n, m in zip(subject["ct"].spatial_shape, PATCH[::-1], strict=True)]
    subject = tio.CropOrPad(shape, padding_mode=-1024)(subject)
    out = {}
    for name in CT_CHANNELS:
        low, high = _window_range(name)
        windowed = tio.RescaleIntensity(out_min_max=(0, 1), in_min_max=(low, high))(subject)["ct"].data
        out[name] = windowed[0].clamp(0, 1).numpy().transpose(2, 1, 0)
    hu = subject["ct"].data[0].numpy().transpose(2, 1, 0)
    out["mask"] = foreground_mask(hu, "ct")
    return out


def monai_recipe(vol: Volume) -> dict[str, np.ndarray]:
    import torch
    from monai.data import MetaTensor
    from monai.transforms import DivisiblePad, Orientation, ScaleIntensityRange, Spacing

    tensor = torch.from_numpy(np.ascontiguousarray(vol.array.transpose(2, 1, 0)[None], dtype=np.float32))
    x = MetaTensor(tensor, affine=torch.as_tensor(nifti_affine(vol)))
    x = Orientation(axcodes="RPI")(x)
    x = Spacing(pixdim=(1.0, 1.0, 4.0), mode="bilinear", dtype=np.float32)(x)
    x = DivisiblePad(k=PATCH[::-1], value=-1024)(x)
    out = {}
    for name in CT_CHANNELS:
        low, high = _window_range(name)
        out[name] = ScaleIntensityRange(low, high, 0.0, 1.0, clip=True)(x)[0].numpy().transpose(2, 1, 0)
    out["mask"] = foreground_mask(np.asarray(x[0]).transpose(2, 1, 0), "ct")
    return out


def bench_prepare(data: Path, repeats: int) -> list[dict]:
    peers = {"NeuroVFM B-spline (SimpleITK)": neurovfm_recipe, "TorchIO": torchio_recipe, "MONAI": monai_recipe}
    rows = []
    print("\n(b) on-the-fly preparation per study, from a loaded Volume: wall s, then CPU s of the process")
    print("    (best of the repeats; ratio = peer / ctlens, > 1: ctlens is faster)")
    print(
        f"{'study':<16} {'input (z,y,x)':<16} {'load s':>7} {'ctlens s':>9}" + "".join(f" {p[:14]:>15}" for p in peers)
    )
    for label, (rel, options) in STUDIES.items():
        path = data / rel
        if not path.exists():
            print(f"{label}: missing ({path}), skipped")
            continue
        t_load = best_time(lambda p=path, o=options: ctlens.load(p, **o), repeats)
        vol = ctlens.load(path, **options)
        t_ours, c_ours = best_times(lambda v=vol: ours(v), repeats)
        shape = ours(vol)["brain"].shape
        cells, cpu_cells = [], []
        row = {"study": label, "input": vol.shape, "output": shape, "load": t_load, "ctlens": t_ours}
        row["ctlens cpu"] = c_ours
        for name, func in peers.items():
            try:
                peer_shape = func(vol)["brain"].shape
                t_peer, c_peer = best_times(lambda f=func, v=vol: f(v), repeats)
                row[name], row[f"{name} cpu"] = t_peer, c_peer
                cells.append(f"{t_peer:>7.3f} ({t_peer / t_ours:>4.1f}x)")
                cpu_cells.append(f"{c_peer:>7.3f} ({c_peer / c_ours:>4.1f}x)")
                if peer_shape != shape:
                    row[f"{name} shape"] = peer_shape
            except Exception as exc:  # noqa: BLE001 -- a peer that cannot run is reported, not fatal
                cells.append(f"{'n/a':>15}")
                cpu_cells.append(f"{'n/a':>15}")
                print(f"  {name} failed on {label}: {type(exc).__name__}: {exc}")
        print(f"{label:<16} {str(vol.shape):<16} {t_load:>7.3f} {t_ours:>9.3f} " + " ".join(cells))
        print(f"{'  CPU s':<16} {'':<16} {'':>7} {c_ours:>9.3f} " + " ".join(cpu_cells))
        rows.append(row)
    for row in rows:
        extra = {k: v for k, v in row.items() if k.endswith("shape")}
        print(f"  {row['study']}: output {row['output']} (z, y, x)" + (f"; peers' shapes {extra}" if extra else ""))
    return rows


# ---------------------------------------------------------------------------------------------------------
# (a) cached loads and (c) DataLoader throughput


def make_data_dir(data: Path, root: Path) -> Path:
    """``root/raw/<study>/...`` with copies of the shared studies (outside the repository, removed afterwards)."""
    raw = root / "raw"
    shutil.copytree(data / "dcm_qa_ct_ge" / "dicom", raw / "head_ge" / "dicom")
    for kernel in ("B40f", "B70f"):
        src = data / "lung_pet_ct_dx" / "Lung_Dx-A0002" / f"series_{kernel}_8mm"
        shutil.copytree(src, raw / f"chest_{kernel.lower()}" / "dicom")
    (raw / "abdomen").mkdir(parents=True)
    shutil.copy(data / "totalsegmentator_example" / "ct_3mm.nii.gz", raw / "abdomen" / "ct_3mm.nii.gz")
    return root


def bench_cache(data: Path, root: Path, loads: int, workers: int) -> object | None:
    try:
        from ctlens.cache.manager import CacheManager
    except ImportError as exc:
        print(f"\n(a) skipped: ctlens.cache.manager is not available ({exc})")
        return None
    make_data_dir(data, root)
    cache = CacheManager(root)
    start = time.perf_counter()
    report = cache.build_cache(num_workers=workers, progress=False)
    build_s = time.perf_counter() - start
    print(f"\n(a) cache built in {build_s:.2f} s with {workers} workers: {report}")
    entries = cache.complete_entries()
    if not entries:
        print("(a) skipped: no complete cache entry")
        return None
    import torch

    print(f"cached load per image, median of {loads} loads (ms); peer: torch.load of the same arrays")
    print("(torch.save / torch.load is how MONAI's PersistentDataset stores its cache)")
    print("open: load_image (mmap); sample: + read one window and the mask; all: + read every channel")
    print(
        f"{'image':<28} {'shape':<16} {'MB':>6} {'open ms':>8} {'sample ms':>10} {'all ms':>8} {'torch.load ms':>14} "
        f"{'ratio':>6}"
    )
    opens, samples, reads = [], [], []
    for entry in entries:
        study, image = entry.study, entry.image
        arrays = cache.load_image(study, image)
        shape = next(iter(arrays.values())).shape
        megabytes = sum(a.nbytes for a in arrays.values()) / 1e6
        pt = root / f"{study}_{image}.pt"
        torch.save({k: torch.from_numpy(np.array(v)) for k, v in arrays.items()}, pt)

        def timed(func: Callable[[], object]) -> float:
            func()
            samples = []
            for _ in range(loads):
                t0 = time.perf_counter()
                func()
                samples.append(time.perf_counter() - t0)
            return statistics.median(samples) * 1000

        t_open = timed(lambda s=study, i=image: cache.load_image(s, i))
        t_read = timed(lambda s=study, i=image: [np.array(v) for v in cache.load_image(s, i).values()])
        first = next(k for k in arrays if k != "mask")
        t_sample = timed(lambda s=study, i=image, w=first: [np.array(cache.load_image(s, i)[k]) for k in (w, "mask")])
        t_torch = timed(lambda p=pt: torch.load(p, weights_only=True))
        opens.append(t_open)
        samples.append(t_sample)
        reads.append(t_read)
        name = f"{study}/{image}"
        print(
            f"{name[:28]:<28} {str(shape):<16} {megabytes:>6.1f} {t_open:>8.3f} {t_sample:>10.3f} {t_read:>8.3f} "
            f"{t_torch:>14.3f} {t_torch / t_read:>5.1f}x"
        )
    print(
        f"mean per image: open {statistics.mean(opens):.3f} ms, sample {statistics.mean(samples):.3f} ms, "
        f"all {statistics.mean(reads):.3f} ms (ratio: torch.load / all)"
    )
    return cache


def bench_loader(root: Path, images: int, batch_size: int) -> None:
    try:
        from ctlens.data import ImageDataset, collate_tokens
    except (ImportError, AttributeError) as exc:
        print(f"\n(c) skipped: ctlens.data.ImageDataset is not available ({exc})")
        return
    from torch.utils.data import DataLoader

    dataset = ImageDataset(root, use_cache=True, tokenize=True)
    if len(dataset) == 0:
        print("\n(c) skipped: the dataset is empty")
        return
    loader = DataLoader(
        dataset, batch_size=batch_size, shuffle=True, num_workers=2, collate_fn=collate_tokens, persistent_workers=True
    )
    for _ in loader:  # warm-up epoch: worker start-up
        pass
    seen, tokens = 0, 0
    start = time.perf_counter()
    while seen < images:
        for batch in loader:
            seen += len(batch["study"])
            tokens += int(batch["img"].shape[0])
    seconds = time.perf_counter() - start
    print(
        f"\n(c) DataLoader over ImageDataset (cache, tokenize=True, collate_tokens), 2 workers, batch {batch_size}, "
        f"{len(dataset)} images: {seen / seconds:.1f} images/s, {tokens / seconds:,.0f} tokens/s ({seen} images)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path(os.environ.get("CTLENS_DATA_DIR", "../shared/data")))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--loads", type=int, default=200, help="cached loads per image")
    parser.add_argument("--workers", type=int, default=2, help="cache build workers")
    parser.add_argument("--images", type=int, default=200, help="images drawn through the DataLoader")
    parser.add_argument("--batch-size", type=int, default=2, help="DataLoader batch size")
    parser.add_argument("--only", choices=["a", "b", "c"], action="append", help="run only these parts")
    args = parser.parse_args()
    parts = set(args.only or ["a", "b", "c"])
    import monai
    import torch
    import torchio

    print(
        f"cores: {os.cpu_count()}, torch threads {torch.get_num_threads()}, SimpleITK {sitk.Version.VersionString()}, "
        f"TorchIO {torchio.__version__}, MONAI {monai.__version__}, ctlens {ctlens.__version__}"
    )
    if "b" in parts:
        bench_prepare(args.data, args.repeats)
    if parts & {"a", "c"}:
        root = Path(tempfile.mkdtemp(prefix="ctlens-bench-data-"))
        try:
            cache = bench_cache(args.data, root, args.loads, args.workers)
            if "c" in parts and cache is not None:
                bench_loader(root, args.images, args.batch_size)
        finally:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
