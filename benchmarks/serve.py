"""Serving benchmark: `attnclf serve` on 127.0.0.1 against the bare web stack, under wrk.

The load generator is wrk when it is installed: it is C, so it spends a few microseconds of
CPU per request and leaves the server the machine's cores (an async Python client spends
1.5-2 ms per request and measures itself). Without wrk the benchmark says so in one line and
drives the servers with an async httpx client instead; those figures are marked client-bound.

Servers, all started up front: the bare stack (`benchmarks/bare_server.py`: FastAPI on uvicorn
answering a fixed answer of the same shape, one per request shape, with one worker process and
with `--workers`; and a plain ASGI function answering the same, which is not a ceiling but shows
what FastAPI itself costs), `attnclf serve` with the torch backend, with onnx (when the run has
or can get a model.onnx), torch with `--workers 2`, torch with `--batch-wait-ms 2` (would a
batching window pay?), torch with `--threads 2` (do two backend threads pay?) and torch with
`--passes 1` (what does a second pass beside the first, while a full batch waits, buy?). Each
scenario (titles per request x concurrency, real titles from --data) runs on every server back to
back, the bare stacks first, so each figure has its ceiling from the same minute: the report is a
ratio, each server's to the bare stack with as many worker processes. Reported per scenario and
server: requests/s, titles/s, p50 and p99 latency, errors, the server's CPU time per request,
and that ratio; per server its peak resident memory (VmHWM).

    NLTK_DATA=... python benchmarks/serve.py                  # trains a run when --run is not given
    python benchmarks/serve.py --run artifacts/latest --seconds 3

Timings are only meaningful on a quiet machine: the load average is recorded with each run.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import re
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
import psutil  # noqa: E402

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
BATCH_TITLES = 100
SCENARIOS = ((1, 1), (1, 32), (BATCH_TITLES, 32))  # (titles per request, concurrency)
BODIES = 1000  # distinct request bodies per scenario, cycled
# Targets (issue #26), wrk at concurrency 32 on the 2-core CPU machine.
TARGET_RATIO, TARGET_P99_MS, TARGET_TITLES_PER_SECOND = 0.6, 50.0, 15_000.0
INSTALL = "install wrk (apt-get install wrk, brew install wrk) for figures that measure the server"


@dataclass
class Server:
    """One server under test: how it was started and its process."""

    name: str
    process: subprocess.Popen
    url: str
    shape: int | None  # the bare stack answers one request shape; attnclf any

    def cpu_seconds(self) -> float:
        """CPU time of the server and its worker processes so far."""
        procs = [psutil.Process(self.process.pid)]
        procs += procs[0].children(recursive=True)
        total = 0.0
        for p in procs:
            try:
                t = p.cpu_times()
                total += t.user + t.system
            except psutil.NoSuchProcess:
                pass
        return total

    def peak_rss(self) -> int:
        """The largest peak resident memory (VmHWM) of the server's processes, in bytes."""
        procs = [psutil.Process(self.process.pid)]
        procs += procs[0].children(recursive=True)
        return max(peak_rss(p.pid) for p in procs)

    def stop(self) -> None:
        """SIGTERM, and wait for it to exit."""
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.process.kill()


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


def start(name: str, command: list[str], port: int, tmp: Path, shape: int | None = None) -> Server:
    """Start a server command listening on `port`; return once it answers /health."""
    log = (tmp / f"{re.sub(r'[^a-z0-9]+', '-', name)}.log").open("wb")
    proc = subprocess.Popen(command, stdout=log, stderr=log, env=child_env(), cwd=ROOT)
    server = Server(name, proc, f"http://127.0.0.1:{port}", shape)
    for _ in range(1200):
        if proc.poll() is not None:
            raise SystemExit(f"{name} exited ({proc.returncode}); see {log.name}")
        try:
            if httpx.get(f"{server.url}/health", timeout=1).status_code == 200:
                return server
        except httpx.TransportError:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit(f"{name} did not start within 120 s")


def start_attnclf(name: str, run: Path, tmp: Path, *flags: str) -> Server:
    """`attnclf serve --run RUN FLAGS` on a free loopback port."""
    port = free_port()
    return start(name, attnclf("serve", "--run", str(run), "--port", str(port), *flags), port, tmp)


