"""One measured figure against its goal and baselines, and the Markdown table of them."""

from __future__ import annotations

import dataclasses
import datetime as dt
import platform
from collections.abc import Sequence


@dataclasses.dataclass(frozen=True)
class Figure:
    """A goal of the issue and what this run measured for it.

    ``lower_is_better`` says which way the goal points (costs, latencies), and the
    baselines are the plain zbar and zxing-cpp figures measured in the same run.
    """

    goal: str
    target: float
    measured: float
    unit: str = ""
    lower_is_better: bool = False
    zbar: float | None = None
    zxing: float | None = None

    @property
    def met(self) -> bool:
        if self.lower_is_better:
            return self.measured <= self.target
        return self.measured >= self.target


def _number(value: float | None, unit: str) -> str:
    if value is None:
        return "-"
    text = f"{value:.2f}".rstrip("0").rstrip(".") if value % 1 else f"{value:.0f}"
    return f"{text} {unit}".strip()


def _ratio(measured: float, baseline: float | None) -> str:
    if baseline is None or baseline == 0:
        return "-"
    return f"{measured / baseline:.2f}x"


def table(figures: Sequence[Figure]) -> str:
    rows = [
        "| goal | target | measured | met | zbar | ratio to zbar | zxing-cpp | ratio to zxing |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for figure in figures:
        sign = "≤" if figure.lower_is_better else "≥"
        rows.append(
            f"| {figure.goal} | {sign} {_number(figure.target, figure.unit)} "
            f"| {_number(figure.measured, figure.unit)} | {'yes' if figure.met else '**no**'} "
            f"| {_number(figure.zbar, figure.unit)} | {_ratio(figure.measured, figure.zbar)} "
            f"| {_number(figure.zxing, figure.unit)} | {_ratio(figure.measured, figure.zxing)} |"
        )
    return "\n".join(rows)


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            names = [
                line.split(":", 1)[1].strip() for line in info if line.startswith("model name")
            ]
        if names:
            cpu = f"{names[0]} x {len(names)}"
    except OSError:
        pass
    system = f"{platform.system()} {platform.release()}"
    return f"{cpu}, {system}, Python {platform.python_version()}"


def header(command: str) -> str:
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    return f"- **Machine:** {machine()}\n- **Date:** {now}\n- **Command:** `{command}`"
