"""The README's config reference lists every config key with its real default and meaning."""

from __future__ import annotations

from pathlib import Path

from attnclf.config import reference

ROOT = Path(__file__).resolve().parents[1]


def _value(default: object) -> str:
    """A default as the README writes it (YAML spelling)."""
    if default is None:
        return "`null`"
    if isinstance(default, bool):
        return f"`{str(default).lower()}`"
    if isinstance(default, str):
        return f"`{default}`"
    return f"{default:g}" if isinstance(default, float) else str(default)


def config_table() -> list[str]:
    """The config reference table's rows, from the dataclasses' fields and descriptions."""
    rows = ["| key | default | meaning |", "|---|---|---|"]
    rows += [f"| `{key}` | {_value(default)} | {text} |" for key, default, text in reference()]
    return rows


def test_readme_config_table_matches_the_dataclasses() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8").splitlines()
    start = readme.index("| key | default | meaning |")
    end = next(i for i in range(start, len(readme)) if not readme[i].startswith("|"))
    assert readme[start:end] == config_table()