def start_bare(
    answer: bytes, shape: int, tmp: Path, workers: int = 1, plain: bool = False
) -> Server:
    """The bare stack answering `answer` (the answer to a request of `shape` titles); `plain`:
    a plain ASGI function on uvicorn instead of FastAPI (not a ceiling: what FastAPI costs)."""
    port, path = free_port(), tmp / f"answer-{shape}.json"
    path.write_bytes(answer)
    command = [sys.executable, str(ROOT / "benchmarks" / "bare_server.py"), "--port", str(port)]
    command += ["--answer", str(path), "--workers", str(workers), *(["--plain"] if plain else [])]
    name = f"bare {'plain ASGI' if plain else 'FastAPI'} + uvicorn ({shape})"
    name += f", --workers {workers}" if workers > 1 else ""
    return start(name, command, port, tmp, shape)


def workers_of(name: str) -> int:
    """The worker processes in a server's name (`..., --workers N`); 1 without."""
    found = re.search(r"--workers (\d+)", name)
    return int(found[1]) if found else 1


def peak_rss(pid: int) -> int:
    """A process's peak resident memory in bytes (Linux VmHWM; 0 where unknown)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def lua_string(data: bytes) -> str:
    """`data` as a Lua string literal (every byte but plain ASCII as a decimal escape)."""
    keep = set(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 ,:[]{}")
    return '"' + "".join(chr(b) if b in keep else f"\\{b:03d}" for b in data) + '"'


WRK_SCRIPT = """\
local bodies = {%s}
local i = 0
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
request = function()
  i = i %% #bodies + 1
  return wrk.format(nil, "/predict", nil, bodies[i])
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRK {"requests": %%d, "duration_us": %%d, "p50_us": %%d, "p99_us": %%d, "errors": %%d, ' ..
    '"non_2xx": %%d}\\n', summary.requests, summary.duration, latency:percentile(50),
    latency:percentile(99), e.connect + e.read + e.write + e.timeout, e.status))
end
"""


def wrk(url: str, bodies: list[bytes], concurrency: int, seconds: float, tmp: Path) -> dict:
    """One wrk run (one thread, `concurrency` connections) cycling `bodies`: its figures."""
    script = tmp / "bodies.lua"
    script.write_text(WRK_SCRIPT % ",\n".join(map(lua_string, bodies)), encoding="ascii")
    command = ["wrk", "-t1", f"-c{concurrency}", f"-d{max(1, round(seconds))}s", "--timeout", "10s"]
    out = subprocess.run(
        [*command, "-s", str(script), url], capture_output=True, text=True, check=True
    ).stdout
    raw = json.loads(out[out.index("WRK ") + 4 :].splitlines()[0])
    elapsed = raw["duration_us"] / 1e6
    return {
        "requests": raw["requests"],
        "seconds": elapsed,
        "requests_per_second": raw["requests"] / elapsed,
        "p50_ms": raw["p50_us"] / 1000,
        "p99_ms": raw["p99_us"] / 1000,
        "errors": raw["errors"] + raw["non_2xx"],
    }


async def _drive(url: str, bodies: list[bytes], concurrency: int, seconds: float) -> dict:
    """Send `bodies` in a cycle with `concurrency` in flight for `seconds`: the figures."""
    latencies: list[float] = []
    errors = 0
    todo = itertools.cycle(bodies)
    deadline = time.perf_counter() + seconds

    async def worker() -> None:
        nonlocal errors
        # One client (one keep-alive connection) per worker: a shared pool of 32 connections
        # costs httpx several times the CPU per request.
        async with httpx.AsyncClient(base_url=url, timeout=30) as client:
            for body in todo:
                if time.perf_counter() > deadline:
                    return
                start = time.perf_counter()
                try:
                    response = await client.post("/predict", content=body)
                    errors += response.status_code != 200
                except httpx.HTTPError:
                    errors += 1
                latencies.append(time.perf_counter() - start)

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - start
    latencies.sort()
    return {
        "requests": len(latencies),
        "seconds": elapsed,
        "requests_per_second": len(latencies) / elapsed,
        "p50_ms": 1000 * statistics.median(latencies),
        "p99_ms": 1000 * latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))],
        "errors": errors,
    }


def measure(
    generator: str, server: Server, bodies: list[bytes], concurrency: int, seconds: float, tmp: Path
) -> dict:
    """One scenario against one server, with the server's CPU time per request."""
    cpu = server.cpu_seconds()
    url = f"{server.url}/predict"
    if generator == "wrk":
        figures = wrk(url, bodies, concurrency, seconds, tmp)
    else:
        figures = asyncio.run(_drive(server.url, bodies, concurrency, seconds))
    figures["server_cpu_ms_per_request"] = (
        1000 * (server.cpu_seconds() - cpu) / max(figures["requests"], 1)
    )
    return figures


