"""The onnx backend: a run's exported model (`attnclf export`) run by onnxruntime, without torch.

Cleaning, encoding and ranking are `attnclf.predict.base`'s, exactly as for the torch backend;
padding and batching too (`length_batches`, in numpy), so even a model whose RNN runs over the
padding (`pack_sequences: false`) sees the same batches as with torch.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from attnclf.config import Config
from attnclf.encoding.labels import LabelEncoder
from attnclf.encoding.preprocess import Preprocessor
from attnclf.encoding.tokenizer import Tokenizer
from attnclf.errors import UserError
from attnclf.predict.base import TextClassifier, length_batches

ONNX_MODEL = "model.onnx"
# Keys of the exported model's metadata (written by attnclf.export).
META_CLASSES = "attnclf.classes"
META_VOCAB = "attnclf.vocab_size"
META_MIN_LENGTH = "attnclf.min_length"


def load_run_files(path: Path) -> tuple[Config, Preprocessor, Tokenizer, LabelEncoder]:
    """The config and encoders of a run folder, read without torch (the weights are not read)."""
    from attnclf import runfolder

    if not path.is_dir():
        raise UserError(
            f"run folder not found: {path}; train one with `attnclf train` or pass --run DIR"
        )
    cfg = runfolder.read_config(path)
    return (cfg, *runfolder.read_encoders(path, cfg))


class OnnxPredictor(TextClassifier):
    """A trained run's exported ONNX model, ready to classify raw texts (onnxruntime backend)."""

    def __init__(
        self, path: Path, model_path: Path, threads: int | None = None, check: bool = True
    ) -> None:
        """Load the run folder's encoders and the ONNX model at `model_path`."""
        import onnxruntime as ort

        super().__init__(*load_run_files(path))
        self.path = path
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        try:
            self.session = ort.InferenceSession(
                str(model_path), options, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # onnxruntime raises its own, unexported exception types
            raise UserError(
                f"{model_path} is not a valid ONNX model ({str(exc).splitlines()[0][:200]}); "
                f"run `attnclf export --run {path}` again"
            ) from None
        meta = self.session.get_modelmeta().custom_metadata_map
        self.min_length = int(meta.get(META_MIN_LENGTH, 1))
        if check:
            self._check(model_path, meta)

    def _check(self, model_path: Path, meta: dict[str, str]) -> None:
        """Refuse an ONNX model exported from another run."""
        classes = json.loads(meta.get(META_CLASSES, "null"))
        vocab = int(meta.get(META_VOCAB, -1))
        if classes != self.labels.classes or vocab != len(self.tokenizer):
            raise UserError(
                f"{model_path} was not exported from the run at {self.path} (its classes or "
                f"vocabulary differ); run `attnclf export --run {self.path}` again"
            )

    @classmethod
    def from_run(cls, path: str | Path, threads: int | None = None) -> OnnxPredictor:
        """Load a run folder and the `model.onnx` that `attnclf export` wrote into it."""
        path = Path(path)
        model_path = path / ONNX_MODEL
        if path.is_dir() and not model_path.is_file():
            raise UserError(
                f"run folder {path} has no {ONNX_MODEL}; run `attnclf export --run {path}` first "
                f"or use --backend torch"
            )
        return cls(path, model_path, threads)

    def _infer(
        self, sequences: Sequence[Sequence[int]], explain: bool = False
    ) -> tuple[np.ndarray, list[list[float]], None]:
        """Class probabilities [N, C] and per-token attention of encoded texts, in input order."""
        if explain:
            raise UserError(
                "token influence is computed by the torch backend; drop --backend onnx to explain"
            )
        pad_to = max(self.config.tokenizer.pad_to or 1, self.min_length)
        probs = np.zeros((len(sequences), len(self.labels)), np.float32)
        attention: list[list[float]] = [[] for _ in sequences]
        for rows, ids, lens in length_batches(sequences, self.max_len, pad_to):
            batch_probs, weights = self.session.run(None, {"ids": ids, "lengths": lens})
            probs[rows] = batch_probs
            for r, n, w in zip(rows.tolist(), lens.tolist(), weights.tolist(), strict=True):
                attention[r] = w[:n]
        return probs, attention, None
