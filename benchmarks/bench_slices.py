"""Slice PNGs from the service on loopback: first render and rendered before, 4 clients; where the time goes.

For every DICOM series under ``--data`` (and every folder or file given on the command line) the series is
analysed once by a real ctlens service (uvicorn, 127.0.0.1; ``--workers``, ``--http``, ``--loop`` passed to it),
then the service is asked for ``--requests`` different slices (slice x window x overlay, a fixed random sample;
each one never asked before: "first render"): a fifth by one client, two fifths by ``--concurrency`` clients at
once, two fifths by as many httpx clients (the client of ``bench_api.py``, ~2 ms of CPU per request on the same
cores), and then the second fifths again ("rendered before"). The clients are asyncio tasks in this process; the
default one is a minimal HTTP/1.1 keep-alive client (as ``wrk`` would be), so that the cores go to the service.
Each row also gives the CPU time per request of the server (its processes, from ``/proc``) and of the client: on
a machine shared with other work, throughput and latency say how busy the machine was, CPU per request says what
the service costs, and the server CPU ceiling = cores / server CPU per request.

Peers, in the same run:
  * ``--baseline-src DIR`` (repeatable): the same service from another source tree (e.g.
    ``git archive <commit> src | tar -x -C /tmp/old``), run the same way on the same requests, phase by phase in
    turn with the new one (new, old, new, old ...), so that a change in the machine's load hits both alike;
  * in process, single thread, on the same slices: the old renderer (float32 windowing and blending, Pillow PNG at
    compression level 1) and Pillow's default PNG save of the same pixels.

The breakdown (single thread, in this process, on the service's stored artifacts) times each stage of a request:
the key and study look-ups in SQLite, opening the stored artifacts, windowing, blending the overlays, PNG
encoding, and the web stack (the service's ASGI app answering from its cache, no HTTP); and checks that the new
PNGs decode to exactly the old renderer's pixels.

Goal (issue 20): first render >= 300 slices/s and p95 < 30 ms with 4 concurrent clients on 2 cores.

Usage:
    python benchmarks/bench_slices.py [--data ../shared/data] [FOLDER_OR_FILE ...] [--requests 300]
        [--concurrency 4] [--baseline-src /tmp/old/src ...] [--workers 1] [--http auto] [--loop auto]
"""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import numpy as np