def bodies_of(titles: list[str], per_request: int) -> list[bytes]:
    """`BODIES` request bodies of `per_request` consecutive titles each (cycling the titles)."""
    cycle = itertools.cycle(titles)
    return [
        json.dumps({"texts": [next(cycle) for _ in range(per_request)]}).encode()
        for _ in range(BODIES)
    ]


def run_scenarios(args: argparse.Namespace, run: Path, tmp: Path, generator: str) -> dict:
    """Start every server, run every scenario on each back to back; stop them all."""
    titles = titles_from(args.data, 10_000)
    servers: list[Server] = []
    try:
        servers.append(start_attnclf("torch", run, tmp))
        if "onnx" in args.backends:
            servers.append(start_attnclf("onnx", run, tmp, "--backend", "onnx"))
        if args.workers > 1:
            name = f"torch, --workers {args.workers}"
            servers.append(start_attnclf(name, run, tmp, "--workers", str(args.workers)))
        servers.append(start_attnclf("torch, --batch-wait-ms 2", run, tmp, "--batch-wait-ms", "2"))
        servers.append(start_attnclf("torch, --threads 2", run, tmp, "--threads", "2"))
        servers.append(start_attnclf("torch, --passes 1", run, tmp, "--passes", "1"))
        shapes = sorted({n for n, _ in SCENARIOS})
        for shape in shapes:
            answer = httpx.post(f"{servers[0].url}/predict", content=bodies_of(titles, shape)[0])
            servers.insert(0, start_bare(answer.content, shape, tmp, plain=True))
            if args.workers > 1:
                servers.insert(0, start_bare(answer.content, shape, tmp, args.workers))
            servers.insert(0, start_bare(answer.content, shape, tmp))
        scenarios = []
        for per_request, concurrency in SCENARIOS:
            bodies = bodies_of(titles, per_request)
            results = {}
            for server in servers:
                if server.shape not in (None, per_request):
                    continue
                measure(generator, server, bodies, concurrency, 1, tmp)
                figures = measure(generator, server, bodies, concurrency, args.seconds, tmp)
                figures["titles_per_second"] = figures["requests_per_second"] * per_request
                results[server.name] = figures
                print(
                    f"{server.name:32} {per_request:3} title(s) x c={concurrency:2}: "
                    f"{figures['requests_per_second']:7,.0f} req/s "
                    f"{figures['titles_per_second']:8,.0f} titles/s  p50 {figures['p50_ms']:6.1f}"
                    f" ms  p99 {figures['p99_ms']:6.1f} ms  errors {figures['errors']}  cpu "
                    f"{figures['server_cpu_ms_per_request']:.3f} ms/req",
                    flush=True,
                )
            bare = {workers_of(n): f for n, f in results.items() if n.startswith("bare FastAPI")}
            for name, figures in results.items():  # each against the bare stack as many workers
                ceiling = bare.get(workers_of(name), bare[1])
                figures["ratio_to_bare"] = (
                    figures["requests_per_second"] / ceiling["requests_per_second"]
                )
            scenarios.append(
                {"titles_per_request": per_request, "concurrency": concurrency, "servers": results}
            )
        memory = {s.name: s.peak_rss() for s in servers}
    finally:
        for server in servers:
            server.stop()
    return {"scenarios": scenarios, "peak_rss_bytes": memory}


def _cell(figures: dict, key: str) -> str:
    value = figures[key]
    return {
        "requests_per_second": f"{value:,.0f}",
        "titles_per_second": f"{value:,.0f}",
        "p50_ms": f"{value:,.1f} ms",
        "p99_ms": f"{value:,.1f} ms",
        "server_cpu_ms_per_request": f"{value:.2f} ms",
        "ratio_to_bare": f"{value:.2f}x",
        "errors": str(value),
    }[key]


