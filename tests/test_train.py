"""Training end to end: the run folder, best-weights restore, determinism, interrupt and resume."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from conftest import TOPICS, write_topic_csv

from attnclf.config import TrainConfig, load_config
from attnclf.encoding.batching import TextDataset, make_loader
from attnclf.errors import UserError
from attnclf.model.classifier import AttentionClassifier
from attnclf.runfolder import RunFolder
from attnclf.training.loop import Trainer
from attnclf.training.train import train

ROOT = Path(__file__).resolve().parents[1]
SMOKE = ROOT / "tests" / "smoke.yaml"


def smoke(data: Path, *extra: str):
    """The smoke config on `data`, single-threaded for reproducibility."""
    return load_config(SMOKE, [f"data.path={data}", "train.num_threads=1", *extra])


@pytest.fixture(scope="module")
def data_csv(tmp_path_factory) -> Path:
    """A 240-row synthetic dataset shared by this module's tests."""
    return write_topic_csv(tmp_path_factory.mktemp("data") / "news.csv")


@pytest.fixture(scope="module")
def trained(data_csv: Path, tmp_path_factory):
    """One small trained run."""
    out = tmp_path_factory.mktemp("artifacts")
    return train(smoke(data_csv, "train.epochs=4", "train.patience=4"), "smoke", out)


def test_run_folder_is_complete_and_latest_points_at_it(trained) -> None:
    run_dir = trained.run_dir
    expected = """config.yaml tokenizer.json label_encoder.json stopwords.json model.safetensors
        metrics.json history.json data_report.json learning_curves.png confusion_matrix.png"""
    assert {p.name for p in run_dir.iterdir()} == set(expected.split())
    assert (run_dir.parent / "latest").resolve() == run_dir.resolve()
    assert not [p for p in run_dir.parent.iterdir() if p.name.endswith(".incomplete")]
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert set(metrics) == {"overall", "class", "confusion_matrix"}
    assert set(metrics["overall"]) == {
        "precision",
        "recall",
        "f1",
        "accuracy",
        "macro_f1",
        "num_samples",
        "ece",
    }
    assert metrics["confusion_matrix"]["labels"] == sorted(TOPICS)
    assert metrics["overall"]["num_samples"] == sum(map(sum, metrics["confusion_matrix"]["matrix"]))
    history = json.loads((run_dir / "history.json").read_text())
    assert [h["epoch"] for h in history] == [1, 2, 3, 4]
    assert set(history[0]) == {
        "epoch",
        "train_loss",
        "val_loss",
        "val_f1",
        "val_accuracy",
        "lr",
        "seconds",
    }
    assert (run_dir / "learning_curves.png").read_bytes()[:4] == b"\x89PNG"


def test_loss_falls_and_model_learns_synthetic_topics(trained) -> None:
    losses = [h["train_loss"] for h in trained.history]
    assert losses[-1] < losses[0]
    assert trained.metrics["overall"]["accuracy"] > 0.8


def test_run_round_trips_through_load(trained) -> None:
    run = RunFolder.load(trained.run_dir)
    model = AttentionClassifier(len(run.tokenizer), len(run.labels), run.config.model)
    model.load_state_dict(run.state_dict)
    assert run.labels.classes == sorted(TOPICS)
    assert run.preprocessor("The Minister and the summit") == "minister summit"


def _tiny_trainer(
    epochs: int, patience: int, lr: float = 0.05, **train: object
) -> tuple[Trainer, object, object]:
    """A trainer on random data that overfits quickly, so val loss rises after a few epochs."""
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    seqs = torch.randint(2, 40, (120, 6), generator=g).tolist()
    labels = torch.randint(0, 2, (120,), generator=g).tolist()
    train_ds = TextDataset(seqs[:80], labels[:80], 8)
    val_ds = TextDataset(seqs[80:], labels[80:], 8)
    cfg = TrainConfig(
        epochs=epochs, patience=patience, lr=lr, lr_patience=10, batch_size=16, **train
    )
    model = AttentionClassifier(40, 2, load_config(SMOKE).model)
    train_loader = make_loader(train_ds, 16, shuffle=True, bucket=True, seed=0)
    val_loader = make_loader(val_ds, 64, shuffle=False, bucket=True)
    trainer = Trainer(model, cfg, torch.device("cpu"), steps_per_epoch=len(train_loader))
    return trainer, train_loader, val_loader


def test_the_wide_table_steps_only_the_rows_of_its_batch() -> None:
    """Lazy Adam: a step moves only the wide rows its batch touched, not every row with momentum."""
    trainer, train_loader, _ = _tiny_trainer(epochs=1, patience=1)
    first, second = list(train_loader)[:2]
    table = trainer.model.wide.table.weight
    trainer.train_epoch([first])
    before = table.detach().clone()
    trainer.train_epoch([second])
    moved = set((table.detach() != before).any(dim=1).nonzero().flatten().tolist())
    mask = second.ids != 0
    features, counts = trainer.model._ngrams(second.ids, mask, trainer.model.wide.order)
    touched = set(features[counts > 0].tolist())
    assert moved and moved <= touched


