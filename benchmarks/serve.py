"""Serving benchmark: `attnclf serve` on 127.0.0.1 driven by a bounded async httpx client.

For each backend (torch, and onnx when the run has or can get a model.onnx), the server is
started as a subprocess and sent, at concurrency 1, 8 and 32, single-title requests and
100-title requests (real titles from --data). Reported per scenario: requests/s, titles/s,
p50 and p99 latency, errors; per server: its peak resident memory (VmHWM). Traffic stays on
the loopback interface, bounded by --requests and --seconds per scenario; the server is
stopped (SIGTERM) at the end.

    NLTK_DATA=... python benchmarks/serve.py                  # trains a run when --run is not given
    python benchmarks/serve.py --run artifacts/latest --backends torch

Timings are only meaningful on a quiet machine: the load average is recorded with each run,
and the client shares the machine's cores with the server.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import shlex
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402

from benchmarks.common import (  # noqa: E402
    DEFAULT_CONFIG,
    add_data,
    add_out,
    attnclf,
    check_data,
    child_env,
    command_line,
    load_average,
    machine,
    parser,
    run_child,
    write_results,
)

CONFIG = DEFAULT_CONFIG
CONCURRENCY = (1, 8, 32)
BATCH_TITLES = 100
# Targets for the 2-core CPU machine (single-title requests at concurrency 32).
TARGET_RPS, TARGET_P99_MS = 1000.0, 100.0


def free_port() -> int:
    """A loopback port nobody listens on right now."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def titles_from(path: Path, n: int) -> list[str]:
    """The first `n` titles of a labelled CSV (title column)."""
    import pandas as pd

    return pd.read_csv(path, dtype=str, keep_default_na=False)["title"].head(n).tolist()


def ensure_run(args: argparse.Namespace, tmp: Path) -> Path:
    """--run, or a run of configs/default.yaml trained on --data (not timed)."""
    if args.run is not None:
        return args.run
    print(f"training {CONFIG.name} on {args.data} to serve (not timed)", flush=True)
    run_child(
        attnclf(
            "train", "-c", str(CONFIG), "-o", str(tmp / "runs"), "--set", f"data.path={args.data}"
        ),
        tmp,
    )
    return (tmp / "runs" / "latest").resolve()


def start(run: Path, backend: str, tmp: Path) -> tuple[subprocess.Popen, str]:
    """`attnclf serve` on a free loopback port, once it answers /health."""
    port = free_port()
    log = (tmp / f"serve-{backend}.log").open("wb")
    command = attnclf("serve", "--run", str(run), "--port", str(port), "--backend", backend)
    proc = subprocess.Popen(command, stdout=log, stderr=log, env=child_env(), cwd=ROOT)
    url = f"http://127.0.0.1:{port}"
    for _ in range(600):
        if proc.poll() is not None:
            raise SystemExit(f"the server exited ({proc.returncode}); see {log.name}")
        try:
            if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                return proc, url
        except httpx.TransportError:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit("the server did not start within 60 s")


