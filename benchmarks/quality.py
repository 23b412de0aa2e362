"""Quality benchmark: attnclf's default against TF-IDF + LR, naive Bayes, NBSVM and fastText.

Regimes (each its own data and split; every system in a regime sees the same stratified split
that `attnclf train` makes, `attnclf.data.prepare.prepare`, with the default config's
preprocessing): AG News titles from the 30k pool with 2,000, 7,000 and all training rows
(`data.train_rows`); the same with `configs/ag_news.yaml` (each training row's description is
one more training text); title + description from the same pool, with the default and with
`configs/ag_news_description.yaml`; and the first 10k titles.
Peers are fitted on the training texts the regime's config trains on. In the titles regimes
"+ word2vec" trains word vectors (gensim, a benchmark-only dependency) on the training split's
descriptions and starts the default's embeddings from them (`model.pretrained_embeddings`).
Ablation rows switch one part of a regime's config off; lever rows switch one candidate on (the
2-seed ensemble averages the test probabilities of two seeds' runs: twice the training time).
Results go to quality.json and quality.md.

    NLTK_DATA=... python benchmarks/quality.py --seeds 3 --threads 1
"""

from __future__ import annotations

import argparse
import datetime
import math
import os
import platform
import shlex
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from attnclf.config import Config, load_config  # noqa: E402
from attnclf.data.prepare import Splits, prepare  # noqa: E402
from attnclf.jsonio import write_json, write_text_atomic  # noqa: E402
from attnclf.metrics import classification_metrics  # noqa: E402
from attnclf.preprocess import Preprocessor  # noqa: E402
from attnclf.training.train import train  # noqa: E402

SHARED = ROOT.parent / "shared" / "data"
DEFAULT_YAML = ROOT / "configs" / "default.yaml"
AG_NEWS_YAML = ROOT / "configs" / "ag_news.yaml"
DESCRIPTION_YAML = ROOT / "configs" / "ag_news_description.yaml"
Score = tuple[float, float, float]  # weighted F1, accuracy, seconds
System = Callable[[int], Score]
SEED = 1234  # first seed: train.seed's default, so seed 1 reproduces `attnclf train`
PEERS = ("tfidf+lr", "naive bayes", "nbsvm", "fasttext")
DETERMINISTIC = ("tfidf+lr", "naive bayes", "nbsvm")  # fitted once: every seed scores the same


@dataclass
class Regime:
    """A data set and the overrides that select its texts and training rows."""

    pool: bool  # the 30k AG News pool (else the 10k titles file)
    overrides: list[str] = field(default_factory=list)
    config: Path = DEFAULT_YAML
    vectors: bool = False  # also run the default with word2vec vectors from descriptions


