"""Speed benchmark: training throughput and epoch time, the data pipeline's share of an epoch,
padding with and without length bucketing, peak memory, batch prediction (plain and explained)
and start-up times.

The corpus is the shared AG News titles resampled with replacement to --rows rows (fixed seed),
written to a temporary folder and labelled "resampled" in the results. Every figure is the
median of several runs made by this one invocation; each records the machine it ran on. Runs
of a subset (--only, or --device cuda on a GPU machine) are merged into the existing results;
GPU figures are kept apart from CPU ones (keys and labels prefixed with the device).

    NLTK_DATA=... python benchmarks/speed.py               # everything, on the CPU
    python benchmarks/speed.py --only startup --repeats 5  # one section
    python benchmarks/speed.py --device cuda               # training on the GPU, with utilisation

Timings are only meaningful on a quiet machine: the load average is recorded with each run.
"""

from __future__ import annotations

import argparse
import itertools
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

from attnclf import runfolder  # noqa: E402
from attnclf.encoding.batching import make_loader, padding_fraction  # noqa: E402
from attnclf.jsonio import read_json  # noqa: E402
from attnclf.model.classifier import AttentionClassifier  # noqa: E402
from attnclf.training.build import Encoders, build  # noqa: E402
from benchmarks.common import (  # noqa: E402
    DEFAULT_CONFIG,
    add_data,
    add_out,
    attnclf,
    check_data,
    command_line,
    load_average,
    machine,
    parser,
    run_child,
    write_results,
)

CONFIG = DEFAULT_CONFIG
SECTIONS = ("train", "predict", "explain", "startup", "backends")
SEED = 1234
PREDICT_TITLES = 100_000
EXPLAIN_TITLES = 20_000  # explaining costs ~n + 1 predictions per title: fewer titles suffice
SAMPLE_TITLE = "Stocks rally as oil prices fall and tech shares climb"
# Targets for the 2-core CPU machine the project is measured on (GPU figures have none).
TARGETS: dict[str, tuple[str, float]] = {
    "epoch_seconds": ("<=", 30.0),
    "pipeline_share": ("<", 0.10),
    "predict_titles_per_second": (">=", 5000.0),
    "explain_titles_per_second": (">=", 1000.0),
    "help_seconds": ("<", 0.3),
    "cold_predict_seconds": ("<", 2.5),
    "train_peak_rss_gb": ("<", 1.5),
    "onnx_cold_predict_seconds": ("<", 0.6),
    "onnx_speedup": (">=", 1.5),
}


@dataclass
class Figure:
    """One measured quantity: its runs, and the median that is reported."""

    label: str
    unit: str
    runs: list[float]
    note: str = ""

    @property
    def value(self) -> float:
        """The median of the runs."""
        return statistics.median(self.runs)


@dataclass
class Bench:
    """What this invocation measures, where, and the figures found so far."""

    args: argparse.Namespace
    tmp: Path
    device: str
    figures: dict[str, Figure] = field(default_factory=dict)
    run_dir: Path | None = None
    corpus: Path | None = None

    def add(self, key: str, label: str, unit: str, runs: list[float], note: str = "") -> None:
        """Record a figure (under a device prefix off the CPU) and print it as it comes."""
        if self.device != "cpu":
            key, label = f"{self.device}_{key}", f"[{self.device}] {label}"
        self.figures[key] = Figure(label, unit, runs, note)
        print(f"  {label}: {_fmt(statistics.median(runs), unit)}  (runs: {len(runs)})", flush=True)


def resample(source: Path, rows: int, seed: int, dest: Path) -> Path:
    """`rows` rows drawn with replacement from `source` (fixed seed), as a CSV at `dest`."""
    import pandas as pd

    frame = pd.read_csv(source, dtype=str, keep_default_na=False)
    frame.sample(n=rows, replace=True, random_state=seed).to_csv(dest, index=False)
    return dest


def train_args(b: Bench, epochs: int) -> list[str]:
    """`attnclf train` on the resampled corpus with the benchmark's config and device."""
    sets = [f"data.path={b.corpus}", f"train.epochs={epochs}", "train.patience=1000"]
    sets.append(f"train.device={b.device}")
    return attnclf(
        "train",
        "-c",
        str(b.args.config),
        "-o",
        str(b.tmp / "runs"),
        *itertools.chain.from_iterable(("--set", s) for s in sets),
    )


