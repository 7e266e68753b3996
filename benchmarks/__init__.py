"""Benchmarks: kernels and training steps against PyTorch (``python -m benchmarks.run``)."""
