"""The run folder: every file a trained run is made of, written atomically and loaded safely.

A run is written into a hidden staging folder (`.<name>.incomplete`), which holds a
checkpoint if training is interrupted, and is renamed to its final name only when complete;
`latest` then points at it. `RunFolder` owns every file name and every write, and
`RunFolder.load` reads a published run back. Importing this module does not import torch.
"""

from __future__ import annotations

import io
import os
import re
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from attnclf import __version__
from attnclf.config import Config, dump_config, from_dict, read_yaml
from attnclf.encoding.labels import LabelEncoder
from attnclf.encoding.preprocess import Preprocessor
from attnclf.encoding.tokenizer import Tokenizer
from attnclf.errors import UserError
from attnclf.jsonio import read_json, write_bytes_atomic, write_json, write_text_atomic

if TYPE_CHECKING:
    from attnclf.model.classifier import AttentionClassifier

CONFIG = "config.yaml"
TOKENIZER = "tokenizer.json"
LABELS = "label_encoder.json"
STOPWORDS = "stopwords.json"
WEIGHTS = "model.safetensors"
METRICS = "metrics.json"
HISTORY = "history.json"
REPORT = "data_report.json"
LEARNING_CURVES = "learning_curves.png"
CONFUSION = "confusion_matrix.png"
CHECKPOINT = "checkpoint.pt"
REQUIRED = (CONFIG, TOKENIZER, LABELS, STOPWORDS, WEIGHTS)
LATEST = "latest"
WEIGHTS_FORMAT = "2"  # the model's parameter names; attnclf 0.1.0 wrote none (flat names)
_INCOMPLETE = ".incomplete"
T = TypeVar("T")


@dataclass
class LoadedRun:
    """Everything needed to turn raw text into predictions, as loaded from a run folder."""

    path: Path
    config: Config
    preprocessor: Preprocessor
    tokenizer: Tokenizer
    labels: LabelEncoder
    state_dict: dict

    def build_model(self) -> AttentionClassifier:
        """The run's model with its weights loaded (strictly), in eval mode."""
        from attnclf.model.classifier import AttentionClassifier

        model = AttentionClassifier(len(self.tokenizer), len(self.labels), self.config.model)
        try:
            model.load_state_dict(self.state_dict, strict=True)
        except RuntimeError as exc:
            details = " ".join(str(exc).split("\n", 1)[-1].split())
            raise UserError(
                f"{self.path / WEIGHTS} does not match the model in the run's config.yaml "
                f"({details[:300]}); retrain or restore the run folder"
            ) from None
        return model.eval()


