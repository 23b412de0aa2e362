"""attnclf's benchmarks: scripts (`python benchmarks/speed.py`) and the helpers they share."""