def _sync(device: torch.device) -> None:
    """Wait for queued GPU work, so that a timer stops when the work is done."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _timed(fn: Callable[[], object], device: torch.device) -> float:
    """Seconds that `fn` takes, including the device work it queued."""
    _sync(device)
    start = time.perf_counter()
    fn()
    _sync(device)
    return time.perf_counter() - start


# --- sections -------------------------------------------------------------------------------


def bench_train(b: Bench) -> None:
    """End-to-end CLI training runs, then the in-process breakdown of one epoch."""
    repeats = b.args.repeats
    print(f"training: {repeats} x `attnclf train` (2 epochs) on {b.args.rows:,} rows", flush=True)
    epoch, first, wall, rss = [], [], [], []
    for _ in range(repeats):
        child = run_child(train_args(b, epochs=2), b.tmp)
        b.run_dir = (b.tmp / "runs" / runfolder.LATEST).resolve()
        history = read_json(b.run_dir / runfolder.HISTORY)
        first.append(history[0]["seconds"])
        epoch.append(history[1]["seconds"])
        wall.append(child.seconds)
        rss.append(child.max_rss_bytes / 1e9)
    b.add(
        "epoch_seconds",
        "epoch, steady state (train + validation pass; `attnclf train`, epoch 2)",
        "s",
        epoch,
    )
    b.add("first_epoch_seconds", "first epoch (`attnclf train`, epoch 1)", "s", first)
    b.add("train_wall_seconds", "whole `attnclf train` run, 2 epochs + test", "s", wall)
    b.add("train_peak_rss_gb", "peak resident memory of `attnclf train`", "GB", rss)
    breakdown(b)


def breakdown(b: Bench) -> None:
    """Time the loader alone, a train pass and a validation pass in-process, and measure padding.

    The datasets are built with the run's own encoders and resolved config (its `auto` choices
    made), on the device, as `attnclf train` does.
    """
    assert b.run_dir is not None and b.corpus is not None
    cfg = runfolder.read_config(b.run_dir)
    cfg.data.path, cfg.train.device = str(b.corpus), b.device
    encoders = Encoders(*runfolder.read_encoders(b.run_dir, cfg))
    run = build(cfg, encoders=encoders)
    device, trainer, t = run.device, run.trainer, cfg.train
    train_ds, val_ds, loader, val_loader = (
        run.train_data,
        run.val_data,
        run.train_loader,
        run.val_loader,
    )
    trainer.train_epoch(list(itertools.islice(loader, 20)))  # warm-up: allocator, kernels
    n, threads = len(train_ds), torch.get_num_threads()
    compare_threads = device.type == "cpu" and threads > 1
    print(f"breakdown: {b.args.repeats} epoch(s) over {n:,} training titles in-process")
    load, passes, single, val, padded, unpadded = [], [], [], [], [], []
    for r in range(1, b.args.repeats + 1):
        loader.batch_sampler.set_epoch(r)
        load.append(_timed(lambda: sum(1 for _ in loader), device))
        passes.append(_timed(lambda: trainer.train_epoch(loader), device))
        if compare_threads:  # OpenMP threads spin-wait: a busy machine favours one thread
            torch.set_num_threads(1)
            single.append(_timed(lambda: trainer.train_epoch(loader), device))
            torch.set_num_threads(threads)
        val.append(_timed(lambda: trainer.evaluate(val_loader), device))
        for bucket, out in ((True, padded), (False, unpadded)):
            plain = make_loader(train_ds, t.batch_size, shuffle=True, bucket=bucket, seed=t.seed)
            plain.batch_sampler.set_epoch(r)
            out.append(padding_fraction(plain))
    b.add("train_pass_seconds", f"train pass over {n:,} titles, {threads} thread(s)", "s", passes)
    if compare_threads:
        b.add("train_pass_seconds_1_thread", f"train pass over {n:,} titles, 1 thread", "s", single)
    b.add("train_samples_per_second", "training throughput", "samples/s", [n / s for s in passes])
    b.add("validation_seconds", f"validation pass over {len(val_ds):,} titles", "s", val)
    b.add("loader_seconds", "the train loader alone, one epoch", "s", load)
    b.add(
        "pipeline_share",
        "data pipeline share of a train pass (loader alone / train pass)",
        "fraction",
        [a / p for a, p in zip(load, passes, strict=True)],
    )
    b.add("padding_bucketed", "padded positions, length-bucketed batches", "fraction", padded)
    b.add("padding_unbucketed", "padded positions, batches in random order", "fraction", unpadded)
    if device.type == "cuda":
        gpu_utilisation(b, run.model, train_ds.lengths, passes, n)


def ensure_run(b: Bench) -> Path:
    """A trained run of the benchmark config: the training section's, or a 1-epoch one."""
    if b.run_dir is None:
        print("training a 1-epoch run to predict with (not timed)", flush=True)
        run_child(train_args(b, epochs=1), b.tmp)
        b.run_dir = (b.tmp / "runs" / runfolder.LATEST).resolve()
    return b.run_dir


