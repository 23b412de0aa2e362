"""Quality benchmark: attnclf's configs against TF-IDF + logistic regression and fastText.

Every system trains and is scored on the same stratified split that `attnclf train` uses
(`attnclf.data.prepare.prepare` with the config's `data.split_seed`). Each baseline runs on the
lesson's preprocessing (configs/seed.yaml) and on the default config's; ablation rows switch
each of the default config's settings (those that differ from the built-in defaults) back to
the built-in value, one at a time. Results go to quality.json and quality.md.

    NLTK_DATA=... python benchmarks/quality.py --seeds 3
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import shlex
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from attnclf.config import Config, apply_overrides, from_dict, load_config, read_yaml  # noqa: E402
from attnclf.data.prepare import Splits, prepare  # noqa: E402
from attnclf.jsonio import write_json, write_text_atomic  # noqa: E402
from attnclf.metrics import classification_metrics  # noqa: E402
from attnclf.preprocess import Preprocessor  # noqa: E402
from attnclf.training.train import train  # noqa: E402

DEFAULT_YAML = ROOT / "configs" / "default.yaml"
SEED_YAML = ROOT / "configs" / "seed.yaml"
Score = tuple[float, float, float]  # weighted F1, accuracy, seconds
System = Callable[[int], Score]
SEED = 1234  # first seed: train.seed's default, so seed 1 reproduces `attnclf train`


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


def bench_config(path: Path, data: str, threads: int, overrides: list[str] = ()) -> Config:
    """A config file pointed at `data` (never downloading), with `overrides` applied."""
    base = [f"data.path={data}", "data.url=null", f"train.num_threads={threads}"]
    return load_config(path, [*base, *overrides])


def ablations(data: str, threads: int) -> dict[str, list[str]]:
    """Each setting of default.yaml that differs from the built-in default, reverted alone."""
    raw = read_yaml(DEFAULT_YAML)
    plain = from_dict({}).to_dict()
    tuned = bench_config(DEFAULT_YAML, data, threads).to_dict()
    rows = {}
    for section, values in raw.items():
        if section == "data":
            continue
        for key in values:
            if tuned[section][key] != plain[section][key]:
                setting = f"{section}.{key}={_yaml_value(plain[section][key])}"
                rows[f"ablation: {setting}"] = [setting]
    every = [setting for (setting,) in rows.values()]
    rows["ablation: all of the above"] = every
    return rows


def _yaml_value(value: object) -> str:
    """A value as `--set` text."""
    if value is None:
        return "null"
    return str(value).lower() if isinstance(value, bool) else str(value)


def systems(args: argparse.Namespace) -> dict[str, Callable[[], System]]:
    """Every benchmarked system by name, built lazily (so `--only` skips unused ones)."""
    data, threads = args.data, args.threads
    split = [f"data.split_seed={args.split_seed}"]
    prep = {}

    def config(path: Path) -> Config:
        """`path` on the benchmark's data, threads and split."""
        return bench_config(path, data, threads, split)

    def splits(path: Path) -> Splits:
        """The split attnclf trains on, with that config's preprocessing (cached)."""
        if path not in prep:
            cfg = config(path)
            prep[path] = prepare(cfg, data, Preprocessor.from_config(cfg.preprocess))
        return prep[path]

    found: dict[str, Callable[[], System]] = {
        "attnclf default": lambda: attnclf_system(config(DEFAULT_YAML)),
        "attnclf seed (lesson)": lambda: attnclf_system(config(SEED_YAML)),
    }
    for tag, path in (("lesson prep", SEED_YAML), ("default prep", DEFAULT_YAML)):
        found[f"tfidf+lr, {tag}"] = lambda path=path: tfidf_lr_system(splits(path))
        found[f"fasttext, {tag}"] = lambda path=path: fasttext_system(splits(path), threads)
        found[f"naive bayes, {tag}"] = lambda path=path: naive_bayes_system(splits(path))
    if args.ablations:
        for name, overrides in ablations(data, threads).items():
            found[name] = lambda o=overrides: attnclf_system(
                from_dict(apply_overrides(config(DEFAULT_YAML).to_dict(), o))
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


def markdown(rows: list[dict], skipped: dict[str, str], meta: dict) -> str:
    """The results as a markdown table, with the command and machine."""
    lines = [
        f"# Quality benchmark ({meta['seeds']} seeds; weighted F1 on the test split of split "
        f"seed {meta['split_seed']})",
        "",
        "| system | weighted F1 | accuracy | train seconds |",
        "|---|---|---|---|",
    ]
    for r in rows:
        cells = [f"{r[m]['mean']:.4f} ± {r[m]['std']:.4f}" for m in ("f1", "accuracy")]
        seconds = f"{r['seconds']['mean']:.1f} ± {r['seconds']['std']:.1f}"
        lines.append(f"| {r['system']} | {' | '.join(cells)} | {seconds} |")
    lines += [f"| {name} | skipped: {why} | | |" for name, why in skipped.items()]
    lines += [
        "",
        f"Command: `{meta['command']}`",
        "",
        f"Machine: {meta['platform']}, {meta['cpu_count']} CPU(s), torch {meta['torch']}, "
        f"{meta['threads']} thread(s) per run, {meta['date']}. Wall times are noisy when the CPU "
        "is shared.",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    """Parse arguments, run every selected system for each seed, write the results."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(ROOT.parent / "shared/data/ag_news_titles_10k.csv"))
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument(
        "--split-seed", type=int, default=1234, help="data.split_seed: which stratified split"
    )
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    parser.add_argument("--only", help="comma-separated system names (or name prefixes)")
    parser.add_argument("--ablations", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--threads", type=int, default=2, help="CPU threads per training run")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    wanted = [w.strip() for w in args.only.split(",")] if args.only else None
    rows, skipped = [], {}
    for name, build in systems(args).items():
        if wanted and not any(name.startswith(w) for w in wanted):
            continue
        try:
            system = build()
        except ImportError as exc:
            skipped[name] = f"{exc.name or exc} is not installed"
            print(f"== {name}: skipped ({skipped[name]})", flush=True)
            continue
        scores = []
        for seed in range(SEED, SEED + args.seeds):
            scores.append(system(seed))
            print(
                f"== {name} seed {seed}: f1 {scores[-1][0]:.4f} ({scores[-1][2]:.1f}s)", flush=True
            )
        rows.append(summarise(name, scores))
    meta = {
        "command": shlex.join(
            ["python", "benchmarks/quality.py", *(sys.argv[1:] if argv is None else argv)]
        ),
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "threads": args.threads,
        "torch": torch.__version__,
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "data": args.data,
        "seeds": args.seeds,
        "split_seed": args.split_seed,
    }
    out = Path(args.out)
    write_json(out / "quality.json", {"meta": meta, "results": rows, "skipped": skipped})
    write_text_atomic(out / "quality.md", markdown(rows, skipped, meta))
    print(markdown(rows, skipped, meta))


if __name__ == "__main__":
    main()
