"""The docs say what the code and the benchmark records say: the config reference lists every
config key with its real default and meaning, the command reference every command and option of
the CLI, and every results table in README.md and docs/ is what `benchmarks/results.py` renders
from the JSON records (no figure typed by hand); the README's test command is the one CI runs."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import typer.main

from attnclf.cli import app
from attnclf.config import reference

ROOT = Path(__file__).resolve().parents[1]


def _results():
    """benchmarks/results.py as a module (benchmarks/ is not a package)."""
    spec = importlib.util.spec_from_file_location("results", ROOT / "benchmarks" / "results.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _page(name: str) -> str:
    return (ROOT / "docs" / name).read_text(encoding="utf-8")


def test_config_reference_matches_the_dataclasses() -> None:
    page = _page("configuration.md").splitlines()
    start = page.index("| key | default | meaning |")
    rows = page[start + 2 : next(i for i in range(start, len(page)) if not page[i].startswith("|"))]
    keys = [row.split(" | ")[0].removeprefix("| `").removesuffix("`") for row in rows]
    assert keys == [key for key, _, _ in reference()]  # every key, in order, once
    for row, (_, _, text) in zip(rows, reference(), strict=True):
        assert row.endswith(f" | {text} |")


def _commands(group, path):
    for name, cmd in getattr(group, "commands", {}).items():
        if hasattr(cmd, "commands"):
            yield from _commands(cmd, [*path, name])
        else:
            yield " ".join([*path, name]), cmd


def test_command_reference_covers_every_command_and_option() -> None:
    sections = re.split(r"^## ", _page("commands.md"), flags=re.M)
    by_command = {s.split("\n", 1)[0].strip("`"): s for s in sections[1:]}
    commands = dict(_commands(typer.main.get_command(app), ["attnclf"]))
    assert set(by_command) == set(commands)
    for name, cmd in commands.items():
        for param in cmd.params:
            names = param.opts if param.param_type_name == "option" else [param.name.upper()]
            for opt in names:
                assert f"`{opt}`" in by_command[name], f"{name}: {opt} missing from commands.md"


def test_generated_regions_match_their_sources() -> None:
    results = _results()
    stale = [str(p.relative_to(ROOT)) for p in results.stale()]
    assert not stale, f"stale generated tables in {stale}: run `make results`"


def test_every_page_has_its_regions_and_the_readme_all_four_suites() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for suite in ("quality", "speed", "serve", "explain"):
        assert f"<!-- results:{suite} -->" in readme
    assert "<!-- generated:config -->" in _page("configuration.md")
    assert "<!-- generated:commands -->" in _page("commands.md")


def test_readme_tables_of_results_are_generated() -> None:
    """Below the README's Results heading every table sits inside a generated region."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    results = readme[readme.index("\n## Results\n") :]
    outside = re.sub(r"<!-- results:([\w-]+) -->.*?<!-- /results:\1 -->", "", results, flags=re.S)
    assert not [line for line in outside.splitlines() if line.startswith("|")]


def test_rendering_follows_the_record() -> None:
    """A changed record changes the rendered table (the check is not vacuous)."""
    results = _results()
    row = {
        "system": "attnclf default",
        **{m: {"mean": 0.5, "std": 0.01} for m in ("f1", "accuracy", "ece", "seconds")},
    }
    peer = {**row, "system": "naive bayes", "f1": {"mean": 0.4, "std": 0.0}}
    record = {
        "meta": {"seeds": 3, "cpu_count": 2, "torch": "x", "date": "2026-01-01", "command": "c"},
        "regimes": {
            "r": {
                "rows": [row, peer],
                "margins": ["f1"],
                "margin": {"f1": {"best_peer": "naive bayes", "diff": 0.1, "std": 0.01}},
                "train_rows": 10,
            }
        },
    }
    table = "\n".join(results.quality(record, ROOT / "x.json"))
    assert "| r | 10 | weighted F1 | 0.5000 ± 0.0100 | naive bayes 0.4000 ± 0.0000 |" in table


def test_readme_test_command_is_what_ci_runs() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    assert "make test    # runs the test suite" in readme
    assert "make test" in ci
    assert ci.index("make lint") < ci.index("make docs") < ci.index("make test")


def test_mkdocs_nav_reaches_every_page() -> None:
    nav = (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
    for page in (ROOT / "docs").glob("*.md"):
        assert f" {page.name}" in nav, f"{page.name} is not in mkdocs.yml's nav"
