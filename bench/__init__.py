"""Benchmarks: `python -m bench` prints the table and writes bench/results.json."""