REGIMES = {
    "titles-2000": Regime(True, ["data.train_rows=2000"], vectors=True),
    "titles-7000": Regime(True, ["data.train_rows=7000"], vectors=True),
    "titles-all": Regime(True, [], vectors=True),
    "titles-2000+descriptions": Regime(True, ["data.train_rows=2000"], AG_NEWS_YAML, True),
    "titles-7000+descriptions": Regime(True, ["data.train_rows=7000"], AG_NEWS_YAML, True),
    "titles-all+descriptions": Regime(True, config=AG_NEWS_YAML, vectors=True),
    "title+description": Regime(True, ["data.use_description=true"]),
    "title+description-tuned": Regime(True, config=DESCRIPTION_YAML),
    "titles-10k-file": Regime(False),
}
MIX_ABLATIONS = {  # each half of the mix alone, for configs without a wide path
    "ablation: without the RNN + attention path (model.naive_bayes=1: naive Bayes alone)": [
        "model.naive_bayes=1"
    ],
    "ablation: without naive Bayes (model.naive_bayes=0)": ["model.naive_bayes=0"],
}
LINEAR = "lever: linear LR decay to 0 (train.schedule=linear) over {} epochs"
PPMI = "lever: in-domain PPMI vectors from the training texts (model.embedding_init=ppmi)"
NO_PPMI = {
    "ablation: without the PPMI start (model.embedding_init=normal)": [
        "model.embedding_init=normal"
    ]
}
AG_NEWS_ABLATIONS = {  # configs/ag_news.yaml's two training choices, each undone
    **NO_PPMI,
    "ablation: the plateau schedule, not the linear decay (20 epochs at lr 0.004, patience 1)": [
        "train.schedule=plateau",
        "train.epochs=20",
        "train.lr=0.004",
        "train.patience=1",
    ],
}
PREVIOUS_NGRAM_PATHS = [  # default.yaml's n-gram paths before it took ag_news.yaml's
    "model.wide_ngrams=2",
    "model.wide_buckets=262144",
    "model.naive_bayes_alpha=1.0",
    "train.wide_lr=0.04",
]
PREVIOUS_DEFAULT = {  # default.yaml before the larger naive Bayes and the PPMI start
    "ablation: the previous default (wide path on, 262,144 buckets, alpha 1, random start)": [
        *PREVIOUS_NGRAM_PATHS,
        "model.embedding_init=normal",
    ]
}
VARIANTS = {  # per regime: parts of its config switched off, and levers switched on
    "titles-2000": PREVIOUS_DEFAULT,
    "titles-7000": PREVIOUS_DEFAULT,
    "titles-10k-file": PREVIOUS_DEFAULT,
    "titles-all": {
        **MIX_ABLATIONS,
        **NO_PPMI,
        **PREVIOUS_DEFAULT,
        "lever: a wide path beside naive Bayes (model.wide_ngrams=2)": [
            "model.wide_ngrams=2",
            "train.wide_lr=0.04",
        ],
    },
    "titles-2000+descriptions": AG_NEWS_ABLATIONS,
    "titles-7000+descriptions": AG_NEWS_ABLATIONS,
    "titles-all+descriptions": {
        **MIX_ABLATIONS,
        **AG_NEWS_ABLATIONS,
        "ablation: the previous default's n-gram paths (wide path on, 262,144 buckets, alpha 1)": (
            PREVIOUS_NGRAM_PATHS
        ),
    },
    "title+description-tuned": {
        **MIX_ABLATIONS,
        LINEAR.format(3): ["train.schedule=linear", "train.epochs=3"],
        PPMI: ["model.embedding_init=ppmi"],
    },
}

ENSEMBLES = ("titles-all", "titles-all+descriptions", "title+description-tuned")


def attnclf_system(cfg: Config) -> System:
    """Train attnclf with `cfg` (seeded per run) through the library API, in a temp dir."""

    def run(seed: int) -> Score:
        """One seeded training run."""
        cfg.train.seed = seed
        start = time.perf_counter()
        with tempfile.TemporaryDirectory() as tmp:
            result = train(cfg, "bench", tmp)
        overall = result.metrics["overall"]
        return overall["f1"], overall["accuracy"], time.perf_counter() - start

    return run


def ensemble_system(cfg: Config, splits: Splits, members: int) -> System:
    """`members` runs of `cfg` (seeds `seed`, `seed` + 100, ...) whose test probabilities are
    averaged: what a seed ensemble would buy, at `members` times the training time."""
    from attnclf.predict import Predictor

    def run(seed: int) -> Score:
        """Train each member, then score the averaged probabilities; seconds cover it all."""
        start, total = time.perf_counter(), None
        for member in range(members):
            cfg.train.seed = seed + 100 * member
            with tempfile.TemporaryDirectory() as tmp:
                predictor = Predictor.from_run(train(cfg, "bench", tmp).run_dir)
                classes = predictor.run.labels.classes
                probs = torch.tensor(
                    [
                        [p.probabilities[c] for c in classes]
                        for p in predictor.predict_iter(splits.test["text"])
                    ]
                )
            total = probs if total is None else total + probs
        predicted = [classes[i] for i in total.argmax(dim=1).tolist()]
        return *_score(splits, predicted), time.perf_counter() - start

    return run


def _score(splits: Splits, predicted: list[str]) -> tuple[float, float]:
    """Weighted F1 and accuracy of test-split predictions."""
    classes = sorted(set(splits.train["label"]))
    index = {c: i for i, c in enumerate(classes)}
    truth = [index[c] for c in splits.test["label"]]
    overall = classification_metrics(truth, [index[c] for c in predicted], classes)["overall"]
    return overall["f1"], overall["accuracy"]


