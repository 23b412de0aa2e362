"""Quality benchmark: attnclf's default against TF-IDF + LR, naive Bayes, NBSVM and fastText.

Regimes (each its own data and split; every system in a regime sees the rows that `attnclf
train` trains and tests on, `attnclf.data.prepare.prepare` with the regime's config, `auto`
preprocessing included). AG News: titles from the 30k pool with 2,000, 7,000 and all training
rows (`data.train_rows`); the same with `configs/ag_news.yaml` (each training row's description
is one more training text); title + description from the same pool, with the default and with
`configs/ag_news_description.yaml`; and the first 10k titles. Beyond AG News, with the default
config and only the data overrides that read the files (no knob-turning): SST-2 (the official
train, dev and test files) and TREC (the official train and test files; validation split off
the train file).
Peers are fitted on the training rows attnclf trains on, under two cleanings of the raw text
(the lesson's, all steps on; and lowercase without stopword removal): the one with the higher
validation accuracy is scored on test. Every system is scored in weighted F1, accuracy and
expected calibration error (15 bins). SST-2 and TREC also show Kim (2014)'s published CNN
accuracies, quoted, not run. In the titles regimes "+ word2vec" trains word vectors (gensim, a
benchmark-only dependency) on the training split's descriptions and starts the default's
embeddings from them (`model.pretrained_embeddings`).
Ablation rows switch one part of a regime's config off; lever rows switch one candidate on (the
2-seed ensemble averages the test probabilities of two seeds' runs: twice the training time).
Results go to quality.json and quality.md.

    NLTK_DATA=... python benchmarks/quality.py --seeds 3 --threads 1
    NLTK_DATA=... python benchmarks/quality.py --seeds 3 --threads 1 --regimes sst2,trec
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import math
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from attnclf.config import Config, PreprocessConfig, load_config  # noqa: E402
from attnclf.data.prepare import Splits, prepare  # noqa: E402
from attnclf.encoding.preprocess import Preprocessor  # noqa: E402
from attnclf.metrics import calibration_error, classification_metrics  # noqa: E402
from attnclf.training.train import train  # noqa: E402
from benchmarks.common import (  # noqa: E402
    DEFAULT_CONFIG,
    SHARED_DATA,
    add_out,
    command_line,
    load_average,
    machine,
    write_results,
)

SHARED = SHARED_DATA
DEFAULT_YAML = DEFAULT_CONFIG
AG_NEWS_YAML = ROOT / "configs" / "ag_news.yaml"
DESCRIPTION_YAML = ROOT / "configs" / "ag_news_description.yaml"
POOL, TITLES_10K = "ag_news_train_30k.csv", "ag_news_titles_10k.csv"
HEADERED = ["data.text_column=text", "data.label_column=label"]  # SST-2's and TREC's files
SEED = 1234  # first seed: train.seed's default, so seed 1 reproduces `attnclf train`
PEERS = ("tfidf+lr", "naive bayes", "nbsvm", "fasttext")
DETERMINISTIC = ("tfidf+lr", "naive bayes", "nbsvm")  # fitted once: every seed scores the same
METRICS = ("f1", "accuracy", "ece", "seconds")
ECE_BINS = 15
CLEANINGS = {  # the peers' two cleanings of the raw text; validation accuracy picks one
    "the lesson's cleaning": PreprocessConfig(
        lowercase=True, stopwords=True, remove_parentheses=True, space_punctuation=True,
        remove_non_alphanumeric=True,
    ),
    "no stopword removal": PreprocessConfig(
        lowercase=True, stopwords=False, remove_parentheses=False, space_punctuation=True,
        remove_non_alphanumeric=True,
    ),
}  # fmt: skip
PHRASES = " (also trained on phrase labels)"


@dataclass
class Score:
    """One run's test metrics and training seconds; a peer's also says which cleaning won."""

    f1: float  # weighted
    accuracy: float
    ece: float  # expected calibration error, ECE_BINS bins
    seconds: float
    cleaning: str | None = None  # peers: the cleaning chosen on the validation split
    val_accuracy: dict[str, float] | None = None  # peers: each cleaning's validation accuracy


System = Callable[[int], Score]
Probabilities = Callable[[list[str]], np.ndarray]  # texts -> [N, C], columns in sorted classes
Fit = Callable[[list[str], list[str], int], Probabilities]  # train texts, labels, seed


@dataclass
class Regime:
    """A train file (with its own validation and test files, if given), a config and the
    overrides that select its texts and training rows."""

    train: str  # a file name: under --data-dir, or --pool / --titles-10k for those two
    overrides: list[str] = field(default_factory=list)
    config: Path = DEFAULT_YAML
    vectors: bool = False  # also run the default with word2vec vectors from descriptions
    val: str | None = None  # the validation file (data.val_path); None: split off the train file
    test: str | None = None  # the test file (data.test_path); None: split off the train file
    margins: tuple[str, ...] = ("f1",)  # metrics the summary compares with the best peer
    published: dict[str, float] = field(default_factory=dict)  # quoted accuracies, never run


REGIMES = {
    "titles-2000": Regime(POOL, ["data.train_rows=2000"], vectors=True),
    "titles-7000": Regime(POOL, ["data.train_rows=7000"], vectors=True),
    "titles-all": Regime(POOL, [], vectors=True),
    "titles-2000+descriptions": Regime(POOL, ["data.train_rows=2000"], AG_NEWS_YAML, True),
    "titles-7000+descriptions": Regime(POOL, ["data.train_rows=7000"], AG_NEWS_YAML, True),
    "titles-all+descriptions": Regime(POOL, config=AG_NEWS_YAML, vectors=True),
    "title+description": Regime(POOL, ["data.use_description=true"]),
    "title+description-tuned": Regime(POOL, config=DESCRIPTION_YAML),
    "titles-10k-file": Regime(TITLES_10K),
    "sst2": Regime(
        "sst2_train.csv", HEADERED, val="sst2_dev.csv", test="sst2_test.csv",
        margins=("accuracy", "f1"),
        published={
            f"Kim (2014) CNN-rand{PHRASES}": 0.827,
            f"Kim (2014) CNN-non-static (word2vec){PHRASES}": 0.872,
        },
    ),
    "trec": Regime(
        "trec_train.csv", HEADERED, test="trec_test.csv", margins=("accuracy", "f1"),
        published={"Kim (2014) CNN-rand": 0.912, "Kim (2014) CNN-non-static (word2vec)": 0.936},
    ),
}  # fmt: skip
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
BEFORE_AUTO = {  # default.yaml before the choices made from the data
    "ablation: the default before `auto` (fixed cleaning, naive Bayes 0.4, temperature 1)": [
        "preprocess.lowercase=true",
        "preprocess.stopwords=true",
        "preprocess.remove_parentheses=false",
        "preprocess.remove_non_alphanumeric=true",
        "model.naive_bayes=0.4",
        "model.temperature=1",
        "model.wide_ngrams=0",
    ]
}
NO_WIDE = {"ablation: without the wide path (model.wide_ngrams=0)": ["model.wide_ngrams=0"]}
EACH_AUTO = {  # each choice made from the data, undone alone; and the wide path
    **BEFORE_AUTO,
    **NO_WIDE,
    "ablation: the fixed naive Bayes weight (model.naive_bayes=0.4)": ["model.naive_bayes=0.4"],
    "ablation: no temperature scaling (model.temperature=1)": ["model.temperature=1"],
}
VARIANTS = {  # per regime: parts of its config switched off, and levers switched on
    "titles-2000": {**BEFORE_AUTO, **NO_WIDE, **PREVIOUS_DEFAULT},
    "titles-7000": {**BEFORE_AUTO, **NO_WIDE, **PREVIOUS_DEFAULT},
    "titles-10k-file": {**BEFORE_AUTO, **NO_WIDE, **PREVIOUS_DEFAULT},
    "sst2": EACH_AUTO,
    "trec": EACH_AUTO,
    "titles-all": {
        **MIX_ABLATIONS,
        **NO_PPMI,
        **EACH_AUTO,
        **PREVIOUS_DEFAULT,
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


def _classes(split: Splits) -> list[str]:
    """The regime's classes, sorted: the column order of every probability matrix here."""
    return sorted(set(split.train["label"]))