WINDOWS = ("auto", "lung", "mediastinum", "soft_tissue", "bone", "brain", "blood")
OVERLAYS = ("none", "heatmap", "roi", "both")


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Service:
    """One ctlens service process (this checkout's code, or ``src`` when given) with its own folder and key."""

    def __init__(
        self, label: str, src: Path | None = None, http: str = "auto", loop: str = "auto", workers: int = 1
    ) -> None:
        self.label = label
        self.dir = Path(tempfile.mkdtemp(prefix=f"ctlens-bench-{label}-"))
        self.port = free_port()
        env = dict(
            os.environ,
            CTLENS_SERVICE_DIR=str(self.dir),
            CTLENS_RATE_LIMIT_PER_MINUTE="10000000",
            CTLENS_RATE_LIMIT_BURST="1000000",
            CTLENS_LLM_PROVIDER="offline",
        )
        if src is not None:
            env["PYTHONPATH"] = os.pathsep.join(filter(None, (str(Path(src).resolve()), env.get("PYTHONPATH"))))
        self.key = subprocess.run(
            [sys.executable, "-c", _MAKE_KEY], env=env, check=True, capture_output=True, text=True
        ).stdout.strip()
        cmd = [sys.executable, "-m", "uvicorn", "--host", "127.0.0.1", "--port", str(self.port), "--log-level"]
        cmd += ["warning", "--no-access-log", "--http", http, "--loop", loop, "--workers", str(workers)]
        cmd += ["--factory", "ctlens.api.app:app_from_env"]
        self.log = tempfile.TemporaryFile()  # the service's stderr (a pipe nobody reads could fill and stall it)
        self.proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=self.log)
        self.base = f"http://127.0.0.1:{self.port}"
        self.headers = {"Authorization": f"Bearer {self.key}"}
        deadline = time.time() + 60
        while time.time() < deadline:
            try:
                if httpx.get(self.base + "/healthz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"{label} service did not start: {self.log_tail()}")

    def log_tail(self, chars: int = 2000) -> str:
        """The end of what the service wrote to stderr."""
        self.log.seek(0)
        return self.log.read().decode(errors="replace")[-chars:]

    def analyze(self, path: Path) -> dict:
        files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
        body = [("files", (f"{i}_{p.name}", p.read_bytes())) for i, p in enumerate(files)]
        r = httpx.post(self.base + "/api/analyze", files=body, headers=self.headers, timeout=900)
        r.raise_for_status()
        return r.json()

    def stop(self) -> None:
        """Stop the service and remove its folder."""
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
        shutil.rmtree(self.dir, ignore_errors=True)


_MAKE_KEY = (
    "from ctlens.api.context import ServiceContext; from ctlens.core.settings import Settings; "
    "print(ServiceContext(Settings()).create_key('bench'))"
)


async def drive_httpx(urls: list[str], headers: dict, concurrency: int) -> tuple[list[float], float]:
    """GET every URL once with ``concurrency`` in flight through httpx; latencies (s) and wall time."""
    latencies: list[float] = []
    queue = iter(urls)
    async with httpx.AsyncClient(timeout=120, limits=httpx.Limits(max_connections=concurrency)) as client:

        async def worker() -> None:
            for url in queue:
                t0 = time.perf_counter()
                r = await client.get(url, headers=headers)
                latencies.append(time.perf_counter() - t0)
                if r.status_code != 200 or not r.content.startswith(b"\x89PNG"):
                    raise RuntimeError(f"{url}: {r.status_code} {r.text[:200]}")

        t0 = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return latencies, time.perf_counter() - t0


async def drive_raw(urls: list[str], headers: dict, concurrency: int) -> tuple[list[float], float]:
    """The same with a minimal HTTP/1.1 keep-alive client (one connection per client, like ``wrk``), so that
    the load generator takes as little of the shared cores as it can; checks status, length and PNG signature."""
    latencies: list[float] = []
    queue = iter(urls)
    split = urlsplit(urls[0])
    extra = "".join(f"{k}: {v}\r\n" for k, v in headers.items())

    async def worker() -> None:
        reader, writer = await asyncio.open_connection(split.hostname, split.port)
        try:
            for url in queue:
                part = urlsplit(url)
                request = f"GET {part.path}?{part.query} HTTP/1.1\r\nHost: {part.netloc}\r\n{extra}\r\n"
                t0 = time.perf_counter()
                writer.write(request.encode())
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                fields = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:] if line)}
                body = await reader.readexactly(int(fields.get("content-length", "0")))
                latencies.append(time.perf_counter() - t0)
                if lines[0].split()[1] != "200" or not body.startswith(b"\x89PNG"):
                    raise RuntimeError(f"{url}: {lines[0]} {body[:200]!r}")
        finally:
            writer.close()

    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return latencies, time.perf_counter() - t0


DRIVERS = {"raw": drive_raw, "httpx": drive_httpx}


def cpu_seconds(pid: int) -> float:
    """User + system CPU time so far of process ``pid`` and of its live child processes (uvicorn's workers), all
    threads; Linux ``/proc``."""
    total = 0.0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:  # the process ended meanwhile
            continue
        if stat.parent.name == str(pid) or fields[1] == str(pid):
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def timed(service: Service, urls: list[str], concurrency: int, client: str = "raw") -> dict:
    """Drive ``urls``; throughput, p50 / p95, and CPU ms per request spent by the server and by the client."""
    server0, client0 = cpu_seconds(service.proc.pid), time.process_time()
    latencies, wall = asyncio.run(DRIVERS[client](urls, service.headers, concurrency))
    server_cpu, client_cpu = cpu_seconds(service.proc.pid) - server0, time.process_time() - client0
    q = statistics.quantiles(latencies, n=100) if len(latencies) > 1 else [latencies[0]] * 99
    n = len(latencies)
    return {
        "n": n,
        "rps": n / wall,
        "p50": q[49] * 1000,
        "p95": q[94] * 1000,
        "server_ms": server_cpu / n * 1000,
        "client_ms": client_cpu / n * 1000,
    }


def row(name: str, s: dict) -> None:
    print(
        f"  {name:40s} {s['n']:4d} req {s['rps']:7.1f}/s  p50 {s['p50']:6.1f} ms  p95 {s['p95']:6.1f} ms  "
        f"CPU/req: server {s['server_ms']:5.2f} ms, client {s['client_ms']:5.2f} ms"
    )


def requests_for(study: dict, n: int, seed: int) -> list[tuple[int, str, str]]:
    slices = int(study["shape"][0])
    keys = [(k, w, o) for k in range(slices) for w in WINDOWS for o in OVERLAYS]
    random.Random(seed).shuffle(keys)
    return keys[:n]


