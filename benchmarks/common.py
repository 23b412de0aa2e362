"""What the benchmarks share: the record of the machine a run was measured on, the usual
arguments, `python -m attnclf` children with their wall time and peak memory, and the writing of
a benchmark's NAME.json and NAME.md.

Each benchmark is a script (`python benchmarks/speed.py`) that puts the checkout first on the
path and imports this module as `benchmarks.common`.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
SHARED_DATA = ROOT.parent / "shared" / "data"
TITLES_10K = SHARED_DATA / "ag_news_titles_10k.csv"
DEFAULT_CONFIG = ROOT / "configs" / "default.yaml"


# --- machine ----------------------------------------------------------------------------------


def load_average() -> list[float]:
    """The 1, 5 and 15 minute load averages, rounded to 2 decimals."""
    return [round(x, 2) for x in os.getloadavg()]


def cpu_model() -> str:
    """The CPU's marketing name, where the OS tells it."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def command_line(script: str, argv: list[str], python: str | None = None) -> list[str]:
    """How a benchmark was invoked: `python benchmarks/NAME.py ARGS` (`python` defaults to this
    interpreter's file name)."""
    return [python or Path(sys.executable).name, f"benchmarks/{script}", *argv]


def machine(device: str, argv: list[str], load_before: list[float]) -> dict:
    """Where and how this invocation ran: date, platform, Python, CPU, torch, device, the load
    average before and after, and the command (`argv`, joined)."""
    import torch

    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "usable_cpus": usable,
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "device": torch.cuda.get_device_name() if device == "cuda" else "cpu",
        "load_average_before": load_before,
        "load_average_after": load_average(),
        "command": shlex.join(argv),
    }


def machine_line(m: dict) -> str:
    """The machine record as one markdown sentence (without the command)."""
    return (
        f"{m['date']}; {m['platform']}; Python {m['python']}; {m['cpu']} "
        f"({m['usable_cpus']} of {m['cpu_count']} CPUs usable); torch {m['torch']} "
        f"({m['torch_threads']} threads); load average {m['load_average_before']} before, "
        f"{m['load_average_after']} after."
    )


# --- arguments --------------------------------------------------------------------------------


def parser(doc: str | None) -> argparse.ArgumentParser:
    """An argument parser described by the first paragraph of a benchmark's docstring."""
    return argparse.ArgumentParser(description=(doc or "").split("\n\n")[0])


def add_data(p: argparse.ArgumentParser, help: str, default: Path | None = TITLES_10K) -> None:
    """`--data`: a labelled CSV, by default the shared 10k AG News titles."""
    p.add_argument("--data", type=Path, default=default, help=help)


def add_out(p: argparse.ArgumentParser) -> None:
    """`--out`: the folder the results are written to (benchmarks/results)."""
    p.add_argument("--out", type=Path, default=RESULTS, help="folder of the results")


def check_data(p: argparse.ArgumentParser, data: Path | None) -> None:
    """Stop with a usage error when `--data` names no file."""
    if data is not None and not data.is_file():
        p.error(f"data file not found: {data} (pass --data)")


# --- children ---------------------------------------------------------------------------------


@dataclass
class ChildResult:
    """A finished subprocess: wall time, peak resident memory and what it printed."""

    seconds: float
    max_rss_bytes: int
    stdout: str


def child_env() -> dict[str, str]:
    """The environment for `python -m attnclf` children: this checkout first on the path."""
    path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)
    return {**os.environ, "PYTHONPATH": path}


def run_child(args: list[str], tmp: Path) -> ChildResult:
    """Run a command to completion, with its wall time and its own peak RSS.

    The RSS comes from wait4 for this child alone; RUSAGE_CHILDREN would give the largest of
    all children waited for so far.
    """
    out_path, err_path = tmp / "child.out", tmp / "child.err"
    with out_path.open("wb") as out, err_path.open("wb") as err:
        start = time.perf_counter()
        proc = subprocess.Popen(args, stdout=out, stderr=err, env=child_env(), cwd=ROOT)
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        tail = err_path.read_text(errors="replace")[-2000:]
        raise SystemExit(f"failed ({proc.returncode}): {shlex.join(args)}\n{tail}")
    # ru_maxrss is in kilobytes on Linux, bytes on macOS.
    scale = 1 if sys.platform == "darwin" else 1024
    return ChildResult(seconds, usage.ru_maxrss * scale, out_path.read_text(errors="replace"))


def attnclf(*args: str) -> list[str]:
    """The command line of `python -m attnclf ARGS`."""
    return [sys.executable, "-m", "attnclf", *args]


# --- results ----------------------------------------------------------------------------------


def write_results(out: Path, name: str, report: dict, markdown: str) -> tuple[Path, Path]:
    """Write `out/NAME.json` and `out/NAME.md` atomically; their paths."""
    from attnclf.jsonio import write_json, write_text_atomic

    json_path, md_path = Path(out) / f"{name}.json", Path(out) / f"{name}.md"
    write_json(json_path, report)
    write_text_atomic(md_path, markdown)
    return json_path, md_path
