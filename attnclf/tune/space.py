"""The search space of `attnclf tune`: dotted config keys mapped to ranges or choices.

A YAML mapping, validated like a config (unknown keys, bad ranges and wrong types are errors
that list what is valid):

    train.lr: {float: [1.0e-4, 1.0e-2], log: true}
    train.batch_size: {int: [32, 256], log: true}
    model.cell: {choice: [gru, lstm]}
"""

from __future__ import annotations

import typing
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from attnclf.config import Config, check_value, from_dict, key_type, read_yaml
from attnclf.errors import UserError

if TYPE_CHECKING:
    import optuna

OPTIONS = {"float": ("log", "step"), "int": ("log", "step"), "choice": ()}
EXAMPLE = "e.g. train.lr: {float: [1.0e-4, 1.0e-2], log: true} or model.cell: {choice: [gru, lstm]}"


@dataclass(frozen=True)
class Param:
    """One searched config key: a float or int range (optionally log-scaled or stepped), or a
    list of choices."""

    key: str
    kind: str
    low: float | int | None = None
    high: float | int | None = None
    log: bool = False
    step: float | int | None = None
    choices: tuple = ()

    def suggest(self, trial: optuna.Trial) -> Any:
        """This parameter's value for `trial`, drawn by the study's sampler."""
        if self.kind == "float":
            return trial.suggest_float(self.key, self.low, self.high, log=self.log, step=self.step)
        if self.kind == "int":
            return trial.suggest_int(
                self.key, self.low, self.high, log=self.log, step=self.step or 1
            )
        return trial.suggest_categorical(self.key, list(self.choices))

    def to_dict(self) -> dict[str, Any]:
        """The parameter as the space file writes it."""
        if self.kind == "choice":
            return {"choice": list(self.choices)}
        spec: dict[str, Any] = {self.kind: [self.low, self.high]}
        if self.log:
            spec["log"] = True
        if self.step is not None:
            spec["step"] = self.step
        return spec


@dataclass(frozen=True)
class SearchSpace:
    """The searched keys of a config, in file order."""

    params: tuple[Param, ...]

    def suggest(self, trial: optuna.Trial) -> dict[str, Any]:
        """One value per key for `trial`."""
        return {p.key: p.suggest(trial) for p in self.params}

    def to_dict(self) -> dict[str, dict]:
        """The space as its YAML file writes it."""
        return {p.key: p.to_dict() for p in self.params}


def apply(base: Config, values: dict[str, Any]) -> Config:
    """`base` with each dotted key set to its value, validated as a whole config."""
    raw = base.to_dict()
    for key, value in values.items():
        section, _, name = key.partition(".")
        raw[section][name] = value
    return from_dict(raw)


def load_space(path: str | Path) -> SearchSpace:
    """Read and validate a search space YAML file."""
    return parse_space(read_yaml(path), str(path))


def parse_space(raw: Any, where: str = "search space") -> SearchSpace:
    """Validate a parsed search space mapping (`where` names it in errors)."""
    if not isinstance(raw, dict) or not raw:
        raise UserError(f"{where} must be a YAML mapping of config keys to ranges, {EXAMPLE}")
    return SearchSpace(tuple(_param(str(key), spec, where) for key, spec in raw.items()))


def _param(key: str, spec: Any, where: str) -> Param:
    """One validated parameter; every message names the file and the key."""
    try:
        return _parse(key, spec, key_type(key))
    except UserError as exc:
        raise UserError(f"{where}: {exc}") from None


def _parse(key: str, spec: Any, tp: Any) -> Param:
    """Check a key's spec (its kind, options and bounds) against the key's type and range."""
    kinds = [k for k in OPTIONS if isinstance(spec, dict) and k in spec]
    if len(kinds) != 1:
        raise UserError(f"{key} needs exactly one of float, int or choice, {EXAMPLE}")
    kind = kinds[0]
    unknown = sorted(set(spec) - {kind, *OPTIONS[kind]})
    if unknown:
        valid = ", ".join(OPTIONS[kind]) or "none"
        raise UserError(f"{key}: unknown option {unknown[0]!r}; options of {kind}: {valid}")
    if kind == "choice":
        values = spec["choice"]
        if not isinstance(values, list) or not values:
            raise UserError(f"{key}: choice needs a non-empty list, e.g. {{choice: [gru, lstm]}}")
        return Param(key, kind, choices=tuple(check_value(key, v) for v in values))
    accepted = set(typing.get_args(tp)) or {tp}
    if float not in accepted and (kind == "float" or int not in accepted):
        usable = "int: [low, high] or choice" if int in accepted else "choice: [values]"
        raise UserError(f"{key} is not a {kind}: search it with {usable}")
    bounds = spec[kind]
    if not isinstance(bounds, list) or len(bounds) != 2:
        raise UserError(f"{key}: {kind} needs [low, high], got {bounds!r}")
    if kind == "int" and not all(type(b) is int for b in bounds):
        raise UserError(f"{key}: int needs integer bounds, got {bounds!r}")
    low, high = (check_value(key, b) for b in bounds)
    low, high = (float(low), float(high)) if kind == "float" else (int(low), int(high))
    if not low < high:
        raise UserError(f"{key}: {kind} needs low < high, got [{low}, {high}]")
    log, step = spec.get("log", False), spec.get("step")
    if not isinstance(log, bool):
        raise UserError(f"{key}: log must be true or false, got {log!r}")
    if log and low <= 0:
        raise UserError(f"{key}: log: true needs low > 0, got {low}")
    if step is not None:
        if log:
            raise UserError(f"{key}: log and step cannot be combined; drop one")
        numeric = isinstance(step, int) if kind == "int" else isinstance(step, (int, float))
        if isinstance(step, bool) or not numeric or step <= 0:
            raise UserError(f"{key}: step must be a positive {kind}, got {step!r}")
    return Param(key, kind, low, high, log, step)