def file_throughput(b: Bench, n: int, key: str, what: str, *flags: str) -> None:
    """`attnclf predict --file FLAGS --format json` over `n` resampled titles: titles/s, RSS."""
    run = ensure_run(b)
    titles = resample(b.args.data, n, SEED + 1, b.tmp / f"{key}.csv")
    shown = " ".join(["attnclf predict --file", *flags])
    print(f"{what}: {b.args.repeats} x `{shown}` on {n:,} titles", flush=True)
    command = attnclf("predict", "--run", str(run), "--file", str(titles), "--format", "json")
    children = [run_child([*command, *flags], b.tmp) for _ in range(b.args.repeats)]
    assert children[-1].stdout.count("\n") == n, "one JSON line per title"
    b.add(
        f"{key}_titles_per_second",
        f"{what}, {n:,} titles end to end (start-up included)",
        "titles/s",
        [n / c.seconds for c in children],
    )
    b.add(
        f"{key}_peak_rss_gb",
        f"peak resident memory of `{shown}`",
        "GB",
        [c.max_rss_bytes / 1e9 for c in children],
    )


def bench_predict(b: Bench) -> None:
    """`attnclf predict --file` over --predict-titles resampled titles, JSON lines out."""
    file_throughput(b, b.args.predict_titles, "predict", "batch prediction")


def bench_explain(b: Bench) -> None:
    """`attnclf predict --file --explain` (influence and attention) over --explain-titles titles."""
    file_throughput(b, b.args.explain_titles, "explain", "batch explanation", "--explain")


def bench_startup(b: Bench) -> None:
    """Wall time of `--help`, of a cold single prediction and of `import torch` alone."""
    run = ensure_run(b)
    repeats = max(b.args.repeats, 5)  # cheap: more runs steady the median
    print(f"start-up: {repeats} runs each", flush=True)
    commands = {
        "help_seconds": ("`attnclf --help`", attnclf("--help")),
        "cold_predict_seconds": (
            "cold `attnclf predict` of one title",
            attnclf("predict", "--run", str(run), SAMPLE_TITLE),
        ),
        "import_torch_seconds": (
            "`python -c 'import torch'` (reference)",
            [sys.executable, "-c", "import torch"],
        ),
    }
    for key, (label, command) in commands.items():
        b.add(key, label, "s", [run_child(command, b.tmp).seconds for _ in range(repeats)])