class RunFolder:
    """A run being written: its staging folder, the name it will be published under, and
    the folders that creating it made (removed again if the run fails)."""

    @staticmethod
    def load(path: str | Path) -> LoadedRun:
        """Load a published run folder, checking that its files exist and belong together."""
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
        from attnclf.model.classifier import AttentionClassifier

        cfg = read_config(path)
        preprocessor, tokenizer, labels = read_encoders(path, cfg)
        state = load_weights(path / WEIGHTS)
        sizes = AttentionClassifier.sizes(state)
        if sizes is None:
            raise UserError(
                f"{path / WEIGHTS} does not hold an attnclf model; retrain or pick another run"
            )
        vocab, classes = sizes
        if vocab != len(tokenizer):
            raise UserError(
                f"{path / TOKENIZER} has {len(tokenizer)} tokens but {path / WEIGHTS} has {vocab}; "
                f"these files come from different runs: retrain or restore the run folder"
            )
        if classes != len(labels):
            raise UserError(
                f"{path / LABELS} has {len(labels)} classes but {path / WEIGHTS} has {classes}; "
                f"these files come from different runs: retrain or restore the run folder"
            )
        return LoadedRun(path, cfg, preprocessor, tokenizer, labels, state)

    def __init__(self, staging: Path, final: Path, created: list[Path]) -> None:
        self.staging = staging
        self.final = final
        self.created = created
        self.complete = False  # set once the run is whole: a failure then keeps its folder

    @classmethod
    def create(cls, output_dir: str | Path, config_name: str) -> RunFolder:
        """A fresh staging folder in `output_dir`, under a name no other run can take."""
        output_dir = Path(output_dir)
        created = [p for p in (output_dir, *output_dir.parents) if not p.exists()]
        try:
            output_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            reason = "a file is in the way" if output_dir.exists() else exc.strerror or str(exc)
            cls._remove_folders(created)
            raise UserError(
                f"cannot create the output folder {output_dir} ({reason}); "
                f"pass --output-dir a writable folder"
            ) from None
        stem = re.sub(r"[^A-Za-z0-9_.-]+", "-", config_name) or "run"
        base = f"{time.strftime('%Y%m%d-%H%M%S')}-{stem}"
        for n in range(1, 10_000):
            final = output_dir / (base if n == 1 else f"{base}-{n}")
            staging = output_dir / f".{final.name}{_INCOMPLETE}"
            if final.exists():
                continue
            try:
                staging.mkdir()  # atomic: of two runs that pick the same name, one gets it
            except FileExistsError:
                continue
            return cls(staging, final, created)
        raise UserError(f"no free run name in {output_dir}; clean up old runs there")

    @classmethod
    def incomplete(cls, staging: str | Path) -> RunFolder:
        """An interrupted run's staging folder, to resume from its checkpoint."""
        staging = Path(staging)
        if not (staging / CHECKPOINT).is_file():
            raise UserError(
                f"{staging} holds no {CHECKPOINT} to resume from; pass the folder printed when "
                f"the run was interrupted (artifacts/.<run>{_INCOMPLETE})"
            )
        final = staging.with_name(staging.name.removeprefix(".").removesuffix(_INCOMPLETE))
        return cls(staging, final, [])

    def read_config(self) -> Config:
        """The config saved in the staging folder."""
        return read_config(self.staging)

    def read_encoders(self, cfg: Config) -> tuple[Preprocessor, Tokenizer, LabelEncoder]:
        """The preprocessor, tokenizer and label encoder saved in the staging folder."""
        return read_encoders(self.staging, cfg)

    def save_encoders(
        self, cfg: Config, preprocessor: Preprocessor, tokenizer: Tokenizer, labels: LabelEncoder
    ) -> None:
        """Write the config, stopwords, tokenizer and label encoder."""
        self.save_config(cfg)
        write_json(self.staging / STOPWORDS, sorted(preprocessor.stopwords))
        tokenizer.save(self.staging / TOKENIZER)
        labels.save(self.staging / LABELS)

    def save_config(self, cfg: Config) -> None:
        """Write the fully resolved config."""
        write_text_atomic(self.staging / CONFIG, dump_config(cfg))

    @property
    def checkpoint(self) -> Path:
        """Where an interrupted run keeps its resumable state."""
        return self.staging / CHECKPOINT

    def save_checkpoint(self, state: dict) -> Path:
        """Write a trainer's resumable state with torch.save (read back with weights_only)."""
        import torch

        buf = io.BytesIO()
        torch.save(state, buf)
        return write_bytes_atomic(self.checkpoint, buf.getvalue())

    def load_checkpoint(self) -> dict:
        """Read the checkpoint without executing code: only tensors and plain data."""
        import torch

        try:
            return torch.load(self.checkpoint, map_location="cpu", weights_only=True)
        except Exception as exc:
            reason = str(exc).strip().splitlines()[0][:200]
            raise UserError(
                f"{self.checkpoint} is not a valid attnclf checkpoint ({reason}); start a new run"
            ) from None

    def write_results(
        self, weights: dict, metrics: dict, history: list[dict], report: dict
    ) -> None:
        """Write the weights, test metrics, history, data report and their plots."""
        from attnclf.plots import plot_confusion, plot_history

        save_weights(weights, self.staging / WEIGHTS)
        write_json(self.staging / METRICS, metrics)
        write_json(self.staging / HISTORY, history)
        write_json(self.staging / REPORT, report)
        plot_history(history, self.staging / LEARNING_CURVES)
        cm = metrics["confusion_matrix"]
        plot_confusion(cm["matrix"], cm["labels"], self.staging / CONFUSION)

    def publish(self) -> Path:
        """Move the complete run into place and point `latest` at it, atomically."""
        self.checkpoint.unlink(missing_ok=True)
        self.complete = True
        try:
            os.replace(self.staging, self.final)
        except OSError as exc:
            raise UserError(
                f"cannot publish {self.staging} as {self.final} ({exc.strerror}); the complete "
                f"run is kept in {self.staging}"
            ) from None
        link = self.final.parent / LATEST
        tmp = self.final.parent / f".{LATEST}.{os.getpid()}.tmp"
        tmp.unlink(missing_ok=True)
        os.symlink(self.final.name, tmp)
        os.replace(tmp, link)
        return self.final

    def discard(self) -> None:
        """After a failure: remove the staging folder unless it holds a checkpoint to resume
        from, and every folder that `create` made, deepest first, if nothing else is in it."""
        if not self.complete and not self.checkpoint.exists():
            shutil.rmtree(self.staging, ignore_errors=True)
        self._remove_folders(self.created)

    @staticmethod
    def _remove_folders(folders: list[Path]) -> None:
        """`rmdir` each folder in turn (deepest first), stopping at the first one not empty."""
        for folder in folders:
            try:
                folder.rmdir()
            except OSError:
                return


