"""What a training run shows: a progress bar per epoch and one summary line per epoch."""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator

from torch import Tensor
from tqdm.auto import tqdm


class ConsoleLogger:
    """Prints to stdout and draws progress bars on stderr; silent when not `enabled`.

    The running loss is shown on the bar only where reading it back is free (`live_loss`: the
    CPU); on a GPU it would wait for the device every few steps.
    """

    def __init__(self, enabled: bool = True, live_loss: bool = True) -> None:
        self.enabled = enabled
        self.live_loss = live_loss
        self._bar: tqdm | None = None

    def message(self, text: str) -> None:
        """One line on stdout."""
        if self.enabled:
            print(text, flush=True)

    def batches(self, batches: Iterable, total: int, done: int, epoch: int) -> Iterator:
        """`batches` (the rest of an epoch after `done` of `total`) behind a progress bar."""
        self._bar = tqdm(
            batches,
            total=total,
            initial=done,
            desc=f"epoch {epoch}",
            leave=False,
            file=sys.stderr,
            disable=None if self.enabled else True,
        )
        return iter(self._bar)

    def step(self, step: int, running: Tensor) -> None:
        """After each step: every 25 steps, the epoch's mean loss so far on the bar."""
        if self._bar is not None and self.live_loss and not self._bar.disable and step % 25 == 0:
            self._bar.set_postfix(loss=f"{(running[0] / running[1]).item():.4f}")

    def close_bar(self) -> None:
        """Remove the progress bar (an epoch ended or was interrupted)."""
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def epoch(self, row: dict, epochs: int) -> None:
        """The summary line of an epoch's history row."""
        self.message(
            f"epoch {row['epoch']:>3}/{epochs} | train loss {row['train_loss']:.4f} | "
            f"val loss {row['val_loss']:.4f} | val f1 {row['val_f1']:.4f} | lr {row['lr']:.1e} | "
            f"{row['seconds']:.1f}s"
        )
