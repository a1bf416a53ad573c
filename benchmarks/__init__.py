"""Benchmarks for issue 7's figures; ``python -m benchmarks`` (``make bench``) runs them all.

Each figure module (``decoding``, ``registry``, ...) has ``run(full) -> list[Figure]``
and is listed in :data:`benchmarks.__main__.MODULES`; the runner prints the
figures and writes them to docs/PERFORMANCE.md.
"""