def _score(split: Splits, probabilities: np.ndarray) -> tuple[float, float, float]:
    """Weighted F1, accuracy and expected calibration error of test-split probabilities."""
    classes = _classes(split)
    index = {c: i for i, c in enumerate(classes)}
    truth = np.array([index[c] for c in split.test["label"]])
    predicted = probabilities.argmax(axis=1)
    overall = classification_metrics(truth.tolist(), predicted.tolist(), classes)["overall"]
    ece = calibration_error(probabilities, truth, bins=ECE_BINS)
    return overall["f1"], overall["accuracy"], ece


def run_probabilities(run_dir: Path, texts: list[str], classes: list[str]) -> np.ndarray:
    """A trained run's probabilities [N, C] for raw texts, columns in `classes` order."""
    from attnclf.predict.torch_backend import Predictor

    predictions = Predictor.from_run(run_dir).predict_iter(texts)
    return np.array([[p.probabilities[c] for c in classes] for p in predictions])


def attnclf_system(cfg: Config, split: Splits) -> System:
    """Train attnclf with `cfg` (seeded per run) through the library API, in a temp dir."""

    def run(seed: int) -> Score:
        """One seeded training run; ECE from its test metrics, else from its predictions."""
        cfg.train.seed = seed
        start = time.perf_counter()
        with tempfile.TemporaryDirectory() as tmp:
            result = train(cfg, "bench", tmp)
            seconds = time.perf_counter() - start
            overall = result.metrics["overall"]
            ece = overall.get("ece")
            if ece is None:  # a library whose test metrics lack it: the run's own probabilities
                texts = split.test["text"].tolist()
                ece = _score(split, run_probabilities(result.run_dir, texts, _classes(split)))[2]
        return Score(overall["f1"], overall["accuracy"], ece, seconds)

    return run


