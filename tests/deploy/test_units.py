"""The systemd units: `systemd-analyze verify` says nothing, exposure stays <= 2.0."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from .conftest import UNITS_DIR, require_tool, run, systemd_tree

UNITS = sorted(
    path.name for path in UNITS_DIR.iterdir() if path.suffix in {".service", ".timer", ".mount"}
)
SERVICES = [name for name in UNITS if name.endswith(".service")]
MAX_EXPOSURE = 2.0


@pytest.fixture(scope="module")
def unit_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tree holding our units and a kiosk executable, so verify checks ExecStart= for real."""
    root = systemd_tree(tmp_path_factory.mktemp("root"))
    unit_dir = root / "etc/systemd/system"
    unit_dir.mkdir(parents=True)
    for name in UNITS:
        shutil.copy(UNITS_DIR / name, unit_dir / name)
    kiosk = root / "opt/kiosk/venv/bin/kiosk"
    kiosk.parent.mkdir(parents=True)
    kiosk.write_text("#!/bin/sh\n")
    kiosk.chmod(0o755)
    return root


def verify(root: Path, unit: str) -> str:
    """All that `systemd-analyze verify` prints about one installed unit."""
    result = run(
        require_tool("systemd-analyze"), "verify", f"--root={root}", f"/etc/systemd/system/{unit}"
    )
    return (result.stdout + result.stderr).strip() + ("" if result.returncode == 0 else " (failed)")


def test_there_are_units_to_check() -> None:
    assert {"kiosk.service", "kiosk-retry.timer", "var-lib-kiosk.mount"} <= set(UNITS)


@pytest.mark.parametrize("unit", UNITS)
def test_unit_verifies_without_any_output(unit_root: Path, unit: str) -> None:
    assert verify(unit_root, unit) == ""


def test_verify_output_is_noticed(unit_root: Path) -> None:
    # The check above is only worth something if a flawed unit does print.
    broken = unit_root / "etc/systemd/system/broken.service"
    broken.write_text("[Service]\nExecStart=/opt/kiosk/venv/bin/kiosk run\nSetCredential=token:\n")
    assert "Invalid syntax" in verify(unit_root, "broken.service")


@pytest.mark.parametrize("service", SERVICES)
def test_service_exposure_is_at_most_2(service: str) -> None:
    result = run(
        require_tool("systemd-analyze"),
        "security",
        "--offline=yes",
        # --threshold counts tenths: 20 is an exposure of 2.0.
        f"--threshold={round(MAX_EXPOSURE * 10)}",
        UNITS_DIR / service,
    )
    match = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", result.stdout)
    assert match, result.stdout + result.stderr
    assert float(match.group(1)) <= MAX_EXPOSURE
    assert result.returncode == 0, result.stderr


def settings(unit: str) -> dict[str, list[str]]:
    """Every Key=value of a unit file, values in order of appearance."""
    found: dict[str, list[str]] = {}
    for line in (UNITS_DIR / unit).read_text().splitlines():
        if "=" in line and not line.lstrip().startswith(("#", ";", "[")):
            key, value = line.split("=", 1)
            found.setdefault(key.strip(), []).append(value.strip())
    return found


def test_service_keeps_the_designs_promises() -> None:
    unit = settings("kiosk.service")
    assert unit["Type"] == ["notify"]
    assert unit["NotifyAccess"] == ["main"]
    assert unit["WatchdogSec"] and unit["Restart"] == ["on-failure"]
    assert unit["StartLimitBurst"] and unit["StartLimitIntervalSec"]
    assert unit["User"] == ["kiosk"]
    assert unit["StateDirectoryMode"] == ["0700"]
    assert "LG_WD=%t/kiosk" in unit["Environment"]
    # A missing token must not stop an un-enrolled kiosk: a non-empty fallback.
    assert unit["LoadCredential"] == ["token:/var/lib/kiosk/token"]
    assert unit["SetCredential"][0].startswith("token:") and unit["SetCredential"][0] != "token:"
    # The camera and pins stay reachable through the device policy alone.
    assert unit["DevicePolicy"] == ["closed"]
    allowed = {value.split()[0] for value in unit["DeviceAllow"]}
    assert {"char-gpiochip", "char-video4linux", "char-media", "char-dma_heap"} <= allowed
    assert "PrivateDevices" not in unit
    assert unit["CapabilityBoundingSet"] == [""]
