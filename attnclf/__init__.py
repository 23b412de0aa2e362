"""attnclf: train, evaluate and explain RNN + attention text classifiers."""

__version__ = "0.1.0"
