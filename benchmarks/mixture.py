"""Naive Bayes mixture weight: would fitting it on the validation split beat the fixed 0.4?

Trains the default on all training titles of the 30k pool (through the public builder), then
scores the network and naive Bayes mixed with each weight `w` on the validation and test
splits. A weight fitted on validation (by loss or by F1) is read off the validation columns;
the test columns show what it would have scored. Writes mixture.json and mixture.md.

    NLTK_DATA=... python benchmarks/mixture.py --seeds 1 --threads 1
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from attnclf.config import load_config  # noqa: E402
from attnclf.encoding.batching import TextDataset, make_loader  # noqa: E402
from attnclf.jsonio import write_json, write_text_atomic  # noqa: E402
from attnclf.metrics import classification_metrics  # noqa: E402
from attnclf.model.classifier import AttentionClassifier  # noqa: E402
from attnclf.model.layers import length_mask  # noqa: E402
from attnclf.training.build import build  # noqa: E402

WEIGHTS = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)


@torch.no_grad()
def log_probs(model: AttentionClassifier, data: TextDataset) -> tuple[torch.Tensor, ...]:
    """The network's and naive Bayes' log-probabilities [N, C] and the labels [N]."""
    model.eval()
    net, nb, labels = [], [], []
    for batch in make_loader(data, 512, shuffle=False, bucket=False):
        logits, _ = model(batch.ids, batch.lengths)
        mask = length_mask(batch.lengths.clamp(min=1), batch.ids.shape[1], batch.ids.device)
        bag = model._ngrams(batch.ids, mask, model.naive_bayes.order)
        net.append(F.log_softmax(logits.float(), -1))
        nb.append(F.log_softmax(model.naive_bayes(*bag), -1))
        labels.append(batch.labels)
    return torch.cat(net), torch.cat(nb), torch.cat(labels)


def scores(net: torch.Tensor, nb: torch.Tensor, labels: torch.Tensor, w: float) -> tuple:
    """Log loss and weighted F1 of `(1 - w) * network + w * naive Bayes`."""
    mixed = torch.log((1 - w) * net.exp() + w * nb.exp()).clamp(min=-100)
    truth, predicted = labels.tolist(), mixed.argmax(-1).tolist()
    f1 = classification_metrics(truth, predicted, list(range(net.shape[1])))["overall"]["f1"]
    return F.nll_loss(mixed, labels).item(), f1


def main(argv: list[str] | None = None) -> None:
    """Train per seed, score every weight, write the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pool", default=str(ROOT.parent / "shared/data/ag_news_train_30k.csv"))
    parser.add_argument("--seeds", type=int, default=1)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    args = parser.parse_args(argv)
    rows = []
    for seed in range(1234, 1234 + args.seeds):
        cfg = load_config(
            ROOT / "configs" / "default.yaml",
            [f"data.path={args.pool}", "data.url=null", f"train.num_threads={args.threads}",
             f"train.seed={seed}"],
        )  # fmt: skip
        run = build(cfg)
        run.trainer.fit(run.train_loader, run.val_loader)
        val, test = log_probs(run.model, run.val_data), log_probs(run.model, run.test_data)
        for w in WEIGHTS:
            rows.append({"seed": seed, "w": w, "val": scores(*val, w), "test": scores(*test, w)})
    lines = [
        "| seed | naive Bayes weight | val loss | val weighted F1 | test weighted F1 |",
        "|---|---|---|---|---|",
    ]
    lines += [
        f"| {r['seed']} | {r['w']:.1f} | {r['val'][0]:.4f} | {r['val'][1]:.4f} | "
        f"{r['test'][1]:.4f} |"
        for r in rows
    ]
    command = shlex.join(["python", "benchmarks/mixture.py", *(argv or sys.argv[1:])])
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    lines += ["", f"Command: `{command}` (load average at the end {load})", ""]
    write_json(Path(args.out) / "mixture.json", {"command": command, "rows": rows})
    write_text_atomic(Path(args.out) / "mixture.md", "\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
