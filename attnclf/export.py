"""`attnclf export`: a run's whole model as ONNX, checked against torch before it is kept.

The graph is the model's own forward pass (deep, wide and naive Bayes paths) with exact,
export-friendly substitutions made while it is traced:

- the RNN runs as one single-layer, single-direction RNN per layer and direction over the
  padded rows. Packed (`pack_sequences`), the backward direction reads each row reversed
  within its length (a gather) and is reversed back, so padding never enters a state; a
  plain tanh RNN runs as a GRU with its gates pinned, because the exporter loops a GRU or
  an LSTM over a dynamic length but unrolls a plain RNN over the example's;
- the n-gram bags (`embedding_bag`, mode sum) become a gather and a weighted sum.

Its outputs are the Predictor's: class probabilities [B, C] and attention [B, L], for
dynamic batch and length axes.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from unittest import mock

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from attnclf.errors import UserError
from attnclf.model import classifier as model_module
from attnclf.predict.onnx_backend import (
    META_CLASSES,
    META_MIN_LENGTH,
    META_VOCAB,
    ONNX_MODEL,
    OnnxPredictor,
)
from attnclf.predict.torch_backend import Predictor

TOLERANCE = 1e-4  # largest difference of any probability, onnxruntime against torch
MIN_LENGTH = 2  # the exported length axis starts at 2 (n-gram windows need it); pad to it
OPSET = 18


class PaddedRNN(nn.Module):
    """Exactly `run_packed(rnn, x, lengths)` without packing: zero past each length."""

    def __init__(self, rnn: nn.RNNBase) -> None:
        """Split `rnn` into one single-layer, single-direction RNN per layer and direction."""
        super().__init__()
        self.directions = 2 if rnn.bidirectional else 1
        self.hidden = rnn.hidden_size
        parts = []
        for layer in range(rnn.num_layers):
            width = rnn.input_size if layer == 0 else rnn.hidden_size * self.directions
            for direction in range(self.directions):
                suffix = f"l{layer}" + ("_reverse" if direction else "")
                weights = {
                    name: getattr(rnn, f"{name}_{suffix}").detach()
                    for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")
                }
                if isinstance(rnn, nn.RNN):
                    part, weights = (
                        nn.GRU(width, rnn.hidden_size, batch_first=True),
                        _as_gru(weights),
                    )
                else:
                    part = type(rnn)(width, rnn.hidden_size, batch_first=True)
                part.load_state_dict({f"{name}_l0": w for name, w in weights.items()})
                parts.append(part)
        self.parts = nn.ModuleList(parts)

    def forward(self, x: Tensor, lengths: Tensor) -> Tensor:
        """Outputs [B, L, H * directions] of rows `x` [B, L, E] with `lengths` [B]."""
        steps = torch.arange(x.shape[1], device=x.device)[None, :]
        lengths = lengths.to(x.device)[:, None]
        inside = steps < lengths
        reverse = torch.where(inside, lengths - 1 - steps, steps)[..., None]  # its own inverse
        for first in range(0, len(self.parts), self.directions):
            outputs = [self.parts[first](x)[0]]
            if self.directions == 2:
                # expand(-1, -1, H), not expand_as: the exporter fixes an RNN output's length
                backward = self.parts[first + 1](x.gather(1, reverse.expand(-1, -1, x.shape[2])))
                outputs.append(backward[0].gather(1, reverse.expand(-1, -1, self.hidden)))
            x = torch.cat(outputs, dim=-1)
        return x * inside[..., None].to(x.dtype)


def _as_gru(rnn: dict[str, Tensor]) -> dict[str, Tensor]:
    """A tanh RNN's weights as a GRU's that computes exactly the same.

    The exporter traces a GRU (or LSTM) with a loop over a dynamic length, a plain RNN only
    unrolled over the example's length. With its reset gate at exactly 1 and its update gate
    at exactly 0 (sigmoid of +-1e4 in float32), a GRU step is tanh(W x + b + U h + c): the RNN's.
    """
    zeros_ih, zeros_hh = torch.zeros_like(rnn["weight_ih"]), torch.zeros_like(rnn["weight_hh"])
    gate = torch.full_like(rnn["bias_ih"], 1e4)
    return {  # PyTorch's gate order: reset, update, new
        "weight_ih": torch.cat([zeros_ih, zeros_ih, rnn["weight_ih"]]),
        "weight_hh": torch.cat([zeros_hh, zeros_hh, rnn["weight_hh"]]),
        "bias_ih": torch.cat([gate, -gate, rnn["bias_ih"]]),
        "bias_hh": torch.cat([torch.zeros_like(gate), torch.zeros_like(gate), rnn["bias_hh"]]),
    }


def _bag_sum(
    input: Tensor,
    weight: Tensor,
    offsets: Tensor | None = None,
    max_norm: float | None = None,
    norm_type: float = 2.0,
    scale_grad_by_freq: bool = False,
    mode: str = "mean",
    sparse: bool = False,
    per_sample_weights: Tensor | None = None,
    *args,
) -> Tensor:
    """`F.embedding_bag` (its signature) of 2-D input, mode sum with weights, as gather + sum."""
    assert input.dim() == 2 and mode == "sum" and per_sample_weights is not None
    return (F.embedding(input, weight) * per_sample_weights[..., None]).sum(dim=1)


class UnpackedRNN(nn.Module):
    """`rnn(x)` over every position, padding included (`pack_sequences: false`), as `PaddedRNN`."""

    def __init__(self, padded: PaddedRNN) -> None:
        """Run `padded` with every row as long as the batch."""
        super().__init__()
        self.padded = padded

    def forward(self, x: Tensor) -> tuple[Tensor, None]:
        """Outputs [B, L, H * directions], as `nn.RNNBase` returns them (no final state)."""
        full = torch.full(x.shape[:1], x.shape[1], dtype=torch.long, device=x.device)
        return self.padded(x, full), None


class ExportGraph(nn.Module):
    """The whole model as the Predictor runs it: ids [B, L], lengths [B] -> probs, attention."""

    def __init__(self, model: model_module.AttentionClassifier) -> None:
        """Wrap an eval-mode model."""
        super().__init__()
        self.model = model
        self.rnn = PaddedRNN(model.rnn)

    def forward(self, ids: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        """Class probabilities [B, C] and attention [B, L] (inside `substitutions()`)."""
        return _probabilities(self.model, ids, lengths)

    @contextlib.contextmanager
    def substitutions(self) -> Iterator[None]:
        """Swap in the padded RNN (packed or not) and the gather-sum bags while tracing."""
        with (
            mock.patch.object(model_module, "run_packed", lambda _, x, n: self.rnn(x, n)),
            mock.patch.object(self.model, "rnn", UnpackedRNN(self.rnn)),
            mock.patch.object(F, "embedding_bag", _bag_sum),
        ):
            yield


def _probabilities(
    model: model_module.AttentionClassifier, ids: Tensor, lengths: Tensor
) -> tuple[Tensor, Tensor]:
    """The whole model's class probabilities [B, C] and attention [B, L] (the Predictor's)."""
    return model.probabilities(ids, lengths)


def _torch_predictor(run: Path) -> Predictor:
    """The run folder loaded for the torch backend."""
    return Predictor.from_run(run)


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Silence the exporter's warnings and progress output."""
    loggers = [logging.getLogger(name) for name in ("torch", "onnxscript", "onnx_ir")]
    levels = [lg.level for lg in loggers]
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        for lg in loggers:
            lg.setLevel(logging.ERROR)
        try:
            yield
        finally:
            for lg, level in zip(loggers, levels, strict=True):
                lg.setLevel(level)


