"""Render the generated regions of README.md and docs/*.md from their sources.

A region is the text between `<!-- results:NAME -->` and `<!-- /results:NAME -->` (tables
rendered from the JSON records in benchmarks/results/) or `<!-- generated:NAME -->` and
`<!-- /generated:NAME -->` (the command reference from the Typer app, the config reference from
the config dataclasses). `python benchmarks/results.py` (`make results`) rewrites every region;
`--check` only reports the files whose regions differ from what this script renders (exit 1).
No figure in those regions is typed by hand.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
QUALITY = RESULTS / "quality.json"  # the current quality record
PEERS = ("tfidf+lr", "naive bayes", "nbsvm", "fasttext")  # as benchmarks/quality.py
REGION = re.compile(
    r"(?P<open><!-- (?P<kind>results|generated):(?P<name>[\w-]+) -->\n)"
    r"(?P<body>.*?)"
    r"(?P<close><!-- /(?P=kind):(?P=name) -->)",
    re.S,
)


def documents() -> list[Path]:
    """Every file that may hold generated regions."""
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def _load(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def _table(head: list[str], rows: list[list[str]]) -> list[str]:
    return [
        f"| {' | '.join(head)} |",
        "|---" * len(head) + "|",
        *(f"| {' | '.join(r)} |" for r in rows),
    ]


def _stat(stat: dict, digits: int = 4) -> str:
    return f"{stat['mean']:.{digits}f} ± {stat['std']:.{digits}f}"


def _shown(row: dict) -> str:
    """A row's system name; a peer's with the cleaning its runs chose (as quality.py shows it)."""
    chosen = row.get("preprocessing", {}).get("chosen")
    if not chosen:
        return row["system"]
    names = list(dict.fromkeys(chosen))
    if len(names) == 1:
        return f"{row['system']} ({names[0]})"
    return f"{row['system']} ({', '.join(f'{c}: {chosen.count(c)} seeds' for c in names)})"


METRIC = {"f1": "weighted F1", "accuracy": "accuracy"}


def _quality_note(record: dict, path: Path) -> str:
    meta = record["meta"]
    return (
        f"Test split, mean ± std over {meta['seeds']} seeds; {meta['cpu_count']} CPUs, "
        f"torch {meta['torch']}, {meta['date'][:10]}. Record: "
        f"`{path.relative_to(ROOT)}` (command: `{meta['command']}`)."
    )


def quality(record: dict | None = None, path: Path = QUALITY) -> list[str]:
    """Per regime: the default against the best peer in the regime's headline metric, and the
    default's expected calibration error."""
    if record is None:
        if not path.exists():
            return [f"No quality record yet (`{path.relative_to(ROOT)}`)."]
        record = _load(path)
    rows = []
    for name, result in record["regimes"].items():
        by_name = {r["system"]: r for r in result["rows"]}
        default, margin = by_name.get("attnclf default"), result.get("margin")
        if default is None or not margin:
            continue
        metric = result["margins"][0]
        m = margin[metric]
        best = by_name[m["best_peer"]]
        rows.append(
            [
                name,
                f"{result['train_rows']:,}",
                METRIC[metric],
                _stat(default[metric]),
                f"{_shown(best)} {_stat(best[metric])}",
                f"{m['diff']:+.4f} ± {m['std']:.4f}",
                _stat(default["ece"]),
            ]
        )
    head = [
        "regime",
        "train rows",
        "metric",
        "attnclf default",
        "best peer",
        "default minus best peer",
        "default's ECE",
    ]
    return [*_table(head, rows), "", _quality_note(record, path)]


def quality_full(record: dict | None = None, path: Path = QUALITY) -> list[str]:
    """Every system of every regime of the current quality record."""
    if record is None:
        if not path.exists():
            return [f"No quality record yet (`{path.relative_to(ROOT)}`)."]
        record = _load(path)
    lines: list[str] = []
    for name, result in record["regimes"].items():
        lines += [
            f"**{name}** ({result['config']}; {result['train_rows']:,} train, "
            f"{result['val_rows']:,} val, {result['test_rows']:,} test rows)",
            "",
        ]
        rows = [
            [
                _shown(r),
                _stat(r["f1"]),
                _stat(r["accuracy"]),
                _stat(r["ece"]),
                _stat(r["seconds"], 1),
            ]
            for r in result["rows"]
        ]
        rows += [[f"{s}: skipped ({why})", "", "", "", ""] for s, why in result["skipped"].items()]
        rows += [
            [f"published, not measured: {p['system']}", "", f"{p['accuracy']:.4f}", "", ""]
            for p in result.get("published", [])
        ]
        head = ["system", "weighted F1", "accuracy", "ECE", "train seconds"]
        lines += [*_table(head, rows), ""]
    return [*lines, _quality_note(record, path)]