def bench_backends(b: Bench) -> None:
    """torch and onnx side by side: a cold `predict` of one title, and batch prediction."""
    run = ensure_run(b)
    if not (run / "model.onnx").is_file():
        print("exporting the run to ONNX (not timed)", flush=True)
        run_child(attnclf("export", "--run", str(run)), b.tmp)
    n = b.args.predict_titles
    titles = resample(b.args.data, n, SEED + 1, b.tmp / "predict.csv")
    repeats = max(b.args.repeats, 5)
    print(
        f"backends: torch and onnx, {repeats} cold predictions and {b.args.repeats} x {n:,} titles"
    )
    speed: dict[str, list[float]] = {}
    for backend in ("torch", "onnx"):
        cold = attnclf("predict", "--run", str(run), "--backend", backend, SAMPLE_TITLE)
        b.add(
            f"{backend}_cold_predict_seconds",
            f"cold `attnclf predict --backend {backend}` of one title",
            "s",
            [run_child(cold, b.tmp).seconds for _ in range(repeats)],
        )
        batch = [*attnclf("predict", "--run", str(run), "--file", str(titles)), "--format", "json"]
        children = [run_child([*batch, "--backend", backend], b.tmp) for _ in range(b.args.repeats)]
        assert children[-1].stdout.count("\n") == n, "one JSON line per title"
        speed[backend] = [n / c.seconds for c in children]
        b.add(
            f"{backend}_predict_titles_per_second",
            f"batch prediction `--backend {backend}`, {n:,} titles end to end",
            "titles/s",
            speed[backend],
        )
    b.add(
        "onnx_speedup",
        "onnx batch prediction titles/s over torch's (run by run)",
        "x",
        [o / t for o, t in zip(speed["onnx"], speed["torch"], strict=True)],
    )
    for backend in ("torch", "onnx"):
        stages(b, run, titles, backend)
    onnx_ops(b, run, titles)


STAGES = {
    "read": "reading the file",
    "clean": "cleaning (preprocess)",
    "encode": "tokenising and encoding",
    "model": "the model (`_infer`: padding, batching, forward)",
    "answers": "ranking and Prediction objects",
    "json": "JSON lines (`Prediction.to_json`)",
}


def stages(b: Bench, run: Path, titles: Path, backend: str) -> None:
    """Where batch prediction's time goes: each stage of `predict --file` timed in-process."""
    from attnclf.predict import freeze_loaded, load
    from attnclf.predict.base import CHUNK_SIZE

    classifier = load(run, backend)
    freeze_loaded()  # as `attnclf predict` does
    runs: dict[str, list[float]] = {name: [] for name in STAGES}
    for _ in range(b.args.repeats):
        took = dict.fromkeys(STAGES, 0.0)
        start = time.perf_counter()
        texts = list(classifier.read(str(titles)))
        took["read"] = time.perf_counter() - start
        for first in range(0, len(texts), CHUNK_SIZE):
            chunk = texts[first : first + CHUNK_SIZE]
            start = time.perf_counter()
            clean = classifier.preprocessor.batch(chunk)
            took["clean"] += (t1 := time.perf_counter()) - start
            tokens = [classifier.tokenizer.tokenize(c) for c in clean if c]
            sequences = classifier.tokenizer.tokens_to_sequences(tokens)
            took["encode"] += (t2 := time.perf_counter()) - t1
            inferred = classifier._infer(sequences)
            took["model"] += (t3 := time.perf_counter()) - t2
            predictions = list(classifier._answers(chunk, clean, tokens, inferred, None))
            took["answers"] += (t4 := time.perf_counter()) - t3
            for p in predictions:
                p.to_json()
            took["json"] += time.perf_counter() - t4
        for name, seconds in took.items():
            runs[name].append(seconds)
    total = sum(statistics.median(r) for r in runs.values())
    for name, label in STAGES.items():
        share = 100 * statistics.median(runs[name]) / total
        b.add(
            f"{backend}_stage_{name}_seconds",
            f"`--backend {backend}`, {len(texts):,} titles: {label}",
            "s",
            runs[name],
            note=f"{share:.0f}% of the stages' total",
        )


def onnx_ops(b: Bench, run: Path, titles: Path, top: int = 3) -> None:
    """Where the onnx model's time goes: the costliest op types' shares of onnxruntime's node
    time over the titles' first chunk (its own profiler)."""
    import json
    from collections import Counter

    import onnxruntime as ort

    from attnclf.predict import load
    from attnclf.predict.base import CHUNK_SIZE, length_batches

    classifier = load(run, "onnx")
    texts = list(itertools.islice(classifier.read(str(titles)), CHUNK_SIZE))
    sequences = classifier.tokenizer.texts_to_sequences(classifier.preprocessor.batch(texts))
    options = ort.SessionOptions()
    options.enable_profiling, options.profile_file_prefix = True, str(b.tmp / "onnx-profile")
    session = ort.InferenceSession(str(run / "model.onnx"), options, ["CPUExecutionProvider"])
    for _, ids, lengths in length_batches(sequences, classifier.max_len, classifier.min_length):
        session.run(None, {"ids": ids, "lengths": lengths})
    events = json.loads(Path(session.end_profiling()).read_text(encoding="utf-8"))
    per_op = Counter()
    for event in events:
        if event.get("cat") == "Node":
            per_op[event["args"]["op_name"]] += event["dur"]
    total = sum(per_op.values())
    for op, microseconds in per_op.most_common(top):
        b.add(
            f"onnx_op_{op}_share",
            f"`--backend onnx`, {len(texts):,} titles: {op} nodes' share of the onnx model's time",
            "fraction",
            [microseconds / total],
        )


