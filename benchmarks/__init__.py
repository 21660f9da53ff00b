"""The benchmark suite: `.venv/bin/python -m benchmarks.run` (see run.py and BENCHMARKS.md)."""