def test_linear_schedule_decays_every_step_to_zero_and_resumes() -> None:
    """`train.schedule=linear`: lr * (1 - step / (epochs * steps)), carried by the checkpoint."""
    trainer, train_loader, val_loader = _tiny_trainer(
        epochs=3, patience=10, lr=0.03, schedule="linear"
    )
    assert len(train_loader) == 5
    trainer.train_epoch(train_loader)
    trainer.epoch = 1  # as `fit` records it after the epoch
    assert trainer.optimizers[0].param_groups[0]["lr"] == pytest.approx(0.03 * (1 - 5 / 15))
    resumed, _, _ = _tiny_trainer(epochs=3, patience=10, lr=0.03, schedule="linear")
    resumed.load_state_dict(trainer.state_dict())
    assert resumed.optimizers[0].param_groups[0]["lr"] == pytest.approx(0.03 * (1 - 5 / 15))
    history = resumed.fit(train_loader, val_loader)
    assert [h["lr"] for h in history] == pytest.approx([0.03 / 3, 0.0])


def test_stop_on_picks_the_validation_signal() -> None:
    """`model`: the mixture's loss (what predict serves); `network`: the network's own."""
    losses = {}
    for stop_on in ("model", "network"):
        trainer, train_loader, val_loader = _tiny_trainer(epochs=1, patience=1, stop_on=stop_on)
        assert trainer.model.naive_bayes is not None  # the smoke config mixes naive Bayes in
        (row,) = trainer.fit(train_loader, val_loader)
        losses[stop_on] = row["val_loss"]
        network_only = stop_on == "network"
        assert row["val_loss"] == trainer.evaluate(val_loader, network_only=network_only)[0]
    assert losses["model"] != pytest.approx(losses["network"], abs=1e-3)


def test_best_epoch_weights_are_restored() -> None:
    trainer, train_loader, val_loader = _tiny_trainer(epochs=12, patience=12)
    history = trainer.fit(train_loader, val_loader)
    val_losses = [h["val_loss"] for h in history]
    best = min(range(len(val_losses)), key=val_losses.__getitem__)
    assert best < len(val_losses) - 1, "the test needs val loss to rise after the best epoch"
    restored_loss, _ = trainer.evaluate(val_loader)
    assert restored_loss == pytest.approx(val_losses[best], abs=1e-6)
    assert trainer.best_epoch == best + 1


def test_early_stopping_stops_after_patience() -> None:
    trainer, train_loader, val_loader = _tiny_trainer(epochs=30, patience=2)
    history = trainer.fit(train_loader, val_loader)
    assert len(history) == trainer.best_epoch + 2 < 30


def test_train_cli_prints_table_and_run_folder(data_csv: Path, tmp_path: Path, run_cli) -> None:
    result = run_cli(
        "train", "-c", SMOKE, "--set", f"data.path={data_csv}", "--set", "train.epochs=1",
        "-o", tmp_path,
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    assert "weighted" in result.stdout and "accuracy" in result.stdout
    assert f"run folder: {tmp_path}" in result.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--set", "train.lr=-1"], "train.lr must be > 0"),
        (["--set", "train.epochs=0"], "train.epochs must be >= 1"),
        (["--set", "model.colour=red"], "valid keys in model:"),
        (["--set", "train.epochs=many"], "train.epochs must be int"),
        (["--set", "epochs=3"], "malformed --set"),
        (
            ["--set", "data.path=/nonexistent/x.csv", "--set", "data.url=null"],
            "data file not found",
        ),
    ],
)
def test_train_cli_rejects_bad_input_with_exit_2(
    args: list[str], message: str, tmp_path: Path, run_cli
) -> None:
    result = run_cli("train", "-c", SMOKE, "-o", tmp_path / "out", *args)
    assert result.exit_code == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_failed_run_never_becomes_latest(data_csv: Path, tmp_path: Path) -> None:
    good = train(smoke(data_csv, "train.epochs=1"), "good", tmp_path).run_dir
    with pytest.raises(UserError):
        train(smoke(data_csv, "train.epochs=1", "data.label_column=missing"), "bad", tmp_path)
    assert (tmp_path / "latest").resolve() == good.resolve()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([good.name, "latest"])


def test_resume_without_checkpoint_is_a_clear_error(tmp_path: Path, run_cli) -> None:
    result = run_cli("train", "--resume", tmp_path)
    assert result.exit_code == 2
    assert "no checkpoint.pt to resume from" in result.stderr


@pytest.mark.slow
def test_smoke_config_learns_real_ag_news(ag_news_10k: Path, tmp_path: Path) -> None:
    result = train(load_config(SMOKE, [f"data.path={ag_news_10k}"]), "smoke", tmp_path)
    losses = [h["train_loss"] for h in result.history]
    assert losses[-1] < losses[0]
    assert result.metrics["overall"]["accuracy"] > 0.6  # chance is 0.25
    assert result.metrics["overall"]["num_samples"] == 1500


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_trains_on_cuda_with_bf16(data_csv: Path, tmp_path: Path) -> None:
    result = train(smoke(data_csv, "train.device=cuda", "train.epochs=2"), "gpu", tmp_path)
    assert result.metrics["overall"]["accuracy"] > 0.5
    assert [h["epoch"] for h in result.history] == [1, 2]