def ensemble_system(cfg: Config, split: Splits, members: int) -> System:
    """`members` runs of `cfg` (seeds `seed`, `seed` + 100, ...) whose test probabilities are
    averaged: what a seed ensemble would buy, at `members` times the training time."""

    def run(seed: int) -> Score:
        """Train each member, then score the averaged probabilities; seconds cover it all."""
        start, total = time.perf_counter(), 0.0
        for member in range(members):
            cfg.train.seed = seed + 100 * member
            with tempfile.TemporaryDirectory() as tmp:
                run_dir = train(cfg, "bench", tmp).run_dir
                total = total + run_probabilities(
                    run_dir, split.test["text"].tolist(), _classes(split)
                )
        return Score(*_score(split, total / members), time.perf_counter() - start)

    return run


def cleaned_texts(split: Splits) -> dict[str, dict[str, list[str]]]:
    """Every split's raw text under each of the peers' cleanings: cleaning -> split -> texts."""
    found = {}
    for name, cfg in CLEANINGS.items():
        preprocessor = Preprocessor.from_config(cfg)
        found[name] = {
            part: preprocessor.batch(getattr(split, part)["text"].tolist())
            for part in ("train", "val", "test")
        }
    return found


def _accuracy(labels: list[str], classes: list[str], probabilities: np.ndarray) -> float:
    """Accuracy of probabilities [N, C] against labels."""
    predicted = [classes[i] for i in probabilities.argmax(axis=1)]
    return float(np.mean([p == t for p, t in zip(predicted, labels, strict=True)]))


def peer_system(split: Splits, texts: Callable[[], dict], fit: Fit) -> System:
    """A peer fitted on the training rows under each cleaning; the one with the higher
    validation accuracy (ties: the lesson's) is scored on test. Seconds cover both fits."""
    classes, labels = _classes(split), split.train["label"].tolist()

    def run(seed: int) -> Score:
        """Both fits, the choice on validation, the chosen one's test scores."""
        cleaned = texts()
        start = time.perf_counter()
        fitted = {name: fit(t["train"], labels, seed) for name, t in cleaned.items()}
        seconds = time.perf_counter() - start
        val_labels = split.val["label"].tolist()
        val = {n: _accuracy(val_labels, classes, f(cleaned[n]["val"])) for n, f in fitted.items()}
        chosen = max(val, key=val.get)  # never the test split
        scores = _score(split, fitted[chosen](cleaned[chosen]["test"]))
        return Score(*scores, seconds, chosen, val)

    return run