PHASES = ("single", "first", "first_httpx", "again")
"""The rows of :func:`measure`, in the order they run."""


def measure(services: list[Service], studies: list[dict], keys: list, concurrency: int) -> list[dict[str, dict]]:
    """Rows per service, each on slices not asked before except "again": first render with one client, with
    ``concurrency`` clients (the minimal client, and httpx), then the same slices again. The services take turns
    phase by phase (new, old, new, old ...), so a change in the machine's load hits both alike."""
    urls = []
    for service, study in zip(services, studies, strict=True):
        base = f"{service.base}/api/studies/{study['id']}/slices/"
        urls.append([f"{base}{k}.png?window={w}&overlay={o}" for k, w, o in keys])
    fifth = len(keys) // 5
    plan = {
        "single": (slice(0, fifth), 1, "raw"),
        "first": (slice(fifth, 3 * fifth), concurrency, "raw"),
        "first_httpx": (slice(3 * fifth, None), concurrency, "httpx"),
        "again": (slice(fifth, 3 * fifth), concurrency, "raw"),
    }
    rows: list[dict[str, dict]] = [{} for _ in services]
    for phase in PHASES:
        part, clients, client = plan[phase]
        for i, service in enumerate(services):
            rows[i][phase] = timed(service, urls[i][part], clients, client)
    return rows


def best(func, repeats: int = 15) -> float:
    """Least disturbed time (ms) of ``func`` over ``repeats`` runs, after one warm-up."""
    func()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        func()
        times.append(time.perf_counter() - t0)
    return min(times) * 1000


def _without_isal(encode, pixels: np.ndarray) -> bytes:
    """``encode(pixels)`` with the writer's ISA-L deflate switched off (what a machine without ``isal`` runs)."""
    from ctlens.preprocess import png_writer

    saved, png_writer._isal = png_writer._isal, None
    try:
        return encode(pixels)
    finally:
        png_writer._isal = saved


def web_stack(service: Service, study: dict, n: int = 600) -> float:
    """CPU ms per slice request answered from the cache by the service's ASGI app in this process (the auth gate,
    routing, the key and study look-ups, the route, the response; no HTTP server, no rendering)."""
    from ctlens.api.app import create_app
    from ctlens.core.settings import Settings

    app = create_app(
        Settings(service_dir=service.dir, rate_limit_per_minute=10**7, rate_limit_burst=10**6), start_jobs=False
    )
    path = f"/api/studies/{study['id']}/slices/0.png"
    headers = [(b"host", b"127.0.0.1"), *((k.lower().encode(), v.encode()) for k, v in service.headers.items())]
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET", "scheme": "http"}
    scope |= {"path": path, "raw_path": path.encode(), "query_string": b"window=lung", "root_path": ""}
    scope |= {"headers": headers, "client": ("127.0.0.1", 50000), "server": ("127.0.0.1", service.port)}

    async def receive() -> dict:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def run() -> float:
        status = []

        async def send(message: dict) -> None:
            if message["type"] == "http.response.start":
                status.append(message["status"])

        await app(dict(scope, state={}), receive, send)  # renders once, then every request is a cache hit
        t0 = time.process_time()
        for _ in range(n):
            await app(dict(scope, state={}), receive, send)
        if set(status) != {200}:
            raise RuntimeError(f"web stack timing: answers {sorted(set(status))}")
        return (time.process_time() - t0) / n * 1000

    return min(asyncio.run(run()) for _ in range(3))


