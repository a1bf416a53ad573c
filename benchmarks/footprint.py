"""Footprint figures: start to ``READY=1``, and resident memory while scanning.

The real ``python -m kiosk run`` runs as a child process with a ``dir:`` source
(no camera) holding generated card images, mock pins, and a store enrolled with
the reference server, so its sync thread pulls the registry and uploads while
it scans. The start time runs from the spawn to the ``READY=1`` datagram on a
``NOTIFY_SOCKET`` bound here (the daemon sends it when the first frame
arrives). The memory is the kernel's peak resident set (``VmHWM``) after a
period of scanning. The zbar column is the same run with ``decoder.backend =
"zbar"``, the decoder Raspberry Pi OS ships.
"""

from __future__ import annotations

import datetime as dt
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.central import enrolled, registry_cards
from benchmarks.report import Figure
from kiosk.counters import TIME_FLOOR
from kiosk.demo import card_image
from kiosk.store import Store

READY_TIMEOUT = 30.0
REGISTRY_CARDS = 10_000


def write_config(folder: Path, store: Path, backend: str) -> Path:
    path = folder / "kiosk.toml"
    lines = [
        "[venue]",
        'id = "bench-venue"',
        "reentry_minutes = 0",
        "[camera]",
        f'source = "dir:{folder / "images"}"',
        "[decoder]",
        f'backend = "{backend}"',
        "[gpio]",
        'pin_factory = "mock"',
        "[storage]",
        f'path = "{store}"',
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def show_cards(folder: Path, count: int) -> None:
    """Card images for the ``dir:`` source; ids the reference registry knows."""
    folder.mkdir()
    for number in range(count):
        symbology = "code39" if number % 2 else "qrcode"
        card_image(f"C{number:09d}", symbology).save(folder / f"{number:04d}.png")


def status_kb(pid: int, field: str) -> int:
    """A ``kB`` field of ``/proc/PID/status``, such as VmRSS or VmHWM."""
    for line in Path(f"/proc/{pid}/status").read_text(encoding="utf-8").splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/{pid}/status")


def run_kiosk(backend: str, images: int, scan_seconds: float) -> tuple[float, float]:
    """Seconds from spawn to READY=1 and peak resident MB, of one ``kiosk run``."""
    with enrolled(registry_cards(REGISTRY_CARDS)) as (_, config):
        folder = config.storage.state_dir.parent
        show_cards(folder / "images", images)
        with Store(config.storage.path) as store:
            # The kiosk trusts its clock from the floor a synchronised boot saved.
            store.put_meta(TIME_FLOOR, dt.datetime.now(dt.UTC).isoformat())
        config_file = write_config(folder, config.storage.path, backend)
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as listener:
            listener.bind(str(folder / "notify.sock"))
            listener.settimeout(READY_TIMEOUT)
            env = {**os.environ, "NOTIFY_SOCKET": str(folder / "notify.sock")}
            start = time.perf_counter()
            with (folder / "kiosk.log").open("wb") as log:
                process = subprocess.Popen(
                    [sys.executable, "-m", "kiosk", "run", "--config", str(config_file)],
                    stdout=log,
                    stderr=log,
                    env=env,
                )
                try:
                    while not listener.recv(4096).startswith(b"READY=1"):
                        pass
                    ready = time.perf_counter() - start
                    time.sleep(scan_seconds)
                    if process.poll() is not None:
                        raise RuntimeError(f"kiosk run exited early, see {folder / 'kiosk.log'}")
                    peak_kb = status_kb(process.pid, "VmHWM")
                finally:
                    process.send_signal(signal.SIGTERM)
                    process.wait(30)
    return ready, peak_kb / 1024


def run(full: bool) -> list[Figure]:
    starts = 5 if full else 3
    scan_seconds = 20.0 if full else 5.0
    # Each image shows for 6 frames at 30 fps: enough images to scan throughout.
    images = int(scan_seconds * 5) + 5
    measured = {}
    for backend in ("auto", "zbar"):
        runs = [run_kiosk(backend, images, scan_seconds) for _ in range(starts)]
        measured[backend] = (max(ready for ready, _ in runs), max(peak for _, peak in runs))
    return [
        Figure(
            f"start to READY=1, dir: source, no camera (slowest of {starts})",
            2,
            measured["auto"][0],
            "s",
            True,
            zbar=measured["zbar"][0],
        ),
        Figure(
            f"peak resident memory (VmHWM) after {scan_seconds:.0f} s of scanning and sync",
            120,
            measured["auto"][1],
            "MB",
            True,
            zbar=measured["zbar"][1],
        ),
    ]
