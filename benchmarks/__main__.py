"""Run every benchmark, print the table and write it to docs/PERFORMANCE.md.

``KIOSK_BENCH_FULL=1`` runs the full sizes (more noise frames, a bigger
registry); the default quick sizes finish in a few minutes on 2 cores. The
measured section of docs/PERFORMANCE.md lies between two marker lines; the
prose around it is kept.
"""

from __future__ import annotations

import importlib
import os
import sys
from pathlib import Path

from benchmarks.report import Figure, header, table

# Figure modules, each with run(full: bool) -> list[Figure]; add new ones here.
MODULES = (
    "benchmarks.decoding",
    "benchmarks.registry",
    "benchmarks.latency",
    "benchmarks.central",
    "benchmarks.footprint",
)
DOC = Path(__file__).resolve().parent.parent / "docs" / "PERFORMANCE.md"
BEGIN = "<!-- bench:begin (written by make bench) -->"
END = "<!-- bench:end -->"


def write_doc(section: str) -> None:
    text = DOC.read_text(encoding="utf-8") if DOC.exists() else f"# Performance\n\n{BEGIN}\n{END}\n"
    before, _, rest = text.partition(BEGIN)
    _, _, after = rest.partition(END)
    DOC.write_text(f"{before}{BEGIN}\n{section}\n{END}{after}", encoding="utf-8")


def main() -> None:
    full = os.environ.get("KIOSK_BENCH_FULL") == "1"
    figures: list[Figure] = []
    for name in MODULES:
        print(f"running {name} ...", file=sys.stderr, flush=True)
        figures += importlib.import_module(name).run(full)
    command = ("KIOSK_BENCH_FULL=1 " if full else "") + "make bench"
    section = f"{header(command)}\n\n{table(figures)}"
    print(section)
    write_doc(section)


if __name__ == "__main__":
    main()
