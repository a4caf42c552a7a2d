"""alarm-relay's benchmark suite (issue 8).

``python -m benchmarks`` runs every benchmark as a subprocess and writes
docs/performance.md; each ``bench_*.py`` also runs on its own and prints one
JSON line with its figures last.
"""
