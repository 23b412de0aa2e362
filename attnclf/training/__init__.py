"""Training: building a run from a config, the training loop, devices and torchrun."""
