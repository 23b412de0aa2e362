"""Hyperparameter search: a search space, an Optuna study of training runs, its report."""
