"""Faithfulness benchmark: do influence, attention and random token orders pick what the model used?

For a trained run and its own test split (`attnclf.data.prepare.prepare` with the run's config
reproduces the split), each method ranks the tokens of every text of at least --min-tokens
tokens; deleting its top k (k = 1, 2, 3) gives ERASER's comprehensiveness (higher is better),
keeping only them its sufficiency (lower is better), both on the predicted class's probability
(`attnclf.explain.faithfulness`). AOPC is their mean over k = 1..3. "Top = LOO" is how often the
method's top token is the one whose deletion lowers that probability most. "<UNK>
substitution" is a candidate definition of influence that replaces a token instead of deleting
it. Without --run, the config is trained on --data first (--threads, the config's seed).

    NLTK_DATA=... python benchmarks/explain.py                    # trains default on the 30k file
    NLTK_DATA=... python benchmarks/explain.py --run artifacts/latest
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from attnclf.config import load_config  # noqa: E402
from attnclf.data.prepare import prepare  # noqa: E402
from attnclf.encoding.batching import TextDataset  # noqa: E402
from attnclf.encoding.tokenizer import UNK_ID  # noqa: E402
from attnclf.explain.faithfulness import erasure, top_k  # noqa: E402
from attnclf.explain.influence import explain_batch  # noqa: E402
from attnclf.model.classifier import AttentionClassifier  # noqa: E402
from attnclf.model.layers import length_mask  # noqa: E402
from attnclf.predict.torch_backend import Predictor  # noqa: E402
from attnclf.training.train import train  # noqa: E402
from benchmarks.common import (  # noqa: E402
    DEFAULT_CONFIG,
    SHARED_DATA,
    add_out,
    command_line,
    load_average,
    machine,
    machine_line,
    parser,
    write_results,
)

DATA_30K = SHARED_DATA / "ag_news_train_30k.csv"
KS = (1, 2, 3)
METHODS = ("influence", "attention", "random", "<UNK> substitution")
BATCH = 256


def unk_substitution(model: AttentionClassifier, ids: torch.Tensor, lengths: torch.Tensor):
    """Candidate scores [B, L]: p(c | text) - p(c | text with the token replaced by <UNK>)."""
    B, L = ids.shape
    rows = torch.repeat_interleave(torch.arange(B), lengths)
    position = torch.arange(len(rows)) - (torch.cumsum(lengths, 0) - lengths)[rows]
    swapped = ids[rows].clone()
    swapped[torch.arange(len(rows)), position] = UNK_ID
    probs, _ = model.probabilities(torch.cat([ids, swapped]), torch.cat([lengths, lengths[rows]]))
    c = probs[:B].argmax(dim=1)
    drop = probs[rows, c[rows]] - probs[B:][torch.arange(len(rows)), c[rows]]
    scores = torch.zeros(B, L)
    scores[length_mask(lengths, L, ids.device)] = drop
    return scores


def evaluate(predictor: Predictor, texts: list[str], min_tokens: int, seed: int) -> dict:
    """Per-method comprehensiveness, sufficiency, AOPC and top-token agreement, with costs."""
    run = predictor.run
    max_len = run.config.tokenizer.max_seq_len
    sequences = [s[:max_len] for s in run.tokenizer.texts_to_sequences(texts)]
    sequences = sorted((s for s in sequences if len(s) >= min_tokens), key=len)
    g = torch.Generator().manual_seed(seed)
    sums = {m: {f"{kind}@{k}": 0.0 for kind in ("comp", "suff") for k in KS} for m in METHODS}
    agree = dict.fromkeys(METHODS, 0)
    seconds = {"predict": 0.0, "explain": 0.0, "<UNK> substitution": 0.0}
    model = predictor.model
    for start in range(0, len(sequences), BATCH):
        chunk = sequences[start : start + BATCH]
        ds = TextDataset(chunk, [0] * len(chunk), max_len)
        ids, lengths = ds.ids, ds.lengths
        t0 = time.perf_counter()
        with torch.inference_mode():
            model.probabilities(ids, lengths)
        t1 = time.perf_counter()
        e = explain_batch(model, ids, lengths)
        t2 = time.perf_counter()
        unk = unk_substitution(model, ids, lengths)
        t3 = time.perf_counter()
        for key, t in zip(seconds, (t1 - t0, t2 - t1, t3 - t2), strict=True):
            seconds[key] += t
        scores = {
            "influence": e.influence,
            "attention": e.attention,
            "random": torch.rand(ids.shape, generator=g),
            "<UNK> substitution": unk,
        }
        loo_top = top_k(e.influence, lengths, 1)
        for method, s in scores.items():
            agree[method] += int((top_k(s, lengths, 1) & loo_top).any(dim=1).sum())
            for k in KS:
                comp, suff = erasure(model, ids, lengths, e.probs, s, k)
                sums[method][f"comp@{k}"] += float(comp.sum())
                sums[method][f"suff@{k}"] += float(suff.sum())
    n = len(sequences)
    results = {}
    for method in METHODS:
        row = {key: value / n for key, value in sums[method].items()}
        row["aopc_comp"] = sum(row[f"comp@{k}"] for k in KS) / len(KS)
        row["aopc_suff"] = sum(row[f"suff@{k}"] for k in KS) / len(KS)
        row["top_equals_loo"] = agree[method] / n
        results[method] = row
    cost = {key: n / s for key, s in seconds.items()}
    return {"texts": n, "methods": results, "in_process_texts_per_second": cost}


def markdown(report: dict) -> str:
    """The results table with the run, data, command and machine."""
    m = report["machine"]
    lines = [
        "# Explanation faithfulness",
        "",
        f"Run `{report['run']}` ({report['run_note']}), test split of `{report['data']}`: "
        f"{report['texts']:,} texts of >= {report['min_tokens']} tokens (of {report['split']:,}; "
        f"run accuracy on the split {report['accuracy']:.4f}). Probabilities are the whole "
        "model's (every path the config has, naive Bayes mix included), on its predicted class. "
        "comp@k: drop after deleting the top k tokens (higher = more faithful); suff@k: drop "
        "after keeping only them (lower = more faithful); AOPC: mean over k = 1..3; top = LOO: "
        "the method's top token is the leave-one-out top token.",
        "",
        "| method | comp@1 | comp@2 | comp@3 | suff@1 | suff@2 | suff@3 | AOPC comp | AOPC suff "
        "| top = LOO |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for method, r in report["methods"].items():
        cells = [r[f"comp@{k}"] for k in KS] + [r[f"suff@{k}"] for k in KS]
        cells += [r["aopc_comp"], r["aopc_suff"]]
        lines.append(
            f"| {method} | "
            + " | ".join(f"{c:.3f}" for c in cells)
            + f" | {r['top_equals_loo']:.1%} |"
        )
    cost = report["in_process_texts_per_second"]
    lines += [
        "",
        f"In-process texts/s ({m['torch_threads']} thread(s)): prediction {cost['predict']:,.0f}, "
        f"prediction + attention + influence {cost['explain']:,.0f}, "
        f"<UNK> substitution {cost['<UNK> substitution']:,.0f}.",
        "",
        f"Command: `{m['command']}`  ",
        f"Machine: {machine_line(m)}",
    ]
    return "\n".join(lines)


def parse_args(argv: list[str]) -> argparse.Namespace:
    """Command-line options."""
    p = parser(__doc__)
    p.add_argument("--run", type=Path, help="a trained run folder (default: train --config)")
    p.add_argument("--data", type=Path, help="labelled CSV (default: the run's, else the 30k file)")
    p.add_argument("--config", type=Path, default=DEFAULT_CONFIG)
    p.add_argument("--min-tokens", type=int, default=3, help="skip shorter texts")
    p.add_argument("--seed", type=int, default=1234, help="seed of the random order")
    p.add_argument("--threads", type=int, default=1, help="CPU threads (training and scoring)")
    add_out(p)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    """Train or load the run, score every method on its test split, write explain.json/.md."""
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    load_before = load_average()
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory(prefix="attnclf-explain-") as tmp:
        run, note = args.run, "given"
        if run is None:
            data = args.data or DATA_30K
            sets = [f"data.path={data}", f"train.num_threads={args.threads}"]
            cfg = load_config(args.config, sets)
            print(f"training {args.config.name} on {data}", flush=True)
            run = train(cfg, args.config.stem, tmp).run_dir
            note = f"{args.config.name} trained by this command"
        predictor = Predictor.from_run(run)
        cfg = predictor.run.config
        data = args.data or Path(cfg.data.path)
        test = prepare(cfg, data, predictor.run.preprocessor).test
        report = evaluate(predictor, test["clean"].tolist(), args.min_tokens, args.seed)
        predicted = [p.label for p in predictor.predict(test["text"].tolist())]
    accuracy = sum(p == t for p, t in zip(predicted, test["label"], strict=True)) / len(test)
    report = {
        "run": str(args.run or "(temporary)"),
        "run_note": note,
        "data": str(data),
        "split": len(test),
        "accuracy": accuracy,
        "min_tokens": args.min_tokens,
        **report,
        "machine": machine("cpu", command_line("explain.py", argv, "python"), load_before),
    }
    write_results(args.out, "explain", report, markdown(report) + "\n")
    print(markdown(report))


if __name__ == "__main__":
    main()