def to_onnx(predictor: Predictor) -> bytes:
    """The serialized ONNX model of a loaded run, with dynamic batch and length axes."""
    graph = ExportGraph(predictor.model).eval()
    # Sizes unlike any other (classes, hidden sizes): the exporter matches sizes by value.
    lengths = torch.tensor([11, 5, 1])
    ids = torch.arange(11).expand(3, 11) % len(predictor.tokenizer)
    ids = ids.masked_fill(torch.arange(11) >= lengths[:, None], 0)
    batch, length = torch.export.Dim("batch"), torch.export.Dim("length", min=MIN_LENGTH)
    # The exporter swaps in loop-based RNN kernels without clearing the ops' dispatch caches:
    # a second export in one process would keep the kernels that fix the length axis.
    for op in (torch.ops.aten.gru.input, torch.ops.aten.lstm.input):
        op._dispatch_cache.clear()
    with _quiet(), torch.no_grad(), graph.substitutions():
        program = torch.onnx.export(
            graph,
            (ids, lengths),
            input_names=["ids", "lengths"],
            output_names=["probs", "attention"],
            dynamic_shapes={"ids": {0: batch, 1: length}, "lengths": {0: batch}},
            opset_version=OPSET,
            dynamo=True,
            verbose=False,
        )
    proto = program.model_proto
    # The exporter gives the RNN's outputs the example's length; onnxruntime infers them anew.
    del proto.graph.value_info[:]
    proto.graph.output[1].type.tensor_type.shape.dim[1].dim_param = "length"
    for key, value in (
        (META_CLASSES, json.dumps(predictor.labels.classes)),
        (META_VOCAB, str(len(predictor.tokenizer))),
        (META_MIN_LENGTH, str(MIN_LENGTH)),
    ):
        proto.metadata_props.add(key=key, value=value)
    return proto.SerializeToString()


