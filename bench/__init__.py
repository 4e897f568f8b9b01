"""Benchmarks that print figures (never tests). Run each from the repository root as a module,
e.g. ``python -m bench.bench_relay --help``; docs/BENCHMARKS.md records the figures."""