def matmul_peak(device: torch.device, size: int = 8192, iters: int = 20) -> float:
    """Measured dense bf16 matmul throughput of `device`, in FLOP/s (best of 3)."""
    a = torch.randn(size, size, device=device, dtype=torch.bfloat16)
    b = torch.randn(size, size, device=device, dtype=torch.bfloat16)
    torch.matmul(a, b)
    best = min(_timed(lambda: [torch.matmul(a, b) for _ in range(iters)], device) for _ in range(3))
    return 2 * size**3 * iters / best


def gpu_utilisation(
    b: Bench,
    model: AttentionClassifier,
    lengths: torch.Tensor,
    passes: list[float],
    n: int,
) -> None:
    """Model FLOP/s of the train passes against the device's measured bf16 matmul peak."""
    tokens = float(lengths.clamp(min=1).float().mean())  # packed: padding costs no RNN FLOPs
    per_sample = 3 * model.forward_flops(tokens)  # backward ~ 2x forward
    peak = matmul_peak(torch.device(b.device))
    h = model.cfg.rnn_hidden_dim
    achieved = [n * per_sample / s for s in passes]
    note = (
        f"{per_sample / 1e6:.2f} MFLOP per training sample ({tokens:.1f} tokens, forward x 3); "
        f"bf16 matmul peak measured at {peak / 1e12:.0f} TFLOP/s. The RNN is the limit: each "
        f"time step waits for the previous one, so a batch runs as ~max-length tiny "
        f"[batch x {h}] x [{h} x {h}] matmuls "
        f"that fill few SMs, and kernel launches, not arithmetic, set the pace."
    )
    b.add(
        "model_tflops",
        "model FLOP/s achieved in training",
        "TFLOP/s",
        [a / 1e12 for a in achieved],
    )
    b.add(
        "utilisation",
        "model FLOP/s / measured bf16 matmul peak",
        "fraction",
        [a / peak for a in achieved],
        note,
    )


# --- report ---------------------------------------------------------------------------------


def _fmt(value: float, unit: str) -> str:
    """A figure with sensible precision."""
    if unit == "fraction":
        return f"{value:.1%}"
    if unit in ("samples/s", "titles/s"):
        return f"{value:,.0f} {unit}"
    return f"{value:.3g} {unit}"


def _target(key: str, value: float, unit: str) -> tuple[str, str]:
    """The target of a figure as text, and whether it is met (empty when it has none)."""
    if key not in TARGETS:
        return "", ""
    op, limit = TARGETS[key]
    met = {"<": value < limit, "<=": value <= limit, ">=": value >= limit}[op]
    return f"{op} {_fmt(limit, unit)}", "yes" if met else "no"


def merge(out: Path, b: Bench, info: dict, corpus: dict) -> dict:
    """This invocation's figures over those of earlier ones (each keeps its own machine)."""
    path = out / "speed.json"
    old = read_json(path) if path.is_file() else {"machines": {}, "figures": {}}
    mid = f"m{info['date'].replace('-', '').replace(':', '')[:15]}-{b.device}"
    figures = dict(old.get("figures", {}))
    for key, f in b.figures.items():
        target, met = _target(key, f.value, f.unit)
        figures[key] = {
            "label": f.label,
            "value": f.value,
            "unit": f.unit,
            "runs": f.runs,
            "target": target,
            "met": met,
            "note": f.note,
            "machine": mid,
        }
    machines = {**old.get("machines", {}), mid: {**info, "corpus": corpus}}
    used = {f["machine"] for f in figures.values()}
    return {"machines": {k: v for k, v in machines.items() if k in used}, "figures": figures}


