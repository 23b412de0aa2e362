"""The training loop: Adam (lazy for the wide table), an LR schedule, early stopping, best weights.

The schedule is ReduceLROnPlateau (`train.schedule=plateau`) or a linear decay to zero over
`train.epochs`, stepped every batch (`linear`). Early stopping and the plateau schedule follow
one validation signal, `train.stop_on`:
`model` (the default) is the loss of the model's own predictions, naive Bayes mix included,
which is what `predict` serves; `network` is the loss of the network alone, which is what
the gradient trains. The two are the same without a naive Bayes path.
"""

from __future__ import annotations

import itertools
import math
import time

import torch
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader

from attnclf.config import TrainConfig
from attnclf.encoding.batching import Batch
from attnclf.errors import Interrupted
from attnclf.metrics import overall_metrics
from attnclf.model.classifier import AttentionClassifier
from attnclf.training.device import rng_state, set_rng_state
from attnclf.training.distributed import DistContext, all_reduce_sum, any_rank
from attnclf.training.logger import ConsoleLogger


class Trainer:
    """Trains an `AttentionClassifier` one epoch at a time; resumable from `state_dict`."""

    def __init__(
        self,
        model: AttentionClassifier,
        cfg: TrainConfig,
        device: torch.device,
        class_weights: Tensor | None = None,
        ctx: DistContext | None = None,
        logger: ConsoleLogger | None = None,
        steps_per_epoch: int | None = None,
    ) -> None:
        self.cfg = cfg
        self.device = device
        self.ctx = ctx or DistContext()
        self.logger = logger or ConsoleLogger(self.ctx.is_main, device.type == "cpu")
        self.model = model.to(device)
        self.num_classes = model.fc2.out_features
        # No device_ids: DDP would then copy every input to the GPU, lengths included, which
        # the model must read back for packing (a sync per step); inputs arrive placed already.
        # No buffer broadcast: the only buffers (naive Bayes) are fitted alike on every rank.
        self.net: nn.Module = (
            DistributedDataParallel(model, broadcast_buffers=False) if self.ctx.enabled else model
        )
        deep, *wide = model.parameter_groups(cfg.wide_lr)
        self.clipped = deep["params"]  # the RNN's gradients; a sparse gradient has no norm op
        # The wide table's gradient is sparse (the rows its batch touched) and lazy Adam steps
        # only those rows: a dense Adam step over its 2M rows cost more than the RNN's whole
        # step. NCCL's all-reduce has no sparse form, so under torchrun it stays dense.
        sparse = model.wide is not None and not self.ctx.enabled
        if model.wide is not None:
            model.wide.table.sparse = sparse
        fused = device.type in ("cpu", "cuda")  # one kernel per step, not ~10 passes
        deep["weight_decay"] = cfg.weight_decay
        adam = dict(lr=cfg.lr, fused=fused)
        self.optimizers: list[torch.optim.Optimizer] = (
            [torch.optim.Adam([deep], **adam), torch.optim.SparseAdam(**wide[0])]
            if sparse
            else [torch.optim.Adam([deep, *wide], **adam)]
        )
        self.per_step = cfg.schedule == "linear"
        if self.per_step and steps_per_epoch is None:
            raise ValueError("train.schedule=linear needs steps_per_epoch (batches per epoch)")
        self.schedulers = [self._scheduler(o, steps_per_epoch or 1) for o in self.optimizers]
        weight = class_weights.to(device) if class_weights is not None else None
        self.criterion = nn.CrossEntropyLoss(weight=weight, label_smoothing=cfg.label_smoothing)
        self.eval_criterion = nn.CrossEntropyLoss(weight=weight, reduction="sum")
        use_bf16 = device.type == "cuda" and torch.cuda.is_bf16_supported()
        self.autocast = dict(
            device_type=device.type, dtype=torch.bfloat16, enabled=cfg.amp and use_bf16
        )
        self.epoch = 0  # completed epochs
        self.step = 0  # batches completed in epoch `self.epoch + 1`
        self.running = torch.zeros(2, device=device)  # that epoch's loss sum and sample count
        self.stop_requested = False
        self.best_loss = math.inf
        self.best_epoch = 0
        self.bad_epochs = 0
        self.best_state: dict[str, Tensor] | None = None
        self.history: list[dict] = []

    def _scheduler(
        self, optimizer: torch.optim.Optimizer, steps_per_epoch: int
    ) -> torch.optim.lr_scheduler.LRScheduler:
        """`optimizer`'s schedule: linear decay per step, or ReduceLROnPlateau per epoch."""
        if self.per_step:
            total = max(1, self.cfg.epochs * steps_per_epoch)
            return torch.optim.lr_scheduler.LambdaLR(
                optimizer, lambda step: max(0.0, 1.0 - step / total)
            )
        return torch.optim.lr_scheduler.ReduceLROnPlateau(
            optimizer, mode="min", factor=self.cfg.lr_factor, patience=self.cfg.lr_patience
        )

    def _to_device(self, batch: Batch) -> tuple[Tensor, Tensor, Tensor]:
        """Token ids and labels on the device; lengths stay on the CPU for packing."""
        nb = self.device.type == "cuda"
        return (
            batch.ids.to(self.device, non_blocking=nb),
            batch.lengths,
            batch.labels.to(self.device, non_blocking=nb),
        )

    def _should_stop(self) -> bool:
        """Whether any rank was asked to stop (agreed on the CPU across ranks every 16 steps)."""
        if not self.ctx.enabled:
            return self.stop_requested
        return self.step % 16 == 0 and any_rank(self.stop_requested, self.ctx)

    def train_epoch(self, loader: DataLoader) -> float:
        """Train on epoch `self.epoch + 1` from batch `self.step` on; returns its mean loss."""
        self.net.train()
        batches = itertools.islice(loader, self.step, None)
        for batch in self.logger.batches(batches, len(loader), self.step, self.epoch + 1):
            ids, lengths, labels = self._to_device(batch)
            with torch.autocast(**self.autocast):
                logits, _ = self.net(ids, lengths)
            loss = self.criterion(logits.float(), labels)
            for optimizer in self.optimizers:
                optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if self.cfg.grad_clip is not None:
                nn.utils.clip_grad_norm_(self.clipped, self.cfg.grad_clip)
            for optimizer in self.optimizers:
                optimizer.step()
            if self.per_step:
                for scheduler in self.schedulers:
                    scheduler.step()
            self.running[0] += loss.detach() * len(labels)  # device-side: no host sync
            self.running[1] += len(labels)
            self.step += 1
            self.logger.step(self.step, self.running)
            if self._should_stop():
                self.logger.close_bar()
                raise Interrupted
        self.logger.close_bar()
        total = all_reduce_sum(self.running.clone(), self.ctx)
        self.step = 0
        self.running.zero_()
        return (total[0] / total[1].clamp(min=1)).item()

    @torch.no_grad()
    def evaluate(self, loader: DataLoader, network_only: bool = False) -> tuple[float, Tensor]:
        """Mean loss and confusion matrix [C, C] over `loader`, summed over all ranks.

        Of the model's predictions (naive Bayes mix included), or of the network alone.
        """
        self.model.eval()
        scores = self.model.forward if network_only else self.model.log_probs
        C = self.num_classes
        loss_sum = torch.zeros(1, device=self.device)
        cm = torch.zeros(C * C, dtype=torch.long, device=self.device)
        for batch in loader:
            ids, lengths, labels = self._to_device(batch)
            with torch.autocast(**self.autocast):
                logits, _ = scores(ids, lengths)
            loss_sum += self.eval_criterion(logits.float(), labels)
            cells = labels * C + logits.argmax(-1)  # scatter, not bincount: no sync on CUDA
            cm.scatter_add_(0, cells, torch.ones_like(cells))
        loss_sum, cm = all_reduce_sum(loss_sum, self.ctx), all_reduce_sum(cm, self.ctx)
        cm = cm.view(C, C).cpu()
        weights = self.criterion.weight
        denom = (
            (cm.sum(1).to(weights.device).float() @ weights) if weights is not None else cm.sum()
        )
        return (loss_sum / denom.clamp(min=1)).item(), cm

    def fit(self, train_loader: DataLoader, val_loader: DataLoader) -> list[dict]:
        """Train until `epochs` or early stopping, then restore the best epoch's weights."""
        while self.epoch < self.cfg.epochs and self.bad_epochs < self.cfg.patience:
            start = time.perf_counter()
            train_loader.batch_sampler.set_epoch(self.epoch + 1)
            train_loss = self.train_epoch(train_loader)
            self.epoch += 1
            val_loss, cm = self.evaluate(val_loader, network_only=self.cfg.stop_on == "network")
            overall = overall_metrics(cm.numpy())
            lr = self.optimizers[0].param_groups[0]["lr"]
            if not self.per_step:
                for scheduler in self.schedulers:
                    scheduler.step(val_loss)
            if val_loss < self.best_loss:
                self.best_loss, self.best_epoch, self.bad_epochs = val_loss, self.epoch, 0
                self.best_state = {
                    k: v.detach().to("cpu", copy=True) for k, v in self.model.state_dict().items()
                }
            else:
                self.bad_epochs += 1
            row = {
                "epoch": self.epoch,
                "train_loss": train_loss,
                "val_loss": val_loss,
                "val_f1": overall["f1"],
                "val_accuracy": overall["accuracy"],
                "lr": lr,
                "seconds": time.perf_counter() - start,
            }
            self.history.append(row)
            self.logger.epoch(row, self.cfg.epochs)
            if self.stop_requested:
                raise Interrupted
        if self.best_state is not None:
            self.model.load_state_dict(self.best_state)
        return self.history

    def state_dict(self) -> dict:
        """Everything needed to resume exactly: weights, optimiser, schedule, stopping, RNGs."""
        return {
            "model": self.model.state_dict(),
            "optimizers": [o.state_dict() for o in self.optimizers],
            "schedulers": [s.state_dict() for s in self.schedulers],
            "epoch": self.epoch,
            "step": self.step,
            "running": self.running.cpu(),
            "best_loss": self.best_loss,
            "best_epoch": self.best_epoch,
            "bad_epochs": self.bad_epochs,
            "best_state": self.best_state,
            "history": self.history,
            "rng": rng_state(),
        }

    def load_state_dict(self, state: dict) -> None:
        """Restore a state saved by `state_dict`."""
        self.model.load_state_dict(state["model"])
        for optimizer, saved in zip(self.optimizers, state["optimizers"], strict=True):
            optimizer.load_state_dict(saved)
        for scheduler, saved in zip(self.schedulers, state["schedulers"], strict=True):
            scheduler.load_state_dict(saved)
        self.epoch, self.step = state["epoch"], state["step"]
        self.running = state["running"].to(self.device)
        self.best_loss, self.best_epoch = state["best_loss"], state["best_epoch"]
        self.bad_epochs, self.best_state = state["bad_epochs"], state["best_state"]
        self.history = state["history"]
        set_rng_state(state["rng"])
