"""The run folder: what a trained model is made of, written atomically and loaded safely."""

from __future__ import annotations

import os
import re
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from attnclf.config import Config, dump_config, from_dict, read_yaml
from attnclf.errors import UserError
from attnclf.jsonio import read_json, write_bytes_atomic, write_json, write_text_atomic
from attnclf.labels import LabelEncoder
from attnclf.preprocess import Preprocessor
from attnclf.tokenizer import Tokenizer

CONFIG = "config.yaml"
TOKENIZER = "tokenizer.json"
LABELS = "label_encoder.json"
STOPWORDS = "stopwords.json"
WEIGHTS = "model.safetensors"
METRICS = "metrics.json"
HISTORY = "history.json"
REPORT = "data_report.json"
REQUIRED = (CONFIG, TOKENIZER, LABELS, STOPWORDS, WEIGHTS)
LATEST = "latest"


@dataclass
class RunParts:
    """Everything needed to turn raw text into predictions, as loaded from a run folder."""

    path: Path
    config: Config
    preprocessor: Preprocessor
    tokenizer: Tokenizer
    labels: LabelEncoder
    state_dict: dict


def staging_dir(output_dir: str | Path, config_name: str) -> tuple[Path, Path]:
    """A fresh hidden folder to write a run into, and the name it will have when complete."""
    output_dir = Path(output_dir)
    try:
        output_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        reason = "a file is in the way" if output_dir.exists() else exc.strerror or str(exc)
        raise UserError(
            f"cannot create the output folder {output_dir} ({reason}); "
            f"pass --output-dir a writable folder"
        ) from None
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "-", config_name) or "run"
    base = f"{time.strftime('%Y%m%d-%H%M%S')}-{stem}"
    final, n = output_dir / base, 1
    while final.exists():
        n += 1
        final = output_dir / f"{base}-{n}"
    staging = output_dir / f".{final.name}.incomplete"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    return staging, final


def publish(staging: Path, final: Path) -> Path:
    """Move a complete run into place and point `latest` at it, atomically."""
    os.replace(staging, final)
    link = final.parent / LATEST
    tmp = final.parent / f".{LATEST}.{os.getpid()}.tmp"
    tmp.unlink(missing_ok=True)
    os.symlink(final.name, tmp)
    os.replace(tmp, link)
    return final


def save_weights(state_dict: dict, path: str | Path) -> Path:
    """Write tensors as safetensors (no pickle)."""
    from safetensors.torch import save

    return write_bytes_atomic(path, save({k: v.contiguous() for k, v in state_dict.items()}))


def load_weights(path: str | Path) -> dict:
    """Read safetensors weights; anything else is refused, never unpickled."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise UserError(
            f"{path} is not a valid safetensors file ({str(exc).splitlines()[0]}); the run is "
            f"damaged: retrain it or point --run at another run"
        ) from None


def write_model_files(
    folder: Path,
    cfg: Config,
    preprocessor: Preprocessor,
    tokenizer: Tokenizer,
    labels: LabelEncoder,
) -> None:
    """Write the config, stopwords, tokenizer and label encoder of a run."""
    write_text_atomic(folder / CONFIG, dump_config(cfg))
    write_json(folder / STOPWORDS, sorted(preprocessor.stopwords))
    tokenizer.save(folder / TOKENIZER)
    labels.save(folder / LABELS)


def load_run_config(path: Path) -> Config:
    """The validated config.yaml of a run folder."""
    try:
        return from_dict(read_yaml(path / CONFIG))
    except UserError as exc:
        raise UserError(f"run folder {path}: {exc}") from None


def load_encoders(path: Path, cfg: Config) -> tuple[Preprocessor, Tokenizer, LabelEncoder]:
    """The preprocessor, tokenizer and label encoder saved in a run folder."""
    try:
        stopwords = read_json(path / STOPWORDS)
        return (
            Preprocessor(cfg.preprocess, stopwords),
            Tokenizer.load(path / TOKENIZER),
            LabelEncoder.load(path / LABELS),
        )
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise UserError(
            f"run folder {path} has a missing or damaged file ({exc}); retrain or pick another run"
        ) from None


def load_run(path: str | Path) -> RunParts:
    """Load a run folder, checking that its files exist and belong together."""
    path = Path(path)
    if not path.is_dir():
        raise UserError(
            f"run folder not found: {path}; train one with `attnclf train` or pass --run DIR"
        )
    missing = [name for name in REQUIRED if not (path / name).is_file()]
    if missing:
        raise UserError(
            f"run folder {path} is incomplete: missing {', '.join(missing)}; "
            f"retrain or pick another run"
        )
    cfg = load_run_config(path)
    preprocessor, tokenizer, labels = load_encoders(path, cfg)
    state = load_weights(path / WEIGHTS)
    emb, out = state.get("embedding.weight"), state.get("fc2.weight")
    if emb is None or out is None:
        raise UserError(
            f"{path / WEIGHTS} does not hold an attnclf model; retrain or pick another run"
        )
    if emb.shape[0] != len(tokenizer):
        raise UserError(
            f"{path / TOKENIZER} has {len(tokenizer)} tokens but {path / WEIGHTS} has "
            f"{emb.shape[0]}; "
            f"these files come from different runs: retrain or restore the run folder"
        )
    if out.shape[0] != len(labels):
        raise UserError(
            f"{path / LABELS} has {len(labels)} classes but {path / WEIGHTS} has {out.shape[0]}; "
            f"these files come from different runs: retrain or restore the run folder"
        )
    return RunParts(path, cfg, preprocessor, tokenizer, labels, state)
