"""shellcheck on every shell script of the repository."""

from __future__ import annotations

from pathlib import Path

import pytest

from .conftest import REPO, require_tool, run

SKIPPED_DIRS = {".git", ".venv", "node_modules", "build"}


def is_shell_script(path: Path) -> bool:
    if path.suffix in {".sh", ".bash"}:
        return True
    try:
        first_line = path.read_bytes()[:80].split(b"\n", 1)[0]
    except OSError:
        return False
    return first_line.startswith(b"#!") and first_line.split(b"/")[-1].split()[-1] in {
        b"sh",
        b"bash",
    }


def shell_scripts() -> list[Path]:
    """provision/*.sh, scripts/*, .ci/run and any other script with a shell shebang."""
    found = []
    for path in REPO.rglob("*"):
        relative = path.relative_to(REPO)
        if SKIPPED_DIRS.intersection(relative.parts) or not path.is_file():
            continue
        if is_shell_script(path):
            found.append(relative)
    return sorted(found)


SCRIPTS = shell_scripts()


def test_the_known_scripts_are_found() -> None:
    assert {Path("provision/install.sh"), Path(".ci/run")} <= set(SCRIPTS)


@pytest.mark.parametrize("script", SCRIPTS, ids=str)
def test_shellcheck_is_clean(script: Path) -> None:
    result = run(require_tool("shellcheck"), "--external-sources", script, cwd=REPO)
    assert result.returncode == 0, result.stdout + result.stderr
