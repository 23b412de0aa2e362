"""`attnclf export` and the onnx backend: parity with torch, no torch at run time, errors."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from conftest import ROOT, start_server
from typer.testing import CliRunner

from attnclf.cli import app
from attnclf.config import load_config
from attnclf.export import TOLERANCE, export_run
from attnclf.predict.base import Prediction
from attnclf.predict.onnx_backend import OnnxPredictor
from attnclf.predict.torch_backend import Predictor

TITLES = [
    "Tennis match ends in a draw",
    "Stocks and shares rally as market earnings beat forecasts",
    "NASA",
    "the of and",  # empty after cleaning
    " ".join(["Minister calls for ceasefire after troops cross the border"] * 8),  # truncated
]


@pytest.fixture(scope="module")
def exported(trained_run: Path) -> Path:
    """The module's tiny run, exported once with `attnclf export`."""
    result = CliRunner().invoke(app, ["export", "--run", str(trained_run)])
    assert result.exit_code == 0, result.output
    assert "max probability difference" in result.output
    assert f"onnx model: {trained_run / 'model.onnx'}" in result.output
    return trained_run


def same(onnx: Prediction, torch: Prediction) -> None:
    """Two backends' answers agree: exactly where discrete, within TOLERANCE where not."""
    for field in ("text", "clean", "label", "tokens", "truncated", "error"):
        assert getattr(onnx, field) == getattr(torch, field), field
    assert list(onnx.probabilities) == list(torch.probabilities)
    assert onnx.probabilities == pytest.approx(torch.probabilities, abs=TOLERANCE)
    assert onnx.attention == pytest.approx(torch.attention, abs=TOLERANCE)


def test_onnx_predictions_match_torch(exported: Path) -> None:
    onnx = OnnxPredictor.from_run(exported).predict(TITLES, top_k=3)
    torch = Predictor.from_run(exported).predict(TITLES, top_k=3)
    for o, t in zip(onnx, torch, strict=True):
        same(o, t)
    assert onnx[3].error is not None and onnx[4].truncated


def test_the_onnx_backend_never_imports_torch(exported: Path) -> None:
    code = (
        "import sys\n"
        "from attnclf.cli import app\n"
        f"app(['predict', '--run', {str(exported)!r}, '--backend', 'onnx', '--format', 'json',"
        f" {TITLES[0]!r}], standalone_mode=False)\n"
        "print('torch' in sys.modules)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    ).stdout.splitlines()
    assert out[-1] == "False"
    served = Prediction(**json.loads(out[0]))
    same(served, Predictor.from_run(exported).predict(TITLES[:1])[0])


def test_serve_with_the_onnx_backend(exported: Path) -> None:
    server = start_server(exported, "--backend", "onnx")
    try:
        response = httpx.post(f"{server.url}/predict", json={"texts": TITLES})
        assert response.status_code == 200
        torch = Predictor.from_run(exported).predict(TITLES)
        for answer, t in zip(response.json()["predictions"], torch, strict=True):
            same(Prediction(**answer), Prediction(**{**vars(t), "attention": []}))
        assert httpx.get(f"{server.url}/metadata").json()["backend"] == "onnx"
        explained = httpx.post(f"{server.url}/predict", json={"texts": TITLES, "explain": True})
        assert explained.status_code == 422 and "torch backend" in explained.json()["error"]
        maps = Path(f"/proc/{server.process.pid}/maps")
        if maps.is_file():
            assert "libtorch" not in maps.read_text()
    finally:
        server.stop()


def test_export_needs_test_texts(trained_run: Path, tmp_path: Path, run_cli) -> None:
    run = shutil.copytree(trained_run, tmp_path / "run", ignore=shutil.ignore_patterns("*.onnx"))
    config = (run / "config.yaml").read_text()
    (run / "config.yaml").write_text(config.replace("path: ", f"path: {tmp_path}/gone-", 1))
    result = run_cli("export", "--run", run)
    assert result.exit_code == 2 and "is missing" in result.stderr and "--data" in result.stderr
    assert not (run / "model.onnx").exists()
    result = run_cli("export", "--run", run, "--format", "tflite")
    assert result.exit_code == 2 and "the only format is onnx" in result.stderr


def test_a_damaged_onnx_model_is_one_line_and_exit_2(
    exported: Path, tmp_path: Path, run_cli
) -> None:
    run = shutil.copytree(exported, tmp_path / "run")
    (run / "model.onnx").write_bytes(b"not a model")
    result = run_cli("predict", "--run", run, "--backend", "onnx", "Stocks rally")
    assert result.exit_code == 2 and "is not a valid ONNX model" in result.stderr


ARCHITECTURES = {
    # naive Bayes over 2M hashed buckets, packed bidirectional GRU, masked additive attention
    "default": ("default.yaml", []),
    # the lesson's: unpacked vanilla RNN, unmasked linear attention, pad_to 12
    "lesson": ("lesson.yaml", []),
    # two stacked bidirectional LSTM layers, linear attention, the wide path
    "lstm-linear-wide": (
        "default.yaml",
        ["model.cell=lstm", "model.attention=linear", "model.num_layers=2", "model.wide_ngrams=2"],
    ),
}


@pytest.mark.slow
@pytest.mark.parametrize("name", ARCHITECTURES)
def test_export_parity_on_the_test_split(ag_news_10k: Path, tmp_path: Path, name: str) -> None:
    from attnclf.training.train import train

    config, sets = ARCHITECTURES[name]
    sets = [*sets, f"data.path={ag_news_10k}", "train.epochs=1", "train.num_threads=1"]
    run = train(load_config(ROOT / "configs" / config, sets), name, tmp_path).run_dir
    result = export_run(run)
    assert result.path == run / "model.onnx" and result.path.is_file()
    assert result.texts >= 1400  # the test split: 15% of the 10k titles
    assert result.max_difference <= TOLERANCE
