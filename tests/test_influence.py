"""Token influence (`attnclf.explain.influence`) and erasure faithfulness (`.faithfulness`)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from attnclf.cli import app
from attnclf.config import load_config
from attnclf.data.prepare import prepare
from attnclf.encoding.batching import TextDataset
from attnclf.explain import influence as influence_mod
from attnclf.explain.faithfulness import erasure, top_k
from attnclf.explain.influence import compact, deletions, explain_batch
from attnclf.predict.torch_backend import Predictor
from attnclf.render import format_prediction, plot_prediction

ROOT = Path(__file__).resolve().parents[1]
runner = CliRunner()
TEXTS = [
    "tennis match goal league coach",
    "stocks rally as market earnings beat forecasts and shares climb",
    "nasa",
    "minister calls ceasefire troops cross border",
]


@pytest.fixture(scope="module")
def predictor(trained_run: Path) -> Predictor:
    """The module's tiny run (smoke config, wide and naive Bayes paths on), loaded once."""
    return Predictor.from_run(trained_run)


def encode(predictor: Predictor, texts: list[str]) -> tuple[list[list[int]], TextDataset]:
    """Token ids of `texts` and a padded dataset holding them."""
    sequences = predictor.run.tokenizer.texts_to_sequences(texts)
    return sequences, TextDataset(sequences, [0] * len(texts), 64)


def probs_of(predictor: Predictor, sequence: list[int]) -> torch.Tensor:
    """The whole model's probabilities [C] for one sequence (an empty one: a lone padding)."""
    ids = torch.tensor([sequence or [0]])
    with torch.inference_mode():
        return predictor.model.probabilities(ids, torch.tensor([len(sequence)]))[0][0]


def test_compact_keeps_order_and_pads() -> None:
    ids = torch.tensor([[5, 6, 7, 8], [9, 10, 0, 0]])
    keep = torch.tensor([[True, False, True, True], [False, True, False, False]])
    out, lengths = compact(ids, keep)
    assert out.tolist() == [[5, 7, 8, 0], [10, 0, 0, 0]]
    assert lengths.tolist() == [3, 1]


def test_deletions_remove_each_token_once() -> None:
    ids = torch.tensor([[5, 6, 7], [8, 0, 0]])
    out, lengths = deletions(ids, torch.tensor([3, 1]))
    assert out.tolist() == [[6, 7, 0], [5, 7, 0], [5, 6, 0], [0, 0, 0]]
    assert lengths.tolist() == [2, 2, 2, 0]


def test_influence_is_the_probability_drop_computed_by_hand(predictor: Predictor) -> None:
    sequences, ds = encode(predictor, TEXTS)
    e = explain_batch(predictor.model, ds.ids, ds.lengths)
    assert len(sequences[2]) == 1  # a one-token text: its deletion is the empty text
    for row, seq in enumerate(sequences):
        full = probs_of(predictor, seq)
        c = int(full.argmax())
        assert torch.allclose(e.probs[row], full, atol=1e-6)
        by_hand = [
            float(full[c] - probs_of(predictor, seq[:j] + seq[j + 1 :])[c]) for j in range(len(seq))
        ]
        assert e.influence[row, : len(seq)].tolist() == pytest.approx(by_hand, abs=1e-6)
        assert not e.influence[row, len(seq) :].any()
        assert any(abs(x) > 1e-4 for x in by_hand)  # the check has something to compare


def test_padding_and_batching_never_change_influence(
    predictor: Predictor, monkeypatch: pytest.MonkeyPatch
) -> None:
    text = TEXTS[0]
    _, alone = encode(predictor, [text])
    _, batched = encode(predictor, [TEXTS[1], text, TEXTS[3]])  # padded to the longest text
    one = explain_batch(predictor.model, alone.ids, alone.lengths)
    many = explain_batch(predictor.model, batched.ids, batched.lengths)
    n = int(alone.lengths[0])
    assert batched.ids.shape[1] > n
    assert torch.allclose(many.influence[1, :n], one.influence[0], atol=1e-6)
    assert not many.influence[1, n:].any()
    monkeypatch.setattr(influence_mod, "MAX_ROWS", 8)  # one forward pass per text
    chunked = explain_batch(predictor.model, batched.ids, batched.lengths)
    assert torch.allclose(chunked.influence, many.influence, atol=1e-6)
    assert torch.allclose(chunked.probs, many.probs, atol=1e-6)


def test_erasure_by_hand(predictor: Predictor) -> None:
    sequences, ds = encode(predictor, TEXTS[:1])
    seq = sequences[0]
    e = explain_batch(predictor.model, ds.ids, ds.lengths)
    scores = torch.tensor([[0.1, 0.9, 0.3, 0.5, 0.2]])
    comp, suff = erasure(predictor.model, ds.ids, ds.lengths, e.probs, scores, 2)
    full = probs_of(predictor, seq)
    c = int(full.argmax())
    assert top_k(scores, ds.lengths, 2).tolist() == [[False, True, False, True, False]]
    without = [seq[0], seq[2], seq[4]]
    assert float(comp[0]) == pytest.approx(float(full[c] - probs_of(predictor, without)[c]))
    assert float(suff[0]) == pytest.approx(
        float(full[c] - probs_of(predictor, [seq[1], seq[3]])[c])
    )