def save_weights(state_dict: dict, path: str | Path) -> Path:
    """Write tensors as safetensors (no pickle), tagged with the weights format and version."""
    from safetensors.torch import save

    tensors = {k: v.contiguous() for k, v in state_dict.items()}
    # One metadata key: safetensors writes several in an arbitrary order (files would differ).
    meta = {"format": f"{WEIGHTS_FORMAT} attnclf {__version__}"}
    return write_bytes_atomic(path, save(tensors, metadata=meta))


def load_weights(path: str | Path) -> dict:
    """Read safetensors weights under the current parameter names; never unpickles."""
    from safetensors import SafetensorError, safe_open
    from safetensors.torch import load_file

    from attnclf.model.classifier import AttentionClassifier

    try:
        with safe_open(str(path), framework="pt") as fh:
            meta: dict[str, Any] = fh.metadata() or {}
        state = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise UserError(
            f"{path} is not a valid safetensors file ({str(exc).splitlines()[0]}); the run is "
            f"damaged: retrain it or point --run at another run"
        ) from None
    if "format" not in meta:  # attnclf 0.1.0
        return AttentionClassifier.upgrade_state(state)
    written, _, version = meta["format"].partition(" attnclf ")
    if written != WEIGHTS_FORMAT:
        raise UserError(
            f"{path} is in weights format {written}, written by attnclf {version or '?'}; "
            f"this attnclf ({__version__}) reads format {WEIGHTS_FORMAT}: upgrade attnclf or "
            f"retrain the run"
        )
    return state


def read_config(path: Path) -> Config:
    """The validated config.yaml of a run folder."""
    try:
        return from_dict(read_yaml(path / CONFIG))
    except UserError as exc:
        raise UserError(f"run folder {path}: {exc}") from None


def read_encoders(path: Path, cfg: Config) -> tuple[Preprocessor, Tokenizer, LabelEncoder]:
    """The preprocessor, tokenizer and label encoder saved in a run folder, each validated."""
    stopwords = _read_file(path, STOPWORDS, _read_stopwords)
    tokenizer = _read_file(path, TOKENIZER, Tokenizer.load)
    labels = _read_file(path, LABELS, LabelEncoder.load)
    return Preprocessor(cfg.preprocess, stopwords), tokenizer, labels


def _read_stopwords(path: Path) -> list[str]:
    """The stopword list of a run folder."""
    words = read_json(path)
    if not isinstance(words, list) or not all(isinstance(w, str) for w in words):
        raise ValueError("expected a list of strings")
    return words


def _read_file(folder: Path, name: str, read: Callable[[Path], T]) -> T:
    """`read(folder / name)`; a missing or damaged file is one line that names it."""
    try:
        return read(folder / name)
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        if isinstance(exc, KeyError):
            reason = f"no {exc.args[0]!r} entry"
        elif isinstance(exc, OSError):
            reason = exc.strerror or type(exc).__name__
        else:
            reason = " ".join(str(exc).split())[:200] or type(exc).__name__
        raise UserError(
            f"run folder {folder} has a missing or damaged file: {name} ({reason}); retrain or "
            f"pick another run"
        ) from None