def tfidf_lr() -> Fit:
    """TF-IDF (word 1-2 grams, sublinear tf) + logistic regression (C=10)."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    def fit(texts: list[str], labels: list[str], seed: int) -> Probabilities:
        """One fit; LR is deterministic, the seed only feeds random_state."""
        model = make_pipeline(
            TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True),
            LogisticRegression(C=10, max_iter=1000, random_state=seed),
        )
        model.fit(texts, labels)
        return model.predict_proba  # columns: classes_, sorted as the split's classes

    return fit


def naive_bayes() -> Fit:
    """Multinomial naive Bayes on word 1-2 gram counts (alpha 1): a reference beyond the issue's."""
    from sklearn.feature_extraction.text import CountVectorizer
    from sklearn.naive_bayes import MultinomialNB
    from sklearn.pipeline import make_pipeline

    def fit(texts: list[str], labels: list[str], seed: int) -> Probabilities:
        """One fit; naive Bayes is deterministic, so the seed is unused."""
        model = make_pipeline(CountVectorizer(ngram_range=(1, 2)), MultinomialNB(alpha=1.0))
        model.fit(texts, labels)
        return model.predict_proba

    return fit


def nbsvm() -> Fit:
    """NBSVM (Wang & Manning 2012): binary 1-2 grams scaled by naive Bayes log-count ratios,
    one logistic regression per class (one-vs-rest)."""
    from scipy.special import softmax
    from sklearn.feature_extraction.text import CountVectorizer
    from sklearn.linear_model import LogisticRegression

    def fit(texts: list[str], labels: list[str], seed: int) -> Probabilities:
        """One fit per class; deterministic (liblinear with a fixed random_state)."""
        vectorizer = CountVectorizer(ngram_range=(1, 2), binary=True)
        x = vectorizer.fit_transform(texts)
        y = np.asarray(labels)
        models = []
        for c in sorted(set(labels)):
            p = np.asarray(x[y == c].sum(0)).ravel() + 1.0
            q = np.asarray(x[y != c].sum(0)).ravel() + 1.0
            r = np.log((p / p.sum()) / (q / q.sum()))
            model = LogisticRegression(C=4.0, solver="liblinear", random_state=seed)
            models.append((r, model.fit(x.multiply(r).tocsr(), y == c)))

        def probabilities(new: list[str]) -> np.ndarray:
            """NBSVM has no probabilities of its own: a softmax over the one-vs-rest decision
            scores (each a log-odds) stands in, for ECE; the argmax is NBSVM's prediction."""
            z = vectorizer.transform(new)
            scores = [m.decision_function(z.multiply(r).tocsr()) for r, m in models]
            return softmax(np.stack(scores, axis=1), axis=1)

        return probabilities

    return fit


def fasttext_peer(threads: int) -> Fit:
    """fastText supervised (wordNgrams 2, dim 100, 25 epochs, lr 0.5)."""
    import fasttext

    def fit(texts: list[str], labels: list[str], seed: int) -> Probabilities:
        """One seeded fit from a temporary `__label__` file."""
        tag = {c: "__label__" + c.replace(" ", "_") for c in sorted(set(labels))}
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "train.txt"
            lines = (f"{tag[label]} {text}\n" for text, label in zip(texts, labels, strict=True))
            path.write_text("".join(lines), encoding="utf-8")
            model = fasttext.train_supervised(
                str(path), wordNgrams=2, dim=100, epoch=25, lr=0.5, seed=seed, thread=threads,
                verbose=0,
            )  # fmt: skip
        column = {t: i for i, t in enumerate(tag.values())}

        def probabilities(new: list[str]) -> np.ndarray:
            """Every class's probability (k=-1), renormalised to sum to 1."""
            # The binding's own predict(), a text at a time: fastText 0.9.2's predict() on a
            # list repeats the top probability for every label, and on one text it calls
            # np.array(copy=False), which NumPy 2 refuses
            out = np.zeros((len(new), len(column)))
            for row, text in enumerate(new):
                for prob, name in model.f.predict(text + "\n", -1, 0.0, "strict"):
                    out[row, column[name]] = prob
            return out / out.sum(axis=1, keepdims=True)

        return probabilities

    return fit