def test_top_influence_token_beats_top_attention_on_a_real_split(
    ag_news_10k: Path, tmp_path: Path
) -> None:
    from attnclf.training.train import train

    sets = [f"data.path={ag_news_10k}", "train.epochs=2", "train.num_threads=1"]
    cfg = load_config(ROOT / "tests" / "smoke.yaml", sets)
    predictor = Predictor.from_run(train(cfg, "smoke", tmp_path).run_dir)
    test = prepare(cfg, ag_news_10k, predictor.run.preprocessor).test
    sequences = predictor.run.tokenizer.texts_to_sequences(test["clean"])
    kept = [s for s in sequences if len(s) >= 3][:600]
    ds = TextDataset(kept, [0] * len(kept), 32)
    e = explain_batch(predictor.model, ds.ids, ds.lengths)
    drops = {
        name: erasure(predictor.model, ds.ids, ds.lengths, e.probs, scores, 1)[0].mean()
        for name, scores in (("influence", e.influence), ("attention", e.attention))
    }
    assert drops["influence"] >= drops["attention"] > 0


def test_prediction_influence_only_when_explained(predictor: Predictor) -> None:
    explained = predictor.predict([*TEXTS, "the"], explain=True)
    for p in explained[:-1]:
        _, ds = encode(predictor, [p.clean])
        e = explain_batch(predictor.model, ds.ids, ds.lengths)
        assert len(p.influence) == len(p.tokens) == len(p.attention)
        assert p.influence == pytest.approx(e.influence[0].tolist(), abs=1e-6)
        assert p.probabilities[p.label] == pytest.approx(float(e.probs.max()), abs=1e-6)
    assert explained[-1].error is not None and explained[-1].influence is None
    plain = predictor.predict(TEXTS)
    assert all(p.influence is None for p in plain)
    for a, b in zip(plain, explained, strict=False):
        assert a.attention == pytest.approx(b.attention, abs=1e-6) and a.label == b.label
    with pytest.raises(ValueError, match="explain=True"):
        format_prediction(1, plain[0], explain=True)


def test_cli_explain_lists_influence_and_attention_in_text_order(
    predictor: Predictor, trained_run: Path
) -> None:
    result = runner.invoke(app, ["predict", "--run", str(trained_run), "--explain", TEXTS[1]])
    assert result.exit_code == 0, result.output
    (p,) = predictor.predict([TEXTS[1]], explain=True)
    lines = result.stdout.splitlines()
    start = next(
        i for i, line in enumerate(lines) if line.split()[:3] == ["token", "influence", "attention"]
    )
    rows = [line.split() for line in lines[start + 1 :]]
    assert [r[0] for r in rows] == p.tokens
    assert [float(r[1]) for r in rows] == pytest.approx(p.influence, abs=5e-4)
    assert [float(next(x for x in r[2:] if "." in x)) for r in rows] == pytest.approx(
        p.attention, abs=5e-4
    )
    top = max(range(len(p.influence)), key=p.influence.__getitem__)
    assert rows[top][2].startswith("│█") or rows[top][3].startswith("│█")


def test_cli_json_carries_influence_with_explain(predictor: Predictor, trained_run: Path) -> None:
    args = ["predict", "--run", str(trained_run), "--format", "json", *TEXTS[:2]]
    explained = [
        json.loads(line) for line in runner.invoke(app, [*args, "--explain"]).stdout.splitlines()
    ]
    plain = [json.loads(line) for line in runner.invoke(app, args).stdout.splitlines()]
    for row, p in zip(explained, predictor.predict(TEXTS[:2], explain=True), strict=True):
        assert row["influence"] == pytest.approx(p.influence, abs=1e-6)
        assert len(row["influence"]) == len(row["tokens"])
    assert [row["influence"] for row in plain] == [None, None]


def test_plot_draws_influence_and_attention_rows(
    predictor: Predictor, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from attnclf import plots

    drawn = []
    save = plots._save
    monkeypatch.setattr(plots, "_save", lambda fig, path: (drawn.append(fig), save(fig, path))[1])
    (p,) = predictor.predict([TEXTS[0]], explain=True)
    path = plot_prediction(p, tmp_path / "x.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    (fig,) = drawn
    rows = [
        (ax.get_yticklabels()[0].get_text(), ax.images[0].get_array()[0].tolist())
        for ax in fig.axes
    ]
    assert rows == [
        ("influence", pytest.approx(p.influence)),
        ("attention", pytest.approx(p.attention)),
    ]
    assert [t.get_text() for t in fig.axes[1].get_xticklabels()] == p.tokens