def tfidf_lr_system(splits: Splits) -> System:
    """TF-IDF (word 1-2 grams, sublinear tf) + logistic regression (C=10)."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    def run(seed: int) -> Score:
        """One fit; LR is deterministic, the seed only feeds random_state."""
        start = time.perf_counter()
        model = make_pipeline(
            TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True),
            LogisticRegression(C=10, max_iter=1000, random_state=seed),
        )
        model.fit(splits.train["clean"], splits.train["label"])
        seconds = time.perf_counter() - start
        return *_score(splits, list(model.predict(splits.test["clean"]))), seconds

    return run


def naive_bayes_system(splits: Splits) -> System:
    """Multinomial naive Bayes on word 1-2 gram counts (alpha 1): a reference beyond the issue's."""
    from sklearn.feature_extraction.text import CountVectorizer
    from sklearn.naive_bayes import MultinomialNB
    from sklearn.pipeline import make_pipeline

    def run(seed: int) -> Score:
        """One fit; naive Bayes is deterministic, so the seed is unused."""
        start = time.perf_counter()
        model = make_pipeline(CountVectorizer(ngram_range=(1, 2)), MultinomialNB(alpha=1.0))
        model.fit(splits.train["clean"], splits.train["label"])
        seconds = time.perf_counter() - start
        return *_score(splits, list(model.predict(splits.test["clean"]))), seconds

    return run


def nbsvm_system(splits: Splits) -> System:
    """NBSVM (Wang & Manning 2012): binary 1-2 grams scaled by naive Bayes log-count ratios,
    one logistic regression per class (one-vs-rest)."""
    import numpy as np
    from sklearn.feature_extraction.text import CountVectorizer
    from sklearn.linear_model import LogisticRegression

    def run(seed: int) -> Score:
        """One fit per class; deterministic (liblinear with a fixed random_state)."""
        start = time.perf_counter()
        vectorizer = CountVectorizer(ngram_range=(1, 2), binary=True)
        x = vectorizer.fit_transform(splits.train["clean"])
        y = splits.train["label"].to_numpy()
        classes = sorted(set(y))
        test = vectorizer.transform(splits.test["clean"])
        scores = []
        for c in classes:
            p = np.asarray(x[y == c].sum(0)).ravel() + 1.0
            q = np.asarray(x[y != c].sum(0)).ravel() + 1.0
            r = np.log((p / p.sum()) / (q / q.sum()))
            model = LogisticRegression(C=4.0, solver="liblinear", random_state=seed)
            model.fit(x.multiply(r).tocsr(), y == c)
            scores.append(model.decision_function(test.multiply(r).tocsr()))
        seconds = time.perf_counter() - start
        predicted = [classes[i] for i in np.argmax(np.stack(scores, axis=1), axis=1)]
        return *_score(splits, predicted), seconds

    return run


def word2vec_system(cfg: Config, splits: Splits, threads: int) -> System:
    """The default started from word2vec vectors trained on the training rows' descriptions."""
    from gensim.models import Word2Vec

    rows = splits.train["description"].drop_duplicates()  # augmented splits repeat each one
    descriptions = Preprocessor.from_config(cfg.preprocess).batch(list(rows))
    sentences = [text.split() for text in descriptions if text]
    attnclf = attnclf_system(cfg)

    def run(seed: int) -> Score:
        """Vectors (skip-gram, window 5, 10 epochs) then one seeded training run, timed together."""
        start = time.perf_counter()
        vectors = Word2Vec(
            sentences, vector_size=cfg.model.embedding_dim, window=5, min_count=1, sg=1,
            epochs=10, workers=threads, seed=seed,
        )  # fmt: skip
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "vectors.txt"
            vectors.wv.save_word2vec_format(str(path))
            cfg.model.pretrained_embeddings = str(path)
            f1, accuracy, _ = attnclf(seed)
        return f1, accuracy, time.perf_counter() - start

    return run


def fasttext_system(splits: Splits, threads: int) -> System:
    """fastText supervised (wordNgrams 2, dim 100, 25 epochs, lr 0.5)."""
    import fasttext

    def run(seed: int) -> Score:
        """One seeded fit from a temporary `__label__` file."""
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "train.txt"
            lines = (
                f"__label__{label.replace(' ', '_')} {text}"
                for text, label in zip(splits.train["clean"], splits.train["label"], strict=True)
            )
            path.write_text("\n".join(lines) + "\n", encoding="utf-8")
            start = time.perf_counter()
            model = fasttext.train_supervised(
                str(path), wordNgrams=2, dim=100, epoch=25, lr=0.5, seed=seed, thread=threads,
                verbose=0,
            )  # fmt: skip
            seconds = time.perf_counter() - start
        by_name = {label.replace(" ", "_"): label for label in set(splits.train["label"])}
        # predict() on a list avoids fastText 0.9.2's np.array(copy=False), broken on NumPy 2
        labels, _ = model.predict(list(splits.test["clean"]))
        predicted = [by_name[found[0].removeprefix("__label__")] for found in labels]
        return *_score(splits, predicted), seconds

    return run