def _figure(fig: dict) -> str:
    value, unit = fig["value"], fig["unit"]
    if unit == "fraction":
        return f"{100 * value:.1f} %"
    if unit == "x":
        return f"{value:.2f}x"
    if unit.endswith("/s"):
        return f"{value:,.0f} {unit}"
    return f"{value:.3g} {unit}"


def _speed_note(record: dict) -> str:
    machines = record["machines"].values()
    return (
        "; ".join(
            f"{m['cpu_count']}-core {m['cpu']}, torch {m['torch']}, {m['device']}, "
            f"{m['date'][:10]} (command: `{m['command']}`)"
            for m in machines
        )
        + ". Record: `benchmarks/results/speed.json`."
    )


def speed(record: dict | None = None, full: bool = False) -> list[str]:
    """The speed figures that have a target (every figure with `full`), median of the runs."""
    record = record or _load(RESULTS / "speed.json")
    rows = [
        [fig["label"], _figure(fig), fig["target"], fig["met"]]
        for fig in record["figures"].values()
        if full or fig["target"]
    ]
    return [*_table(["figure", "value", "target", "met"], rows), "", _speed_note(record)]


def _serve_note(record: dict) -> str:
    m = record["machine"]
    rss = ", ".join(f"{name} {b / 2**20:.0f} MiB" for name, b in record["peak_rss_bytes"].items())
    client = (
        "an httpx client on the same cores: client-bound"
        if record["client_bound"]
        else f"{record['generator']}, one thread"
    )
    return (
        f'Load generator: {client}; "x bare": requests/s over the bare FastAPI + uvicorn '
        f"stack's with as many worker processes, in the same scenario of the same run. Server "
        f"peak resident memory: {rss}. "
        f"{m['cpu_count']}-core {m['cpu']}, torch {m['torch']}, {m['date'][:10]}, load average "
        f"{m['load_average_before'][0]} before, {m['load_average_after'][0]} after (command: "
        f"`{m['command']}`). Record: `benchmarks/results/serve.json`."
    )


def serve(record: dict | None = None, full: bool = False) -> list[str]:
    """Requests/s, ratio to the bare stack and latency per server: concurrency 32 (all with
    `full`)."""
    record = record or _load(RESULTS / "serve.json")
    rows = [
        [
            str(s["titles_per_request"]),
            str(s["concurrency"]),
            name,
            f"{f['requests_per_second']:,.0f}",
            f"{f['titles_per_second']:,.0f}",
            f"{f['ratio_to_bare']:.2f}x",
            f"{f['p50_ms']:,.1f} ms",
            f"{f['p99_ms']:,.1f} ms",
            f"{f['server_cpu_ms_per_request']:.2f} ms",
            str(f["errors"]),
        ]
        for s in record["scenarios"]
        if full or s["concurrency"] == 32
        for name, f in s["servers"].items()
    ]
    head = ["titles/request", "concurrency", "server", "requests/s", "titles/s", "x bare"]
    head += ["p50", "p99", "server CPU/request", "errors"]
    return [*_table(head, rows), "", _serve_note(record)]


EXPLAIN_COLUMNS = ["comp@1", "comp@2", "comp@3", "suff@1", "suff@2", "suff@3"]