def peak_rss(pid: int) -> int:
    """A process's peak resident memory in bytes (Linux VmHWM; 0 where unknown)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


async def drive(url: str, bodies: list[dict], concurrency: int, seconds: float) -> dict:
    """Send `bodies` with at most `concurrency` in flight (stop after `seconds`): the figures."""
    latencies: list[float] = []
    errors = 0
    todo = iter(bodies)
    deadline = time.perf_counter() + seconds

    async def worker() -> None:
        nonlocal errors
        # One client (one keep-alive connection) per worker: a shared pool of 32 connections
        # costs httpx several times the CPU per request, and the client shares the cores.
        async with httpx.AsyncClient(base_url=url, timeout=30) as client:
            for body in todo:
                if time.perf_counter() > deadline:
                    return
                start = time.perf_counter()
                try:
                    response = await client.post("/predict", json=body)
                    errors += response.status_code != 200
                except httpx.HTTPError:
                    errors += 1
                latencies.append(time.perf_counter() - start)

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - start
    latencies.sort()
    titles = len(bodies[0]["texts"])
    return {
        "requests": len(latencies),
        "titles_per_request": titles,
        "concurrency": concurrency,
        "seconds": elapsed,
        "requests_per_second": len(latencies) / elapsed,
        "titles_per_second": len(latencies) * titles / elapsed,
        "p50_ms": 1000 * statistics.median(latencies),
        "p99_ms": 1000 * latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))],
        "errors": errors,
    }


def bench_backend(args: argparse.Namespace, run: Path, backend: str, tmp: Path) -> dict:
    """Every scenario against one server of `backend`."""
    titles = titles_from(args.data, 10_000)
    cycle = itertools.cycle(titles)
    proc, url = start(run, backend, tmp)
    scenarios = []
    try:
        for per_request, concurrency in itertools.product((1, BATCH_TITLES), CONCURRENCY):
            count = args.requests if per_request == 1 else max(args.requests // 10, 50)
            bodies = [{"texts": [next(cycle) for _ in range(per_request)]} for _ in range(count)]
            asyncio.run(drive(url, bodies[: 4 * concurrency], concurrency, args.seconds))
            figures = asyncio.run(drive(url, bodies, concurrency, args.seconds))
            scenarios.append(figures)
            print(
                f"{backend:5} {per_request:3} title(s) x c={concurrency:2}: "
                f"{figures['requests_per_second']:7,.0f} req/s {figures['titles_per_second']:8,.0f}"
                f" titles/s  p50 {figures['p50_ms']:6.1f} ms  p99 {figures['p99_ms']:6.1f} ms  "
                f"errors {figures['errors']}",
                flush=True,
            )
        memory = peak_rss(proc.pid)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
    return {"backend": backend, "peak_rss_bytes": memory, "scenarios": scenarios}


def markdown(report: dict) -> str:
    """The results as markdown tables, with the machine they were measured on."""
    m = report["machine"]
    lines = [
        "# Serving benchmark",
        "",
        "Written by `benchmarks/serve.py` (`make bench-serve`): `attnclf serve` on 127.0.0.1,",
        "driven by an async httpx client on the same machine (client and server share its",
        f"cores). Target (2 CPU cores): >= {TARGET_RPS:,.0f} single-title requests/s at",
        f"concurrency 32 with p99 < {TARGET_P99_MS:.0f} ms.",
        "",
        "| backend | titles/request | concurrency | requests/s | titles/s | p50 | p99 | errors |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for b in report["backends"]:
        for s in b["scenarios"]:
            lines.append(
                f"| {b['backend']} | {s['titles_per_request']} | {s['concurrency']} | "
                f"{s['requests_per_second']:,.0f} | {s['titles_per_second']:,.0f} | "
                f"{s['p50_ms']:.1f} ms | {s['p99_ms']:.1f} ms | {s['errors']} |"
            )
    lines += ["", "| backend | server peak resident memory |", "|---|---|"]
    lines += [
        f"| {b['backend']} | {b['peak_rss_bytes'] / 2**20:,.0f} MiB |" for b in report["backends"]
    ]
    lines += [
        "",
        f"Run: `{report['run']}`. Machine: {m['date']}; {m['platform']}; Python {m['python']}; "
        f"{m['cpu']} ({m['usable_cpus']} of {m['cpu_count']} CPUs usable); load average "
        f"{m['load_average_before']} before, {m['load_average_after']} after.  ",
        f"Command: `{m['command']}`",
    ]
    return "\n".join(lines)


def parse_args(argv: list[str]) -> argparse.Namespace:
    """Command-line options."""
    p = parser(__doc__)
    add_data(
        p, "labelled CSV (title,category): the titles sent, and the training data without --run"
    )
    p.add_argument(
        "--run", type=Path, default=None, help="run folder to serve (default: train one)"
    )
    p.add_argument("--backends", default="torch,onnx", help="comma-separated: torch, onnx")
    p.add_argument("--requests", type=int, default=3000, help="single-title requests per scenario")
    p.add_argument("--seconds", type=float, default=20.0, help="time cap per scenario")
    add_out(p)
    args = p.parse_args(argv)
    check_data(p, args.data)
    args.backends = args.backends.split(",")
    return args


def main(argv: list[str] | None = None) -> None:
    """Run every scenario for every backend; write serve.json and serve.md atomically."""
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    load_before = load_average()
    with tempfile.TemporaryDirectory(prefix="attnclf-serve-") as tmp:
        run = ensure_run(args, Path(tmp))
        if "onnx" in args.backends and not (run / "model.onnx").is_file():
            print("exporting the run to ONNX (not timed)", flush=True)
            run_child(attnclf("export", "--run", str(run), "--data", str(args.data)), Path(tmp))
        backends = [bench_backend(args, run, b, Path(tmp)) for b in args.backends]
    info = machine("cpu", command_line("serve.py", argv), load_before)
    report = {"run": str(run), "machine": info, "backends": backends}
    paths = write_results(args.out, "serve", report, markdown(report) + "\n")
    print(f"wrote {paths[0]} and {paths[1]}")
    print(shlex.join(["load average now", *map(str, load_average())]))


if __name__ == "__main__":
    main()
