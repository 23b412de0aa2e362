"""Entry point for `python -m attnclf` (and `torchrun -m attnclf`)."""

from attnclf.cli import entry

entry()