def explain(record: dict | None = None, full: bool = False) -> list[str]:
    """Erasure faithfulness (ERASER) of each ranking method on the test titles."""
    record = record or _load(RESULTS / "explain.json")
    columns = (EXPLAIN_COLUMNS if full else []) + ["aopc_comp", "aopc_suff"]
    rows = [
        [
            name.replace("<UNK>", "`<UNK>`"),
            *(f"{m[c]:.3f}" for c in columns),
            f"{100 * m['top_equals_loo']:.1f} %",
        ]
        for name, m in record["methods"].items()
    ]
    head = ["method", *(c.replace("aopc_", "AOPC ") for c in columns), "top = LOO"]
    m = record["machine"]
    note = (
        f"{record['texts']:,} test texts with at least {record['min_tokens']} tokens "
        f"(accuracy {record['accuracy']:.3f}); {m['cpu_count']}-core {m['cpu']}, torch "
        f"{m['torch']}, {m['date'][:10]} (command: `{m['command']}`). Record: "
        "`benchmarks/results/explain.json`."
    )
    return [*_table(head, rows), "", note]


def _yaml(default: object) -> str:
    """A default as the reference writes it (YAML spelling)."""
    if default is None:
        return "`null`"
    if isinstance(default, bool):
        return f"`{str(default).lower()}`"
    if isinstance(default, str):
        return f"`{default}`"
    return f"{default:g}" if isinstance(default, float) else str(default)


def config() -> list[str]:
    """Every config key with its built-in default and meaning (attnclf.config.reference())."""
    from attnclf.config import reference

    rows = [[f"`{key}`", _yaml(default), text] for key, default, text in reference()]
    return _table(["key", "default", "meaning"], rows)


def _cell(text: str) -> str:
    text = " ".join(text.split()).replace("|", "\\|")
    return text.replace("<", "&lt;").replace(">", "&gt;")


def commands() -> list[str]:
    """Every command of `attnclf.cli.app` with its arguments and options, from the Typer app."""
    import typer.main

    from attnclf.cli import app

    lines: list[str] = []

    def walk(group: Any, path: list[str]) -> None:
        for name, cmd in sorted(getattr(group, "commands", {}).items()):
            full = [*path, name]
            if hasattr(cmd, "commands"):  # a group: its commands
                walk(cmd, full)
                continue
            summary = (cmd.help or "").strip().split("\n\n")[0]
            lines.extend([f"## `{' '.join(full)}`", "", _cell(summary), ""])
            rows = []
            for p in cmd.params:
                if p.param_type_name == "argument":
                    help_text = _cell(getattr(p, "help", "") or "")
                    rows.append([f"`{p.name.upper()}`", "argument", "", help_text])
                    continue
                default = "" if p.default is None or (p.is_flag and not p.default) else p.default
                if isinstance(default, (list, tuple)):
                    default = ""
                shown = f"`{default.value if hasattr(default, 'value') else default}`"
                rows.append(
                    [
                        ", ".join(f"`{o}`" for o in p.opts),
                        "flag" if p.is_flag else "option",
                        shown if default != "" else "",
                        _cell(p.help or ""),
                    ]
                )
            lines.extend([*_table(["name", "kind", "default", "help"], rows), ""])

    walk(typer.main.get_command(app), ["attnclf"])
    return lines[:-1]


RENDERERS: dict[str, Callable[[], list[str]]] = {
    "quality": quality,
    "quality-full": quality_full,
    "speed": speed,
    "speed-full": lambda: speed(full=True),
    "serve": serve,
    "serve-full": lambda: serve(full=True),
    "explain": explain,
    "explain-full": lambda: explain(full=True),
    "config": config,
    "commands": commands,
}


def rewrite(text: str) -> str:
    """`text` with every generated region rendered afresh (an unknown name is an error)."""

    def fill(match: re.Match) -> str:
        name = match["name"]
        if name not in RENDERERS:
            raise SystemExit(
                f"unknown region {match['kind']}:{name}; known: {', '.join(RENDERERS)}"
            )
        return match["open"] + "\n".join(RENDERERS[name]()) + "\n" + match["close"]

    return REGION.sub(fill, text)


def stale() -> list[Path]:
    """The documents whose generated regions differ from what this script renders."""
    return [p for p in documents() if rewrite(t := p.read_text(encoding="utf-8")) != t]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only report stale files (exit 1)")
    args = parser.parse_args(argv)
    if args.check:
        bad = stale()
        for p in bad:
            print(f"stale: {p.relative_to(ROOT)} (run `make results`)")
        sys.exit(1 if bad else 0)
    for path in documents():
        text = path.read_text(encoding="utf-8")
        new = rewrite(text)
        if new != text:
            path.write_text(new, encoding="utf-8")
            print(f"rewrote {path.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