def regime_config(regime: Regime, args: argparse.Namespace, extra: list[str] = ()) -> Config:
    """The regime's config on its data (never downloading), split and threads, plus `extra`."""
    data = args.pool if regime.pool else args.titles_10k
    base = [
        f"data.path={data}",
        "data.url=null",
        f"data.split_seed={args.split_seed}",
        f"train.num_threads={args.threads}",
    ]
    return load_config(regime.config, [*base, *regime.overrides, *extra])


def systems(
    name: str, regime: Regime, split: Splits, args: argparse.Namespace
) -> dict[str, Callable[[], System]]:
    """Every system of one regime by name, built lazily (so `--only` skips unused ones)."""
    found: dict[str, Callable[[], System]] = {
        "attnclf default": lambda: attnclf_system(regime_config(regime, args)),
    }
    if regime.vectors and args.vectors:
        found["attnclf default + word2vec"] = lambda: word2vec_system(
            regime_config(regime, args), split, args.threads
        )
    found["tfidf+lr"] = lambda: tfidf_lr_system(split)
    found["naive bayes"] = lambda: naive_bayes_system(split)
    found["nbsvm"] = lambda: nbsvm_system(split)
    found["fasttext"] = lambda: fasttext_system(split, args.threads)
    if args.variants:
        for label, overrides in VARIANTS.get(name, {}).items():
            found[label] = lambda o=overrides: attnclf_system(regime_config(regime, args, o))
        if name in ENSEMBLES:
            found["lever: 2-seed ensemble (probabilities averaged; trains twice)"] = lambda: (
                ensemble_system(regime_config(regime, args), split, 2)
            )
    return found


def summarise(name: str, scores: list[Score]) -> dict:
    """Mean and (sample) standard deviation of each metric over the seeds."""
    row: dict = {"system": name, "runs": len(scores)}
    for i, metric in enumerate(("f1", "accuracy", "seconds")):
        values = [s[i] for s in scores]
        row[metric] = {
            "mean": statistics.fmean(values),
            "std": statistics.stdev(values) if len(values) > 1 else 0.0,
            "values": values,
        }
    return row


def margin(rows: list[dict]) -> dict | None:
    """The default's mean F1 minus the best peer's, with the spread of that difference."""
    by_name = {r["system"]: r for r in rows}
    peers = [by_name[p] for p in PEERS if p in by_name]
    if "attnclf default" not in by_name or not peers:
        return None
    default, best = by_name["attnclf default"]["f1"], max(peers, key=lambda r: r["f1"]["mean"])
    return {
        "best_peer": best["system"],
        "diff": default["mean"] - best["f1"]["mean"],
        "std": math.hypot(default["std"], best["f1"]["std"]),
    }


def _cell(stat: dict, digits: int = 4) -> str:
    """`mean ± std`."""
    return f"{stat['mean']:.{digits}f} ± {stat['std']:.{digits}f}"


def markdown(regimes: dict[str, dict], meta: dict) -> str:
    """The results as markdown tables (a summary, then one per regime), command and machine."""
    lines = [
        f"# Quality benchmark ({meta['seeds']} seeds; weighted F1 on the test split of split "
        f"seed {meta['split_seed']})",
        "",
        "| regime | train rows | attnclf default | best peer | default minus best peer |",
        "|---|---|---|---|---|",
    ]
    for name, result in regimes.items():
        m, rows = result["margin"], {r["system"]: r for r in result["rows"]}
        if m is None:
            continue
        best = f"{m['best_peer']} {_cell(rows[m['best_peer']]['f1'])}"
        lines.append(
            f"| {name} | {result['train_rows']:,} | {_cell(rows['attnclf default']['f1'])} | "
            f"{best} | {m['diff']:+.4f} ± {m['std']:.4f} |"
        )
    for name, result in regimes.items():
        lines += [
            "",
            f"## {name} ({result['config']}; {result['train_rows']:,} train, "
            f"{result['test_rows']:,} test rows)",
            "",
            "| system | weighted F1 | accuracy | train seconds |",
            "|---|---|---|---|",
        ]
        for r in result["rows"]:
            cells = f"{_cell(r['f1'])} | {_cell(r['accuracy'])} | {_cell(r['seconds'], 1)}"
            lines.append(f"| {r['system']} | {cells} |")
        lines += [f"| {n} | skipped: {why} | | |" for n, why in result["skipped"].items()]
    lines += [
        "",
        f"Command: `{meta['command']}`",
        "",
        f"Machine: {meta['platform']}, {meta['cpu_count']} CPU(s), torch {meta['torch']}, "
        f"{meta['threads']} thread(s) per run, {meta['date']}, load average at the start "
        f"{meta['load_start']} and end {meta['load_end']} (the CPUs are shared: seconds are "
        "noisy, F1 is not). TF-IDF + LR, naive Bayes and NBSVM are deterministic: fitted "
        "once, their std is 0.",
        "",
    ]
    return "\n".join(lines)