def breakdown(service: Service, study: dict) -> None:
    """Single-thread time of each stage of one request for the middle slice, old path vs new, in this process."""
    from PIL import Image

    from ctlens.api.artifacts import load_artifacts
    from ctlens.api.context import ServiceContext
    from ctlens.api.slice_png import render_slice
    from ctlens.core.settings import Settings
    from ctlens.preprocess import slice_render
    from ctlens.preprocess.png_writer import deflate_backend, encode_png
    from ctlens.preprocess.windows import to_display_uint8, window_limits

    ctx = ServiceContext(Settings(service_dir=service.dir))
    art = load_artifacts(ctx.content_dir(study["sha256"]))
    owner = ctx.key_for(service.key)["id"]
    a, k = art.volume.array, int(study["shape"][0]) // 2
    heat, roi = art.heatmap, art.roi
    heat_k = None if heat is None else np.asarray(heat[k])
    roi_k = None if roi is None else np.asarray(roi[k])
    lo, hi = window_limits("lung")

    def old_pixels() -> np.ndarray:
        grey = to_display_uint8(a[k], lo, hi)
        return slice_render._compose_float(grey, heat_k, roi_k)

    def old_render() -> bytes:
        return slice_render.png_bytes(old_pixels(), compress_level=1)

    grey_old = to_display_uint8(a[k], lo, hi)
    rgb = old_pixels()
    new_png = render_slice(a, k, window="lung", overlay="both", heatmap=heat, roi=roi)
    decoded = np.asarray(Image.open(io.BytesIO(new_png)))
    same = np.array_equal(decoded, rgb)
    t = {
        "SQLite: key look-up (HMAC + row)": best(lambda: ctx.key_for(service.key)),
        "SQLite: the caller's study row": best(lambda: ctx.store.study(owner, study["id"])),
        "stored result + artifacts (kept open)": best(
            lambda: (ctx.cached_result(study["sha256"]), load_artifacts(ctx.content_dir(study["sha256"])))
        ),
        "window, old (float32 arithmetic)": best(lambda: to_display_uint8(a[k], lo, hi)),
        "window, new (uint8 table on int16)": best(lambda: slice_render.window_pixels(a[k], "lung")),
        "blend heatmap + ROI, old (float32)": best(lambda: slice_render._compose_float(grey_old, heat_k, roi_k)),
        "blend heatmap + ROI, new (table)": best(lambda: slice_render.compose(grey_old, heat_k, roi_k)),
        "PNG grey, Pillow default (level 6)": best(lambda: slice_render.png_bytes(grey_old, 6)),
        "PNG grey, Pillow level 1 (old)": best(lambda: slice_render.png_bytes(grey_old, 1)),
        "PNG grey, new (Sub + fast deflate)": best(lambda: encode_png(grey_old)),
        "PNG RGB, Pillow default (level 6)": best(lambda: slice_render.png_bytes(rgb, 6)),
        "PNG RGB, Pillow level 1 (old)": best(lambda: slice_render.png_bytes(rgb, 1)),
        "PNG RGB, new (Sub + fast deflate)": best(lambda: encode_png(rgb)),
        "PNG RGB, new without isal (libdeflate 1)": best(lambda: _without_isal(encode_png, rgb)),
        "whole slice, lung + both, old path": best(old_render),
        "whole slice, lung + both, new path": best(
            lambda: render_slice(a, k, window="lung", overlay="both", heatmap=heat, roi=roi)
        ),
    }
    t["web stack: gate + route + cache hit (ASGI, no HTTP), CPU"] = web_stack(service, study)
    print(f"  breakdown, slice {k + 1} of {study['shape'][0]} ({a.shape[1]} x {a.shape[2]}), one thread, best of 15:")
    for name, ms in t.items():
        print(f"    {name:58s} {ms:7.2f} ms")
    sizes = (len(slice_render.png_bytes(rgb, 6)), len(slice_render.png_bytes(rgb, 1)), len(encode_png(rgb)))
    print(f"    RGB PNG bytes: Pillow default {sizes[0]}, Pillow level 1 {sizes[1]}, new {sizes[2]}")
    print(f"    new PNG decodes to the old renderer's pixels: {same}")
    old, new = t["whole slice, lung + both, old path"], t["whole slice, lung + both, new path"]
    peer = t["PNG RGB, Pillow default (level 6)"]
    fast = t["PNG RGB, new (Sub + fast deflate)"]
    print(f"    new encoder's deflate: {deflate_backend(1)}")
    print(
        f"    new / old whole-slice speed: {old / new:.2f}x; new RGB encode vs Pillow default save: {peer / fast:.2f}x"
    )
    if not same:
        raise SystemExit("bench_slices: the new PNG does not decode to the old renderer's pixels")


