"""benchmarks/common.py: the machine record, arguments and results every benchmark shares."""

from __future__ import annotations

import importlib.util
import json
import re
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks import common  # noqa: E402

MACHINE_KEYS = {
    "date",
    "platform",
    "python",
    "cpu",
    "cpu_count",
    "usable_cpus",
    "torch",
    "torch_threads",
    "device",
    "load_average_before",
    "load_average_after",
    "command",
}


def script(name: str):
    """A benchmark script, imported as a module."""
    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up while being defined
    spec.loader.exec_module(module)
    return module


def test_machine_record() -> None:
    before = common.load_average()
    m = common.machine("cpu", common.command_line("x.py", ["--a", "b c"], "python"), before)
    assert set(m) == MACHINE_KEYS
    assert m["command"] == "python benchmarks/x.py --a 'b c'"
    assert m["torch"] == torch.__version__ and m["device"] == "cpu"
    assert m["load_average_before"] == before and len(m["load_average_after"]) == 3
    assert common.machine_line(m).startswith(f"{m['date']}; {m['platform']}; Python ")


def test_results_are_written_side_by_side(tmp_path: Path) -> None:
    paths = common.write_results(tmp_path / "out", "x", {"a": 1}, "# x\n")
    assert paths == (tmp_path / "out" / "x.json", tmp_path / "out" / "x.md")
    assert json.loads(paths[0].read_text()) == {"a": 1} and paths[1].read_text() == "# x\n"


def test_data_argument_must_name_a_file(tmp_path: Path) -> None:
    p = common.parser("Title.\n\nMore.")
    common.add_data(p, "labelled CSV")
    common.add_out(p)
    args = p.parse_args(["--data", str(tmp_path / "missing.csv")])
    assert args.out == common.RESULTS and p.description == "Title."
    with pytest.raises(SystemExit):
        common.check_data(p, args.data)


@pytest.mark.parametrize("name", ["speed", "serve", "explain", "quality"])
def test_each_benchmark_uses_the_shared_helpers(name: str) -> None:
    module = script(name)
    assert module.machine is common.machine and module.write_results is common.write_results


def test_quality_meta_keeps_its_keys_and_adds_the_machine_record(monkeypatch, tmp_path) -> None:
    quality = script("quality")
    written = {}

    def fake_regime(name, regime, args, save) -> None:
        save({"rows": []})

    def fake_write(out, name, report, markdown) -> tuple[Path, Path]:
        written.update(report)
        out.mkdir(parents=True, exist_ok=True)
        (out / f"{name}.md").write_text(markdown, encoding="utf-8")
        return out / f"{name}.json", out / f"{name}.md"

    monkeypatch.setattr(quality, "run_regime", fake_regime)
    monkeypatch.setattr(quality, "write_results", fake_write)
    monkeypatch.setattr(quality, "markdown", lambda results, meta: "# q\n")
    threads = torch.get_num_threads()
    try:
        quality.main(["--regimes", "trec", "--seeds", "2", "--out", str(tmp_path)])
    finally:
        torch.set_num_threads(threads)
    meta = written["meta"]
    old = {"command", "platform", "cpu_count", "threads", "torch", "date", "load_start"}
    assert old | {"load_end", "seeds", "split_seed"} | MACHINE_KEYS <= set(meta)
    assert meta["command"] == "python benchmarks/quality.py --regimes trec --seeds 2 --out " + str(
        tmp_path
    )
    assert (meta["seeds"], meta["threads"], meta["split_seed"]) == (2, 2, 1234)
    assert len(meta["load_start"].split()) == 3 and len(meta["load_end"].split()) == 3


def test_serve_benchmark_without_wrk_says_so_in_one_line_and_falls_back(
    monkeypatch, capsys
) -> None:
    serve = script("serve")
    monkeypatch.setattr(serve.shutil, "which", lambda name: None)
    assert serve.generator_for("auto") == "httpx"
    out = capsys.readouterr().out
    assert out.count("\n") == 1 and "client-bound" in out and "apt-get install wrk" in out
    with pytest.raises(SystemExit, match="apt-get install wrk"):
        serve.generator_for("wrk")
    monkeypatch.setattr(serve.shutil, "which", lambda name: "/usr/bin/wrk")
    assert serve.generator_for("auto") == "wrk" and serve.generator_for("httpx") == "httpx"


def test_serve_benchmark_bodies_survive_lua_escaping() -> None:
    serve = script("serve")
    body = json.dumps({"texts": ['Caf\u00e9 "quoted" \\ back\nslash']}).encode()
    literal = serve.lua_string(body)
    assert literal.isascii() and "\n" not in literal and '"' not in literal[1:-1]
    unescaped = re.sub(r"\\(\d{3})", lambda m: chr(int(m[1])), literal[1:-1])
    assert unescaped.encode("latin-1") == body


def test_serve_benchmark_compares_each_server_with_as_many_bare_workers() -> None:
    serve = script("serve")
    assert serve.workers_of("torch, --workers 2") == 2
    assert serve.workers_of("bare FastAPI + uvicorn (1), --workers 2") == 2
    assert serve.workers_of("torch, --threads 2") == serve.workers_of("onnx") == 1