def markdown(report: dict) -> str:
    """The results as a markdown table, with the machines they were measured on."""
    lines = [
        "# Speed benchmark",
        "",
        "Written by `benchmarks/speed.py` (`make bench`). Each value is the median of the runs",
        "shown; targets are for the 2-core CPU machine. Timings from a loaded machine (see its",
        "load average) are not comparable.",
        "",
        "| figure | median | runs | target | met | machine |",
        "|---|---|---|---|---|---|",
    ]
    for f in report["figures"].values():
        runs = ", ".join(_fmt(r, f["unit"]).split(" ")[0] for r in f["runs"])
        lines.append(
            f"| {f['label']} | {_fmt(f['value'], f['unit'])} | {runs} | {f['target']} | "
            f"{f['met']} | {f['machine']} |"
        )
    notes = [f"- {f['label']}: {f['note']}" for f in report["figures"].values() if f["note"]]
    if notes:
        lines += ["", "## Notes", "", *notes]
    lines += ["", "## Machines", ""]
    for mid, m in report["machines"].items():
        c = m["corpus"]
        lines += [
            f"**{mid}**: {m['date']}; {m['platform']}; Python {m['python']}; {m['cpu']} "
            f"({m['usable_cpus']} of {m['cpu_count']} CPUs usable); torch {m['torch']} "
            f"({m['torch_threads']} threads); device {m['device']}; load average "
            f"{m['load_average_before']} before, {m['load_average_after']} after.  ",
            f"Corpus: {c['rows']:,} rows {c['kind']} from `{c['source']}` (seed {c['seed']}).  ",
            f"Command: `{m['command']}`",
            "",
        ]
    return "\n".join(lines)


def parse_args(argv: list[str]) -> argparse.Namespace:
    """Command-line options."""
    p = parser(__doc__)
    add_data(p, "labelled CSV (title,category) to resample the corpus from")
    p.add_argument("--rows", type=int, default=120_000, help="rows of the resampled corpus")
    p.add_argument("--repeats", type=int, default=3, help="runs per figure (median reported)")
    add_out(p)
    p.add_argument(
        "--only",
        default=None,
        help=f"comma-separated sections among {', '.join(SECTIONS)} (default: all on the CPU; "
        f"train with --device cuda, as prediction runs on the CPU)",
    )
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    p.add_argument("--config", type=Path, default=CONFIG)
    p.add_argument("--predict-titles", type=int, default=PREDICT_TITLES)
    p.add_argument("--explain-titles", type=int, default=EXPLAIN_TITLES)
    args = p.parse_args(argv)
    args.data, args.out, args.config = (x.resolve() for x in (args.data, args.out, args.config))
    default = SECTIONS if args.device == "cpu" else ("train",)
    args.only = args.only.split(",") if args.only else list(default)
    unknown = set(args.only) - set(SECTIONS)
    if unknown:
        p.error(f"unknown section(s) {', '.join(sorted(unknown))}; choose from {SECTIONS}")
    if args.device == "cuda" and not torch.cuda.is_available():
        p.error("--device cuda needs a CUDA device, and none is available")
    check_data(p, args.data)
    return args


def main(argv: list[str] | None = None) -> None:
    """Run the chosen sections and write speed.json and speed.md atomically."""
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    load_before = load_average()
    sections: dict[str, Callable[[Bench], None]] = {
        "train": bench_train,
        "predict": bench_predict,
        "explain": bench_explain,
        "startup": bench_startup,
        "backends": bench_backends,
    }
    with tempfile.TemporaryDirectory(prefix="attnclf-speed-") as tmp:
        b = Bench(args, Path(tmp), args.device)
        b.corpus = resample(args.data, args.rows, SEED, b.tmp / "corpus.csv")
        for name in args.only:
            sections[name](b)
    corpus = {"rows": args.rows, "kind": "resampled", "source": str(args.data), "seed": SEED}
    info = machine(args.device, command_line("speed.py", argv), load_before)
    report = merge(args.out, b, info, corpus)
    paths = write_results(args.out, "speed", report, markdown(report) + "\n")
    print(f"wrote {paths[0]} and {paths[1]}")


if __name__ == "__main__":
    main()