def word2vec_system(cfg: Config, split: Splits, threads: int) -> System:
    """The default started from word2vec vectors trained on the training rows' descriptions."""
    from gensim.models import Word2Vec

    rows = split.train["description"].drop_duplicates()  # augmented splits repeat each one
    descriptions = split.preprocessor.batch(list(rows))  # the cleaning attnclf trains with
    sentences = [text.split() for text in descriptions if text]
    attnclf = attnclf_system(cfg, split)

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
            score = attnclf(seed)
        return dataclasses.replace(score, seconds=time.perf_counter() - start)

    return run


def data_file(name: str, args: argparse.Namespace) -> str:
    """Where a regime's file lives: --pool and --titles-10k for those two, else --data-dir."""
    given = {POOL: args.pool, TITLES_10K: args.titles_10k}.get(name)
    return given or str(Path(args.data_dir) / name)


def regime_config(regime: Regime, args: argparse.Namespace, extra: list[str] = ()) -> Config:
    """The regime's config on its files (never downloading), split and threads, plus `extra`."""
    base = [
        f"data.path={data_file(regime.train, args)}",
        "data.url=null",
        f"data.split_seed={args.split_seed}",
        f"train.num_threads={args.threads}",
    ]
    given = {"val": regime.val, "test": regime.test}
    base += [f"data.{part}_path={data_file(name, args)}" for part, name in given.items() if name]
    return load_config(regime.config, [*base, *regime.overrides, *extra])


def systems(
    name: str, regime: Regime, split: Splits, args: argparse.Namespace
) -> dict[str, Callable[[], System]]:
    """Every system of one regime by name, built lazily (so `--only` skips unused ones)."""
    found: dict[str, Callable[[], System]] = {
        "attnclf default": lambda: attnclf_system(regime_config(regime, args), split),
    }
    if regime.vectors and args.vectors:
        found["attnclf default + word2vec"] = lambda: word2vec_system(
            regime_config(regime, args), split, args.threads
        )
    texts = functools.cache(lambda: cleaned_texts(split))  # once per regime, for every peer
    peers = {
        "tfidf+lr": tfidf_lr,
        "naive bayes": naive_bayes,
        "nbsvm": nbsvm,
        "fasttext": lambda: fasttext_peer(args.threads),
    }
    for peer, fit in peers.items():
        found[peer] = lambda fit=fit: peer_system(split, texts, fit())
    if args.variants:
        for label, overrides in VARIANTS.get(name, {}).items():
            found[label] = lambda o=overrides: attnclf_system(regime_config(regime, args, o), split)
        if name in ENSEMBLES:
            found["lever: 2-seed ensemble (probabilities averaged; trains twice)"] = lambda: (
                ensemble_system(regime_config(regime, args), split, 2)
            )
    return found


def summarise(name: str, scores: list[Score]) -> dict:
    """Mean and (sample) standard deviation of each metric over the seeds; for a peer, also the
    cleaning each seed chose and both cleanings' validation accuracy."""
    row: dict = {"system": name, "runs": len(scores)}
    for metric in METRICS:
        values = [getattr(s, metric) for s in scores]
        row[metric] = {
            "mean": statistics.fmean(values),
            "std": statistics.stdev(values) if len(values) > 1 else 0.0,
            "values": values,
        }
    if scores[0].cleaning is not None:
        row["preprocessing"] = {
            "chosen": [s.cleaning for s in scores],
            "val_accuracy": [s.val_accuracy for s in scores],
        }
    return row


def margin(rows: list[dict], metrics: tuple[str, ...]) -> dict | None:
    """Per metric, the default's mean minus the best peer's (the best in that metric), with the
    spread of that difference. Published rows are not in `rows`: never the best peer."""
    by_name = {r["system"]: r for r in rows}
    peers = [by_name[p] for p in PEERS if p in by_name]
    if "attnclf default" not in by_name or not peers:
        return None
    default, found = by_name["attnclf default"], {}
    for metric in metrics:
        best = max(peers, key=lambda r: r[metric]["mean"])
        found[metric] = {
            "best_peer": best["system"],
            "diff": default[metric]["mean"] - best[metric]["mean"],
            "std": math.hypot(default[metric]["std"], best[metric]["std"]),
        }
    return found