def http_stack() -> str:
    """Which HTTP parser and event loop uvicorn's ``auto`` picks here (httptools / uvloop when installed)."""
    import importlib.util

    parser = "httptools" if importlib.util.find_spec("httptools") else "h11"
    return f"{parser}, {'uvloop' if importlib.util.find_spec('uvloop') else 'asyncio'}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("inputs", nargs="*", type=Path, help="more series (DICOM folders or volume files)")
    parser.add_argument("--data", type=Path, default=Path(os.environ.get("CTLENS_DATA_DIR", "../shared/data")))
    parser.add_argument("--requests", type=int, default=300, help="different slices asked per series")
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument(
        "--baseline-src",
        type=Path,
        action="append",
        default=[],
        help="a source tree (its src/) of an old code "
        "path; may be given more than once (labelled by the folder above src/)",
    )
    parser.add_argument("--http", default="auto", help="uvicorn --http for every service (auto, h11, httptools)")
    parser.add_argument("--loop", default="auto", help="uvicorn --loop for every service (auto, asyncio, uvloop)")
    parser.add_argument("--workers", type=int, default=1, help="uvicorn worker processes for every service")
    parser.add_argument("--seed", type=int, default=20)
    args = parser.parse_args()

    from ctlens.io.dicom_headers import dicom_folders

    series = (dicom_folders(args.data) if args.data.exists() else []) + list(args.inputs)
    if not series:
        sys.exit(f"bench_slices: no DICOM series under {args.data} and none given (set --data or CTLENS_DATA_DIR)")
    auto = http_stack()
    print(
        f"{os.cpu_count()} CPU cores, load average {os.getloadavg()[0]:.1f}; {args.concurrency} clients; "
        f"uvicorn --http {args.http} --loop {args.loop} (auto here: {auto}), --workers {args.workers}"
    )
    services: list[Service] = []
    totals: dict[str, list] = {}
    try:
        services.append(Service("new", http=args.http, loop=args.loop, workers=args.workers))
        for src in args.baseline_src:
            label = Path(src).resolve().parent.name or "old"
            services.append(Service(label, src, args.http, args.loop, args.workers))
        for path in series:
            studies = [s.analyze(path) for s in services]
            study = studies[0]
            print(f"{path}: {study['shape']} {study.get('modality', '')}")
            keys = requests_for(study, args.requests, args.seed)
            rows = measure(services, studies, keys, args.concurrency)
            c = args.concurrency
            names = {"single": "first render, 1 client", "first": f"first render, {c} clients"}
            names |= {"first_httpx": f"first render, {c} httpx clients", "again": f"rendered before, {c} clients"}
            for phase in PHASES:
                for service, r in zip(services, rows, strict=True):
                    row(f"{service.label}: {names[phase]}", r[phase])
            for service, r in zip(services, rows, strict=True):
                totals.setdefault(service.label, []).append(r)
            breakdown(services[0], study)
    except Exception:
        for service in services:
            print(f"{service.label} service (exit code {service.proc.poll()}), stderr:\n{service.log_tail()}")
        raise
    finally:
        for service in services:
            service.stop()
    summary(series, totals, args.concurrency)


def summary(series: list[Path], totals: dict[str, list], concurrency: int) -> None:
    """The slowest series per service, its CPU per request and the ceilings that follow; new / old; the goal."""
    print(f"summary over series (first render, {concurrency} clients):")
    cores = os.cpu_count() or 1
    for label, runs in totals.items():
        worst_rps = min(r["first"]["rps"] for r in runs)
        worst_p95 = max(r["first"]["p95"] for r in runs)
        server = max(r["first"]["server_ms"] for r in runs)
        both = max(r["first"]["server_ms"] + r["first"]["client_ms"] for r in runs)
        print(
            f"  {label}: slowest series {worst_rps:.0f}/s, worst p95 {worst_p95:.1f} ms; CPU per request up to "
            f"{server:.2f} ms in the server, {both:.2f} ms with the client: server CPU ceiling {cores} cores / "
            f"{server:.2f} ms = {cores * 1000 / server:.0f}/s ({cores * 1000 / both:.0f}/s with the client on the "
            "same cores)"
        )
    for label in list(totals)[1:]:
        for i, path in enumerate(series):
            new, old = totals["new"][i]["first"], totals[label][i]["first"]
            print(
                f"  {path.name}: new / {label} throughput {new['rps'] / old['rps']:.2f}x, "
                f"p95 {old['p95'] / new['p95']:.2f}x lower, "
                f"server CPU per request {old['server_ms'] / new['server_ms']:.2f}x less"
            )
    worst_rps = min(r["first"]["rps"] for r in totals["new"])
    worst_p95 = max(r["first"]["p95"] for r in totals["new"])
    met = worst_rps >= 300 and worst_p95 < 30
    print(
        f"goal >= 300/s and p95 < 30 ms on every series: {'met' if met else 'NOT met'} "
        f"(load average now {os.getloadavg()[0]:.1f})"
    )


if __name__ == "__main__":
    main()