COLUMNS = (
    ("requests/s", "requests_per_second"),
    ("titles/s", "titles_per_second"),
    ("x bare", "ratio_to_bare"),
    ("p50", "p50_ms"),
    ("p99", "p99_ms"),
    ("server CPU/request", "server_cpu_ms_per_request"),
    ("errors", "errors"),
)


def table(report: dict) -> list[str]:
    """Every scenario and server as one markdown table."""
    head = ["titles/request", "concurrency", "server", *(c for c, _ in COLUMNS)]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for s in report["scenarios"]:
        for name, figures in s["servers"].items():
            cells = [str(s["titles_per_request"]), str(s["concurrency"]), name]
            lines.append("| " + " | ".join(cells + [_cell(figures, k) for _, k in COLUMNS]) + " |")
    return lines


def markdown(report: dict) -> str:
    """The results as markdown tables, with the machine they were measured on."""
    m = report["machine"]
    client = (
        f"{report['generator']} (one thread)"
        if not report["client_bound"]
        else "an async httpx client on the same cores: CLIENT-BOUND figures (wrk not installed)"
    )
    lines = [
        "# Serving benchmark",
        "",
        "Written by `benchmarks/serve.py` (`make bench-serve`): `attnclf serve` on 127.0.0.1 and,",
        "in the same run, scenario by scenario, the bare FastAPI + uvicorn stack answering a fixed",
        f"answer of the same shape. Load generator: {client}. Targets (2 CPU cores, concurrency",
        f"32): single titles >= {TARGET_RATIO}x the bare stack's requests/s (x bare: against"
        " the bare stack with as many worker processes) with p99 < "
        f"{TARGET_P99_MS:.0f} ms; {BATCH_TITLES}-title requests >= {TARGET_TITLES_PER_SECOND:,.0f}"
        " titles/s.",
        "",
        *table(report),
        "",
        "| server | peak resident memory |",
        "|---|---|",
        *(f"| {name} | {rss / 2**20:,.0f} MiB |" for name, rss in report["peak_rss_bytes"].items()),
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
    p.add_argument("--workers", type=int, default=2, help="also serve torch with this many workers")
    p.add_argument("--seconds", type=int, default=5, help="length of each measured scenario")
    p.add_argument(
        "--client", choices=("auto", "wrk", "httpx"), default="auto", help="load generator"
    )
    add_out(p)
    args = p.parse_args(argv)
    check_data(p, args.data)
    args.backends = args.backends.split(",")
    if not set(args.backends) <= {"torch", "onnx"} or "torch" not in args.backends:
        p.error("--backends: torch, optionally with onnx")
    if args.seconds <= 0 or args.workers < 1:
        p.error("--seconds must be positive and --workers at least 1")
    return args


def generator_for(choice: str) -> str:
    """wrk or httpx: wrk when asked for or installed (a one-line notice when it is not)."""
    if choice == "httpx":
        return "httpx"
    if shutil.which("wrk"):
        return "wrk"
    if choice == "wrk":
        raise SystemExit(f"wrk not found; {INSTALL}")
    print(f"wrk not found: the figures are client-bound (httpx); {INSTALL}", flush=True)
    return "httpx"


def main(argv: list[str] | None = None) -> None:
    """Run every scenario on every server; write serve.json and serve.md atomically."""
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    generator = generator_for(args.client)
    load_before = load_average()
    with tempfile.TemporaryDirectory(prefix="attnclf-serve-") as tmp:
        run = ensure_run(args, Path(tmp))
        if "onnx" in args.backends and not (run / "model.onnx").is_file():
            print("exporting the run to ONNX (not timed)", flush=True)
            run_child(attnclf("export", "--run", str(run), "--data", str(args.data)), Path(tmp))
        results = run_scenarios(args, run, Path(tmp), generator)
    info = machine("cpu", command_line("serve.py", argv), load_before)
    version = ""
    if generator == "wrk":
        done = subprocess.run(["wrk", "--version"], capture_output=True, text=True)
        version = (done.stdout + done.stderr).split(" Copyright")[0].strip()
    report = {
        "run": str(run),
        "generator": version or generator,
        "client_bound": generator == "httpx",
        "machine": info,
        **results,
    }
    paths = write_results(args.out, "serve", report, markdown(report) + "\n")
    print(f"wrote {paths[0]} and {paths[1]}")
    print(shlex.join(["load average now", *map(str, load_average())]))


if __name__ == "__main__":
    main()