def _cell(stat: dict, digits: int = 4) -> str:
    """`mean ± std`."""
    return f"{stat['mean']:.{digits}f} ± {stat['std']:.{digits}f}"


def shown(row: dict) -> str:
    """A row's name; a peer's with the cleaning its runs chose: `nbsvm (no stopword removal)`."""
    if "preprocessing" not in row:
        return row["system"]
    counts = Counter(row["preprocessing"]["chosen"])
    if len(counts) == 1:
        return f"{row['system']} ({next(iter(counts))})"
    return f"{row['system']} ({', '.join(f'{c}: {n} seeds' for c, n in counts.most_common())})"


NAMES = {"f1": "weighted F1", "accuracy": "accuracy"}


def summary(title: str, regimes: dict[str, dict], metrics: tuple[str, ...]) -> list[str]:
    """One summary table: per regime, the default, the best peer and their difference in each
    of `metrics`, and any published figures."""
    picked = {n: r for n, r in regimes.items() if r["margin"] and r["margins"] == list(metrics)}
    if not picked:
        return []
    published = any(r["published"] for r in picked.values())
    head = ["regime", "train rows"]
    for metric in metrics:
        m = NAMES[metric]
        head += [f"attnclf default {m}", f"best peer {m}", f"default minus best peer {m}"]
    head += ["published, not measured (accuracy)"] if published else []
    lines = ["", f"## {title}", "", f"| {' | '.join(head)} |", "|---" * len(head) + "|"]
    for name, result in picked.items():
        rows = {r["system"]: r for r in result["rows"]}
        cells = [name, f"{result['train_rows']:,}"]
        for metric in metrics:
            m = result["margin"][metric]
            best = rows[m["best_peer"]]
            cells += [
                _cell(rows["attnclf default"][metric]),
                f"{shown(best)} {_cell(best[metric])}",
                f"{m['diff']:+.4f} ± {m['std']:.4f}",
            ]
        if published:
            cells.append(
                ", ".join(f"{p['system']} {p['accuracy']:.3f}" for p in result["published"])
            )
        lines.append(f"| {' | '.join(cells)} |")
    return lines


def regime_table(name: str, result: dict) -> list[str]:
    """One regime's table: every system's scores, then its skipped and published rows."""
    train = result["files"]["train"]
    files = ", ".join(
        f"{part} {Path(f).name}" if part == "train" or f != train else f"{part} split off it"
        for part, f in result["files"].items()
    )
    lines = [
        "",
        f"## {name} ({result['config']}; {files}; {result['train_rows']:,} train, "
        f"{result['val_rows']:,} val, {result['test_rows']:,} test rows)",
        "",
        "| system | weighted F1 | accuracy | ECE | train seconds |",
        "|---|---|---|---|---|",
    ]
    for r in result["rows"]:
        cells = [_cell(r["f1"]), _cell(r["accuracy"]), _cell(r["ece"]), _cell(r["seconds"], 1)]
        lines.append(f"| {shown(r)} | {' | '.join(cells)} |")
    lines += [f"| {n} | skipped: {why} | | | |" for n, why in result["skipped"].items()]
    lines += [
        f"| published, not measured: {p['system']} | | {p['accuracy']:.4f} | | |"
        for p in result["published"]
    ]
    return lines


