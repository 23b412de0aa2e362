"""benchmarks/speed.py: its utilisation figures, how results merge, and a tiny end-to-end run.

No timing is asserted anywhere: only that the figures exist and are well formed.
"""

from __future__ import annotations

import importlib.util
import json
import random
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from attnclf.config import ModelConfig
from attnclf.model.classifier import AttentionClassifier

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def speed():
    """The benchmark script, imported as a module."""
    spec = importlib.util.spec_from_file_location("speed", ROOT / "benchmarks" / "speed.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["speed"] = module  # dataclasses look their module up while being defined
    spec.loader.exec_module(module)
    return module


def test_merge_keeps_earlier_figures_with_their_machine(speed, tmp_path: Path) -> None:
    (tmp_path / "speed.json").write_text(
        json.dumps(
            {
                "machines": {"old-gpu": {"device": "H100"}, "old-cpu": {"device": "cpu"}},
                "figures": {
                    "gpu_utilisation": {"value": 0.01, "machine": "old-gpu"},
                    "help_seconds": {"value": 9.0, "machine": "old-cpu"},
                },
            }
        )
    )
    b = SimpleNamespace(device="cpu", figures={"help_seconds": speed.Figure("help", "s", [0.2])})
    report = speed.merge(tmp_path, b, {"date": "2026-01-02T03:04:05+00:00"}, {"rows": 10})
    new = report["figures"]["help_seconds"]
    assert new["value"] == 0.2 and new["target"] == "< 0.3 s" and new["met"] == "yes"
    assert report["figures"]["gpu_utilisation"]["machine"] == "old-gpu"
    assert set(report["machines"]) == {"old-gpu", new["machine"]}  # old-cpu no longer used
    assert report["machines"][new["machine"]]["corpus"] == {"rows": 10}
    assert "| help | 0.2 s |" in speed.markdown(
        {**report, "machines": {}, "figures": {"help_seconds": new}}
    )


def write_titles(tmp_path: Path) -> Path:
    """A small made-up titles CSV of three topics."""
    rng = random.Random(0)
    words = {"World": "minister troops", "Sports": "tennis goal", "Business": "stocks profit"}
    rows = ["title,category"] + [
        f"{rng.choice(w.split())} {rng.choice(['new', 'says', 'week'])} {i},{label}"
        for i in range(60)
        for label, w in words.items()
    ]
    data = tmp_path / "titles.csv"
    data.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return data


def test_training_section_with_the_default_config_end_to_end(speed, tmp_path: Path) -> None:
    # the default's `auto` choices: the in-process breakdown must use the run's resolved config
    data, out = write_titles(tmp_path), tmp_path / "results"
    speed.main(
        [
            "--data",
            str(data),
            "--rows",
            "300",
            "--repeats",
            "1",
            "--only",
            "train",
            "--out",
            str(out),
        ]
    )
    figures = json.loads((out / "speed.json").read_text())["figures"]
    assert figures["epoch_seconds"]["value"] > 0 and figures["train_peak_rss_gb"]["value"] > 0
    end_to_end = {"epoch_seconds", "first_epoch_seconds", "train_wall_seconds", "train_peak_rss_gb"}
    assert set(figures) - end_to_end  # and the in-process breakdown's figures


def test_prediction_and_explanation_sections_end_to_end(speed, tmp_path: Path) -> None:
    data, out = write_titles(tmp_path), tmp_path / "results"
    args = ["--data", str(data), "--rows", "300", "--repeats", "1", "--only", "predict,explain"]
    args += [
        "--predict-titles",
        "200",
        "--explain-titles",
        "100",
        "--out",
        str(out),
        "--config",
        str(ROOT / "tests" / "smoke.yaml"),
    ]
    speed.main(args)
    report = json.loads((out / "speed.json").read_text())
    rate = report["figures"]["predict_titles_per_second"]
    assert rate["value"] > 0 and rate["unit"] == "titles/s" and len(rate["runs"]) == 1
    machine = report["machines"][rate["machine"]]
    assert machine["corpus"]["kind"] == "resampled" and machine["corpus"]["rows"] == 300
    assert machine["torch"] and machine["cpu_count"] and "speed.py" in machine["command"]
    table = (out / "speed.md").read_text()
    assert "batch prediction, 200 titles" in table and "## Machines" in table
    explained = report["figures"]["explain_titles_per_second"]
    assert explained["value"] > 0 and explained["target"] == ">= 1,000 titles/s"
    assert "batch explanation, 100 titles" in table


def test_utilisation_figures_are_kept_apart_under_the_device(speed, monkeypatch, tmp_path) -> None:
    monkeypatch.setattr(speed, "matmul_peak", lambda device: 1e15)
    b = speed.Bench(SimpleNamespace(), tmp_path, "cuda")
    model = AttentionClassifier(50, 4, ModelConfig())
    speed.gpu_utilisation(b, model, torch.tensor([0, 3, 8]), passes=[2.0, 4.0, 3.0], n=3000)
    per_sample = 3 * model.forward_flops(4.0)  # an empty text counts 1 token
    util = b.figures["cuda_utilisation"]
    assert util.label.startswith("[cuda] ") and "time step waits" in util.note
    assert util.value == pytest.approx(3000 * per_sample / 3.0 / 1e15)
    assert b.figures["cuda_model_tflops"].value == pytest.approx(3000 * per_sample / 3.0 / 1e12)
    assert "utilisation" not in b.figures  # never mixed with CPU figures


def test_stages_time_every_step_of_batch_prediction(speed, trained_run: Path, tmp_path) -> None:
    titles = tmp_path / "titles.csv"
    titles.write_text("title\n" + "\n".join(["Stocks rally as oil falls", "the of and"] * 50))
    b = speed.Bench(SimpleNamespace(repeats=2), tmp_path, "cpu")
    speed.stages(b, trained_run, titles, "torch")
    figures = {k: f for k, f in b.figures.items() if k.startswith("torch_stage_")}
    assert set(figures) == {f"torch_stage_{name}_seconds" for name in speed.STAGES}
    assert all(len(f.runs) == 2 and min(f.runs) >= 0 for f in figures.values())
    assert all("100 titles" in f.label for f in figures.values())
    shares = [float(f.note.split("%")[0]) for f in figures.values()]
    assert 97 <= sum(shares) <= 103  # each stage's share of the total, rounded
