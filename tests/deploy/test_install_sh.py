"""provision/install.sh: --dry-run, a refused platform, and installs into a throwaway root."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from .conftest import INSTALL_SH, REPO, UNITS_DIR, require_tool, run, systemd_tree

LIVE_PATHS = [Path("/etc/kiosk"), Path("/opt/kiosk"), Path("/var/lib/kiosk")]


def install(*args: str | Path, env: dict[str, str] | None = None) -> tuple[int, str]:
    result = run("bash", INSTALL_SH, *args, env=env or {})
    return result.returncode, result.stdout + result.stderr


def snapshot(root: Path) -> dict[str, tuple[int, str]]:
    """Mode and content digest of every file and link under root, the venv left out."""
    state = {}
    for path in sorted(root.rglob("*")):
        relative = str(path.relative_to(root))
        if relative.startswith("opt/kiosk/venv/"):
            continue  # pip rewrites it on purpose: an upgrade must always land
        if path.is_symlink():
            state[relative] = (0, os.readlink(path))
        elif path.is_file():
            state[relative] = (path.stat().st_mode, hashlib.sha256(path.read_bytes()).hexdigest())
        else:
            state[relative] = (path.stat().st_mode, "")
    return state


@pytest.fixture
def fresh_root(tmp_path: Path) -> Path:
    root = tmp_path / "root"
    root.mkdir()
    return root


def test_dry_run_prints_every_step_and_changes_nothing(fresh_root: Path) -> None:
    before = [path.exists() for path in LIVE_PATHS]
    code, output = install("--dry-run", "--enroll", "CODE-1", "--api", "https://api.example.fi")
    assert code == 0, output
    for step in (
        "apt-get install",
        "python3-picamera2",
        "useradd",
        "-m venv --system-site-packages /opt/kiosk/venv",
        f"pip install --quiet {REPO}",
        "/etc/systemd/system/kiosk.service",
        "systemctl enable kiosk.service kiosk-retry.timer",
        "systemd-timesyncd",
        "kiosk enroll CODE-1 --api https://api.example.fi",
        "systemctl restart kiosk.service",
    ):
        assert step in output, f"--dry-run does not show {step!r}:\n{output}"
    assert [path.exists() for path in LIVE_PATHS] == before

    code, output = install("--dry-run", "--root", fresh_root)
    assert code == 0, output
    assert list(fresh_root.iterdir()) == []


@pytest.mark.parametrize(
    ("os_release", "arch", "reason"),
    [
        ('ID=fedora\nVERSION_ID="40"\n', "aarch64", "not Debian"),
        ('ID=debian\nVERSION_ID="11"\n', "aarch64", "older than Bookworm"),
        ('ID=raspbian\nID_LIKE=debian\nVERSION_ID="12"\n', "riscv64", "architecture riscv64"),
    ],
)
def test_unsupported_platform_exits_2(
    fresh_root: Path, os_release: str, arch: str, reason: str
) -> None:
    (fresh_root / "etc").mkdir()
    (fresh_root / "etc/os-release").write_text(os_release)
    code, output = install("--dry-run", "--root", fresh_root, env={"KIOSK_INSTALL_ARCH": arch})
    assert code == 2, output
    assert "unsupported platform" in output and reason in output


def test_supported_platforms_pass_the_check(fresh_root: Path) -> None:
    (fresh_root / "etc").mkdir()
    (fresh_root / "etc/os-release").write_text('ID=raspbian\nID_LIKE=debian\nVERSION_ID="13"\n')
    for arch in ("aarch64", "armv7l"):
        code, output = install("--dry-run", "--root", fresh_root, env={"KIOSK_INSTALL_ARCH": arch})
        assert code == 0, output


def test_install_into_a_throwaway_root(fresh_root: Path, stand_in_wheel: Path) -> None:
    require_tool("systemctl")  # `systemctl --root` enables units offline
    code, output = install("--root", fresh_root, "--wheel", stand_in_wheel)
    assert code == 0, output
    skipped = [line for line in output.splitlines() if line.startswith("skip (--root): ")]
    for step in ("apt-get install", "useradd", "systemctl restart kiosk.service"):
        assert any(step in line for line in skipped), f"{step!r} not reported as skipped"

    units = fresh_root / "etc/systemd/system"
    for unit in ("kiosk.service", "kiosk-retry.timer"):
        assert (units / unit).read_text() == (UNITS_DIR / unit).read_text()
        assert (units / unit).stat().st_mode & 0o777 == 0o644
    assert (units / "multi-user.target.wants/kiosk.service").is_symlink()
    assert (units / "timers.target.wants/kiosk-retry.timer").is_symlink()
    config = fresh_root / "etc/kiosk/kiosk.toml"
    assert config.read_bytes() == (REPO / "config/kiosk.toml").read_bytes()
    kiosk = fresh_root / "opt/kiosk/venv/bin/kiosk"
    assert kiosk.is_file() and os.access(kiosk, os.X_OK)
    assert (
        "include-system-site-packages = true"
        in (fresh_root / "opt/kiosk/venv/pyvenv.cfg").read_text()
    )

    # The operator's edit survives a second run; the new default lands beside it.
    edited = config.read_text() + "\n# tuned by the venue's IT\n"
    config.write_text(edited)
    code, output = install("--root", fresh_root, "--wheel", stand_in_wheel)
    assert code == 0, output
    assert config.read_text() == edited
    dist = fresh_root / "etc/kiosk/kiosk.toml.dist"
    assert dist.read_bytes() == (REPO / "config/kiosk.toml").read_bytes()

    # A third run changes nothing at all.
    before = snapshot(fresh_root)
    code, output = install("--root", fresh_root, "--wheel", stand_in_wheel)
    assert code == 0, output
    assert snapshot(fresh_root) == before
    assert "unchanged: " + str(units / "kiosk.service") in output

    # What was installed is what systemd accepts.
    systemd_tree(fresh_root)
    result = run(
        require_tool("systemd-analyze"),
        "verify",
        f"--root={fresh_root}",
        "/etc/systemd/system/kiosk.service",
    )
    assert (result.returncode, result.stdout + result.stderr) == (0, "")


def test_overlay_root_puts_the_state_on_the_writable_partition(
    fresh_root: Path, stand_in_wheel: Path
) -> None:
    require_tool("systemctl")
    args = ("--root", fresh_root, "--wheel", stand_in_wheel, "--overlay-root")
    code, output = install(*args, "--state-dir", "/data/kiosk")
    assert code == 0, output
    assert "skip (--root): raspi-config nonint do_overlayfs 0" in output
    units = fresh_root / "etc/systemd/system"
    assert (units / "var-lib-kiosk.mount").read_text() == (
        UNITS_DIR / "var-lib-kiosk.mount"
    ).read_text()
    drop_in = (units / "var-lib-kiosk.mount.d/state-dir.conf").read_text()
    assert "[Mount]\nWhat=/data/kiosk" in drop_in
    assert (units / "local-fs.target.wants/var-lib-kiosk.mount").is_symlink()
    assert (fresh_root / "data/kiosk").stat().st_mode & 0o777 == 0o700

    systemd_tree(fresh_root)
    result = run(
        require_tool("systemd-analyze"),
        "verify",
        f"--root={fresh_root}",
        "/etc/systemd/system/var-lib-kiosk.mount",
    )
    assert (result.returncode, result.stdout + result.stderr) == (0, "")


def test_enrollment_is_skipped_in_a_throwaway_root(fresh_root: Path, stand_in_wheel: Path) -> None:
    code, output = install(
        "--root", fresh_root, "--wheel", stand_in_wheel, "--enroll", "C-1", "--api", "https://a.fi"
    )
    assert code == 0, output
    assert "skip (--root): runuser -u kiosk -- /opt/kiosk/venv/bin/kiosk enroll C-1" in output
    assert not (fresh_root / "var/lib/kiosk/token").exists()


@pytest.mark.parametrize(
    "args",
    [
        ["--enroll", "C-1"],
        ["--api", "https://a.fi"],
        ["--no-such-option"],
        ["--wheel", "/nope.whl"],
    ],
)
def test_bad_arguments_are_refused(args: list[str]) -> None:
    code, output = install("--dry-run", *args)
    assert code == 1 and "install.sh: " in output
