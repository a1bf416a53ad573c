"""Shared helpers for the deployment tests: tool lookup, a stand-in wheel, a systemd tree."""

from __future__ import annotations

import base64
import hashlib
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import NoReturn

import pytest

REPO = Path(__file__).resolve().parents[2]
UNITS_DIR = REPO / "systemd"
INSTALL_SH = REPO / "provision" / "install.sh"
ANSIBLE_DIR = REPO / "provision" / "ansible"
# ansible-playbook and ansible-lint live next to the interpreter running pytest.
VENV_BIN = Path(sys.executable).parent
TOOL_PATH = os.pathsep.join([str(VENV_BIN), os.environ.get("PATH", "")])


def require_tool(name: str) -> str:
    """The tool's path; a missing tool fails in CI (which must have it) and skips elsewhere."""
    found = shutil.which(name, path=TOOL_PATH)
    if not found:
        missing(f"{name} is not installed (`make test` installs it)")
    return found


def missing(message: str) -> NoReturn:
    """CI must have every tool, so there a gap fails; elsewhere the test skips and says why."""
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


def run(*args: str | Path, **kwargs: object) -> subprocess.CompletedProcess[str]:
    """Run a command with the venv's tools on PATH, capturing text output."""
    env = {**os.environ, "PATH": TOOL_PATH, **kwargs.pop("env", {})}  # type: ignore[dict-item]
    return subprocess.run(
        [str(arg) for arg in args],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
        **kwargs,  # type: ignore[arg-type]
    )


@pytest.fixture(scope="session")
def stand_in_wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny wheel that provides the `kiosk` console script, installable offline in a second."""
    dist_info = "kaikukortti_kiosk-0.0.0.dev0.dist-info"
    files = {
        "kiosk_stand_in/__init__.py": "def main():\n    return 0\n",
        f"{dist_info}/METADATA": "Metadata-Version: 2.1\nName: kaikukortti-kiosk\n"
        "Version: 0.0.0.dev0\n",
        f"{dist_info}/WHEEL": "Wheel-Version: 1.0\nGenerator: tests\nRoot-Is-Purelib: true\n"
        "Tag: py3-none-any\n",
        f"{dist_info}/entry_points.txt": "[console_scripts]\nkiosk = kiosk_stand_in:main\n",
    }
    wheel = tmp_path_factory.mktemp("wheel") / "kaikukortti_kiosk-0.0.0.dev0-py3-none-any.whl"
    record = []
    with zipfile.ZipFile(wheel, "w") as archive:
        for name, text in files.items():
            data = text.encode()
            archive.writestr(name, data)
            digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=")
            record.append(f"{name},sha256={digest.decode()},{len(data)}")
        record.append(f"{dist_info}/RECORD,,")
        archive.writestr(f"{dist_info}/RECORD", "\n".join(record) + "\n")
    return wheel


def systemd_tree(root: Path) -> Path:
    """Give ``root`` the host's stock units, so `systemd-analyze --root` finds sysinit.target."""
    stock = Path("/usr/lib/systemd/system")
    if not stock.is_dir():
        missing(f"{stock} is absent (Debian's systemd package provides it)")
    shutil.copytree(stock, root / "usr/lib/systemd/system", symlinks=True, dirs_exist_ok=True)
    if not (root / "lib").exists():
        (root / "lib").symlink_to("usr/lib")
    return root
