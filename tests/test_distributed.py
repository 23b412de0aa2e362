"""Multi-process training under torchrun (gloo on CPU) and the rank agreement helpers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import write_topic_csv

from attnclf.config import load_config
from attnclf.errors import UserError
from attnclf.training import distributed
from attnclf.training.distributed import DistContext, local_rank_zero_first
from attnclf.training.train import train

ROOT = Path(__file__).resolve().parents[1]
SMOKE = ROOT / "tests" / "smoke.yaml"
SETTINGS = ["train.epochs=2", "train.patience=5", "train.num_threads=1", "train.batch_size=16"]


def torchrun(tmp_path: Path, *overrides: str) -> subprocess.CompletedProcess:
    """`torchrun --standalone --nproc_per_node=2 -m attnclf train` on the smoke config."""
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    command += ["-m", "attnclf", "train", "-c", str(SMOKE), "-o", str(tmp_path / "out")]
    command += [arg for item in overrides for arg in ("--set", item)]
    return subprocess.run(
        command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=240
    )


def test_torchrun_two_processes_match_a_single_process(tmp_path: Path) -> None:
    data = write_topic_csv(tmp_path / "news.csv", per_class=80)
    result = torchrun(tmp_path, f"data.path={data}", *SETTINGS)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.count("run folder:") == 1  # only rank 0 reports
    assert "training on cpu (2 process(es))" in result.stdout
    out = tmp_path / "out"
    runs = [p for p in out.iterdir() if p.name != "latest"]
    assert len(runs) == 1 and runs[0].is_dir() and not runs[0].name.startswith(".")
    assert (out / "latest").resolve() == runs[0].resolve()
    ddp = json.loads((runs[0] / "metrics.json").read_text())["overall"]
    history = json.loads((runs[0] / "history.json").read_text())
    assert [row["epoch"] for row in history] == [1, 2]

    single = train(
        load_config(SMOKE, [f"data.path={data}", *SETTINGS]), "smoke", tmp_path / "single"
    ).metrics["overall"]
    # The sharded evaluation sees every test text exactly once, like a single process.
    assert ddp["num_samples"] == single["num_samples"] == 48
    # Not bit-identical (2 ranks x 16 per step make half the optimizer steps of 1 x 16), but
    # both learn the topics: same accuracy to within 0.1, and far above chance (0.25).
    assert abs(ddp["accuracy"] - single["accuracy"]) <= 0.1
    assert ddp["accuracy"] > 0.6


def test_torchrun_missing_data_fails_on_every_rank_instead_of_hanging(tmp_path: Path) -> None:
    missing = tmp_path / "absent.csv"
    result = torchrun(tmp_path, f"data.path={missing}", "data.url=null", *SETTINGS)
    assert result.returncode != 0
    assert "data file not found" in result.stderr
    assert "failed on another process" in result.stderr
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def _fake_agreement(monkeypatch: pytest.MonkeyPatch, others_failed: bool) -> list[bool]:
    """Replace the collective in `any_rank` with one where the other ranks report a value."""
    seen: list[bool] = []

    def fake(flag: bool, ctx: DistContext) -> bool:
        seen.append(flag)
        return flag or others_failed

    monkeypatch.setattr(distributed, "any_rank", fake)
    return seen


def test_local_rank_zero_runs_first_and_others_after_agreement(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seen = _fake_agreement(monkeypatch, others_failed=False)
    calls: list[str] = []
    first = DistContext(rank=2, world_size=4, local_rank=0)
    second = DistContext(rank=3, world_size=4, local_rank=1)
    assert local_rank_zero_first(first, lambda: calls.append("first") or "path") == "path"
    assert local_rank_zero_first(second, lambda: calls.append("second") or "path") == "path"
    assert calls == ["first", "second"] and seen == [False, False]


def test_a_failure_on_local_rank_zero_stops_every_rank(monkeypatch: pytest.MonkeyPatch) -> None:
    seen = _fake_agreement(monkeypatch, others_failed=False)

    def fail() -> str:
        raise UserError("data file not found: x.csv")

    with pytest.raises(UserError, match="data file not found"):
        local_rank_zero_first(DistContext(rank=0, world_size=2, local_rank=0), fail)
    assert seen == [True]

    _fake_agreement(monkeypatch, others_failed=True)
    never: list[int] = []
    with pytest.raises(UserError, match="failed on another process"):
        local_rank_zero_first(DistContext(rank=1, world_size=2, local_rank=1), never.clear)


def test_single_process_needs_no_process_group() -> None:
    assert local_rank_zero_first(DistContext(), lambda: 7) == 7
    assert distributed.any_rank(True, DistContext()) is True
    assert distributed.init_from_env("cpu") == DistContext()