def markdown(regimes: dict[str, dict], meta: dict) -> str:
    """The results as markdown tables (the summaries, then one per regime), command and machine."""
    lines = [
        f"# Quality benchmark ({meta['seeds']} seeds; test-split scores, split seed "
        f"{meta['split_seed']} where a split is made)",
        *summary("AG News (weighted F1)", regimes, ("f1",)),
        *summary("Beyond AG News (accuracy and weighted F1)", regimes, ("accuracy", "f1")),
    ]
    for name, result in regimes.items():
        lines += regime_table(name, result)
    lines += [
        "",
        "Peers are fitted on the rows attnclf trains on under two cleanings of the raw text "
        "(the lesson's: every step on; and lowercase, punctuation off, stopwords and parentheses "
        "kept); the one with the higher validation accuracy is scored on test (in brackets: "
        "the choice; quality.json has both validation accuracies) and its train seconds cover "
        f"both fits. ECE: expected calibration error of the test probabilities, {ECE_BINS} "
        "equal-width bins (NBSVM: a softmax over its one-vs-rest scores). Published rows are "
        "quoted from the paper, not run here, and are never the best peer.",
        "",
        f"Command: `{meta['command']}`",
        "",
        f"Machine: {meta['platform']}, {meta['cpu_count']} CPU(s), torch {meta['torch']}, "
        f"{meta['threads']} thread(s) per run, {meta['date']}, load average at the start "
        f"{meta['load_start']} and end {meta['load_end']} (the CPUs are shared: seconds are "
        "noisy, scores are not). TF-IDF + LR, naive Bayes and NBSVM are deterministic: fitted "
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
    split = prepare(cfg, cfg.data.path)  # as `attnclf train` makes it, `auto` cleaning chosen
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
            s = scores[-1]
            chose = f", {s.cleaning}" if s.cleaning else ""
            print(
                f"== {name} / {system_name} seed {seed}: f1 {s.f1:.4f}, accuracy "
                f"{s.accuracy:.4f}, ece {s.ece:.4f} ({s.seconds:.1f}s{chose})",
                flush=True,
            )
        rows.append(summarise(system_name, scores))
        save(
            {
                "overrides": regime.overrides,
                "config": str(regime.config.relative_to(ROOT)),
                "files": split.sources or {"train": cfg.data.path},
                "preprocessing": dataclasses.asdict(cfg.preprocess),  # attnclf's, as chosen
                "train_rows": len(split.train),
                "val_rows": len(split.val),
                "test_rows": len(split.test),
                "rows": rows,
                "skipped": skipped,
                "margins": list(regime.margins),
                "margin": margin(rows, regime.margins),
                "published": [
                    {"system": p, "accuracy": a, "measured": False, "source": "Kim (2014)"}
                    for p, a in regime.published.items()
                ],
            }
        )


def main(argv: list[str] | None = None) -> None:
    """Parse arguments, run every selected regime and system for each seed, write the results."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=str(SHARED), help="where the regimes' files are")
    parser.add_argument("--pool", help=f"the 30k AG News pool (default: --data-dir's {POOL})")
    parser.add_argument(
        "--titles-10k", help=f"the 10k titles file (default: --data-dir's {TITLES_10K})"
    )
    parser.add_argument("--regimes", help=f"comma-separated, of: {', '.join(REGIMES)}")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument(
        "--split-seed", type=int, default=1234, help="data.split_seed: which stratified split"
    )
    add_out(parser)
    parser.add_argument("--only", help="comma-separated system names (or name prefixes)")
    parser.add_argument(
        "--variants", action=argparse.BooleanOptionalAction, default=True, help="ablations, levers"
    )
    parser.add_argument("--vectors", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--threads", type=int, default=2, help="CPU threads per training run")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    load_before = load_average()
    load_start = " ".join(f"{x:.2f}" for x in load_before)
    command = command_line("quality.py", sys.argv[1:] if argv is None else argv, "python")
    picked = [w.strip() for w in args.regimes.split(",")] if args.regimes else None
    unknown = sorted(set(picked or ()) - REGIMES.keys())
    if unknown:
        parser.error(f"unknown regime(s) {', '.join(unknown)}; known: {', '.join(REGIMES)}")
    results: dict[str, dict] = {}
    out = Path(args.out)

    def save(name: str, result: dict) -> None:
        """Record one regime's results so far and rewrite quality.json and quality.md."""
        results[name] = result
        record = machine("cpu", command, load_before)  # the machine record every benchmark keeps
        meta = {  # command, platform, cpu_count, torch, date among the record's keys
            **record,
            "threads": args.threads,
            "load_start": load_start,
            "load_end": " ".join(f"{x:.2f}" for x in record["load_average_after"]),
            "seeds": args.seeds,
            "split_seed": args.split_seed,
        }
        write_results(out, "quality", {"meta": meta, "regimes": results}, markdown(results, meta))

    for name, regime in REGIMES.items():
        if not picked or name in picked:
            run_regime(name, regime, args, lambda result, name=name: save(name, result))
    print((out / "quality.md").read_text(encoding="utf-8"))


if __name__ == "__main__":
    main()
