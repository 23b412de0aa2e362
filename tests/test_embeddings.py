"""Pretrained word vectors: reading them, their errors, and a run that starts from them."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
import torch
from conftest import TOPICS, write_topic_csv
from test_distributed import torchrun

from attnclf.config import load_config
from attnclf.errors import Interrupted, UserError
from attnclf.evaluate import evaluate_run
from attnclf.model.embeddings import read_vectors
from attnclf.predict.torch_backend import Predictor
from attnclf.runfolder import RunFolder
from attnclf.training.loop import Trainer
from attnclf.training.train import resume, train

ROOT = Path(__file__).resolve().parents[1]
SMOKE = ROOT / "tests" / "smoke.yaml"
DIM = 32  # tests/smoke.yaml's embedding_dim
WORDS = [w for words in TOPICS.values() for w in words.split()]  # all in the topic CSV


def write_vectors(path: Path, words: list[str], dim: int = DIM, header: bool = True) -> Path:
    """A word2vec text file (GloVe's without `header`) with seeded random vectors."""
    rng = random.Random(0)
    lines = [f"{len(words)} {dim}"] if header else []
    lines += [f"{w} " + " ".join(f"{rng.gauss(0, 1):.4f}" for _ in range(dim)) for w in words]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def file_vectors(path: Path) -> dict[str, torch.Tensor]:
    """Each word's vector as written in `path`."""
    rows = [line.split() for line in path.read_text().splitlines()[1:]]
    return {r[0]: torch.tensor([float(x) for x in r[1:]]) for r in rows}


@pytest.mark.parametrize("header", [True, False])
def test_read_vectors_fills_the_vocabulary_rows_it_holds(tmp_path: Path, header: bool) -> None:
    path = write_vectors(tmp_path / "v.txt", ["tennis", "stocks", "absent"], dim=4, header=header)
    vocab = ["<PAD>", "<UNK>", "stocks", "match", "tennis"]
    vectors, found, total = read_vectors(path, vocab, 4)
    assert total == 3
    assert found.tolist() == [False, False, True, False, True]
    written = [line.split() for line in path.read_text().splitlines()[int(header) :]]
    assert vectors[4].tolist() == pytest.approx([float(x) for x in written[0][1:]])
    assert vectors[2].tolist() == pytest.approx([float(x) for x in written[1][1:]])
    assert vectors[3].abs().sum() == 0


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("2 3\ntennis 1 2 3\nstocks 1 2\n", "line 3 has 2 numbers after its word"),
        ("tennis 1 2 x\n", "line 1 is not `word x1 x2 ...` with numbers"),
        ("", "holds no word vectors"),
        ("tennis 1 2\n", "model.embedding_dim is 3"),
    ],
)
def test_bad_vector_files_are_user_errors(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "v.txt"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(UserError, match=message.replace("(", r"\(").replace("`", ".")):
        read_vectors(path, ["<PAD>", "<UNK>", "tennis"], 3)


def test_missing_and_binary_vector_files_are_user_errors(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="pretrained embeddings not found"):
        read_vectors(tmp_path / "absent.txt", ["<PAD>", "<UNK>"], 3)
    binary = tmp_path / "v.bin"
    binary.write_bytes(b"\xff\xfe\x00binary")
    with pytest.raises(UserError, match="not UTF-8 text"):
        read_vectors(binary, ["<PAD>", "<UNK>"], 3)


def test_cli_wrong_dimension_is_one_line_and_exit_2(tmp_path: Path, run_cli) -> None:
    data = write_topic_csv(tmp_path / "news.csv", per_class=20)
    vectors = write_vectors(tmp_path / "v.txt", WORDS, dim=7)
    result = run_cli(
        "train", "-c", SMOKE, "-o", tmp_path / "out",
        "--set", f"data.path={data}", "--set", f"model.pretrained_embeddings={vectors}",
    )  # fmt: skip
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "embedding_dim is 32" in lines[0]


def _config(data: Path, vectors: Path, *extra: str):
    """The smoke config on `data`, started from `vectors`, 2 epochs on one thread."""
    sets = [f"data.path={data}", f"model.pretrained_embeddings={vectors}", "train.epochs=2"]
    return load_config(SMOKE, [*sets, "train.num_threads=1", "train.batch_size=16", *extra])


def test_frozen_vectors_train_predict_and_evaluate(tmp_path: Path) -> None:
    data = write_topic_csv(tmp_path / "news.csv", per_class=40)
    vectors = write_vectors(tmp_path / "v.txt", [*WORDS[:12], "notinthedata"])
    run_dir = train(
        _config(data, vectors, "model.freeze_embeddings=true"), "smoke", tmp_path / "out"
    ).run_dir
    report = json.loads((run_dir / "data_report.json").read_text())["pretrained_embeddings"]
    assert report["vectors_in_file"] == 13 and report["vocabulary_covered"] == 12
    assert 0 < report["vocabulary_coverage"] < 1 and 0 < report["train_token_coverage"] < 1

    vectors.unlink()  # a trained run carries its embeddings: the file is no longer needed
    loaded = RunFolder.load(run_dir)
    embedding = loaded.state_dict["embedding.weight"]
    written = file_vectors(write_vectors(tmp_path / "again.txt", [*WORDS[:12], "notinthedata"]))
    for word in WORDS[:12]:  # frozen: exactly the file's vectors after training
        row = embedding[loaded.tokenizer.index[word]]
        assert torch.allclose(row, written[word], atol=1e-4), word
    predictions = Predictor.from_run(run_dir).predict(["tennis match goal", "stocks profit"])
    assert [p.label for p in predictions] == ["Sports", "Business"]
    assert evaluate_run(run_dir, data)["overall"]["num_samples"] == 160


@pytest.mark.parametrize("init", ["normal", "ppmi"])
def test_fine_tuned_vectors_move_and_resume_exactly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, init: str
) -> None:
    data = write_topic_csv(tmp_path / "news.csv", per_class=40)
    vectors = write_vectors(tmp_path / "v.txt", WORDS[:20] if init == "ppmi" else WORDS)
    cfg = _config(data, vectors, f"model.embedding_init={init}")
    whole = train(cfg, "smoke", tmp_path / "whole").run_dir
    weights = RunFolder.load(whole)
    row = weights.state_dict["embedding.weight"][weights.tokenizer.index["tennis"]]
    assert not torch.allclose(row, file_vectors(vectors)["tennis"], atol=1e-3)  # fine-tuned

    with monkeypatch.context() as patch, pytest.raises(Interrupted):
        patch.setattr(Trainer, "_should_stop", lambda self: self.epoch == 1 and self.step == 2)
        train(cfg, "smoke", tmp_path / "cut")
    (staging,) = (tmp_path / "cut").glob(".*.incomplete")
    resumed = resume(staging).run_dir
    assert (resumed / "model.safetensors").read_bytes() == (
        whole / "model.safetensors"
    ).read_bytes()


def test_torchrun_with_pretrained_vectors(tmp_path: Path) -> None:
    data = write_topic_csv(tmp_path / "news.csv", per_class=80)
    vectors = write_vectors(tmp_path / "v.txt", WORDS)
    result = torchrun(
        tmp_path, f"data.path={data}", f"model.pretrained_embeddings={vectors}",
        "model.freeze_embeddings=true", "model.embedding_init=ppmi", "train.epochs=2",
        "train.num_threads=1", "train.batch_size=16",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.count("pretrained embeddings") == 1  # rank 0 reports it
    assert result.stdout.count("ppmi embeddings from the training texts") == 1
    (run,) = [p for p in (tmp_path / "out").iterdir() if p.name != "latest"]
    report = json.loads((run / "data_report.json").read_text())["pretrained_embeddings"]
    assert report["vocabulary_covered"] == len(WORDS)
    assert json.loads((run / "metrics.json").read_text())["overall"]["accuracy"] > 0.6
