"""Benchmarks: scripts that measure the system against the numbers in DESIGN.md."""