def run_regime(
    name: str, regime: Regime, args: argparse.Namespace, save: Callable[[dict], None]
) -> None:
    """Every selected system of one regime, each over the seeds; `save` gets the results so
    far after each system (an interrupted run keeps what it finished)."""
    wanted = [w.strip() for w in args.only.split(",")] if args.only else None
    cfg = regime_config(regime, args)
    split = prepare(cfg, cfg.data.path, Preprocessor.from_config(cfg.preprocess))
    rows, skipped = [], {}
    for system_name, build in systems(name, regime, split, args).items():
        if wanted and not any(system_name.startswith(w) for w in wanted):
            continue
        try:
            system = build()
        except ImportError as exc:
            skipped[system_name] = f"{exc.name or exc} is not installed"
            print(f"== {name} / {system_name}: skipped ({skipped[system_name]})", flush=True)
            continue
        scores = []
        for seed in range(SEED, SEED + args.seeds):
            once = system_name in DETERMINISTIC and scores
            scores.append(scores[0] if once else system(seed))
            print(
                f"== {name} / {system_name} seed {seed}: f1 {scores[-1][0]:.4f} "
                f"({scores[-1][2]:.1f}s)",
                flush=True,
            )
        rows.append(summarise(system_name, scores))
        save(
            {
                "overrides": regime.overrides,
                "config": str(regime.config.relative_to(ROOT)),
                "train_rows": len(split.train),
                "test_rows": len(split.test),
                "rows": rows,
                "skipped": skipped,
                "margin": margin(rows),
            }
        )


def main(argv: list[str] | None = None) -> None:
    """Parse arguments, run every selected regime and system for each seed, write the results."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pool", default=str(SHARED / "ag_news_train_30k.csv"))
    parser.add_argument("--titles-10k", default=str(SHARED / "ag_news_titles_10k.csv"))
    parser.add_argument("--regimes", help=f"comma-separated, of: {', '.join(REGIMES)}")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument(
        "--split-seed", type=int, default=1234, help="data.split_seed: which stratified split"
    )
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    parser.add_argument("--only", help="comma-separated system names (or name prefixes)")
    parser.add_argument(
        "--variants", action=argparse.BooleanOptionalAction, default=True, help="ablations, levers"
    )
    parser.add_argument("--vectors", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--threads", type=int, default=2, help="CPU threads per training run")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    load_start = " ".join(f"{x:.2f}" for x in os.getloadavg())
    picked = [w.strip() for w in args.regimes.split(",")] if args.regimes else None
    results: dict[str, dict] = {}
    out = Path(args.out)

    def save(name: str, result: dict) -> None:
        """Record one regime's results so far and rewrite quality.json and quality.md."""
        results[name] = result
        meta = {
            "command": shlex.join(
                ["python", "benchmarks/quality.py", *(sys.argv[1:] if argv is None else argv)]
            ),
            "platform": platform.platform(),
            "cpu_count": os.cpu_count(),
            "threads": args.threads,
            "torch": torch.__version__,
            "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "load_start": load_start,
            "load_end": " ".join(f"{x:.2f}" for x in os.getloadavg()),
            "seeds": args.seeds,
            "split_seed": args.split_seed,
        }
        write_json(out / "quality.json", {"meta": meta, "regimes": results})
        write_text_atomic(out / "quality.md", markdown(results, meta))

    for name, regime in REGIMES.items():
        if not picked or name in picked:
            run_regime(name, regime, args, lambda result, name=name: save(name, result))
    print((out / "quality.md").read_text(encoding="utf-8"))


if __name__ == "__main__":
    main()