def check_texts(predictor: Predictor, data: Path | None) -> list[str]:
    """The texts of the run's test split (of `data` instead, when given) to check parity on."""
    from attnclf.data.prepare import prepare

    path = data if data is not None else Path(predictor.config.data.path)
    if not path.is_file():
        raise UserError(
            f"the run's data file {path} is missing, and export checks the ONNX model on its "
            f"test split; pass --data with a labelled CSV"
        )
    return prepare(predictor.config, path, predictor.preprocessor).test["text"].tolist()


def max_difference(a: OnnxPredictor | Predictor, b: OnnxPredictor | Predictor, texts) -> float:
    """The largest difference of any class probability between two backends on `texts`."""
    worst = 0.0
    for p, q in zip(a.predict_iter(texts), b.predict_iter(texts), strict=True):
        for label, prob in p.probabilities.items():
            worst = max(worst, abs(prob - q.probabilities[label]))
    return worst


@dataclass
class ExportResult:
    """Where the model went, and how closely onnxruntime matched torch on how many texts."""

    path: Path
    texts: int
    max_difference: float


def export_run(run: str | Path, output: str | Path | None = None, data: Path | None = None):
    """Export a run's model as ONNX (default: RUN/model.onnx), kept only if it matches torch."""
    run = Path(run)
    predictor = _torch_predictor(run)
    texts = check_texts(predictor, data)
    path = Path(output) if output is not None else run / ONNX_MODEL
    staging = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    from attnclf.jsonio import write_bytes_atomic

    write_bytes_atomic(staging, to_onnx(predictor))
    try:
        onnx = OnnxPredictor(run, staging, check=False)
        worst = max_difference(predictor, onnx, texts)
        if not worst <= TOLERANCE:
            raise UserError(
                f"the ONNX model differs from torch by {worst:.2e} > {TOLERANCE:g} in a "
                f"probability on the test split; nothing was written (report this as a bug)"
            )
        os.replace(staging, path)
    finally:
        staging.unlink(missing_ok=True)
    return ExportResult(path, len(texts), worst)
