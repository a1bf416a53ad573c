"""`kiosk doctor`: each check passes on a healthy kiosk and fails with its fix.

Real parts where they exist here: a `dir:` camera, zbar, gpiozero's mock pins,
SQLite files, the reference API server on loopback and token files with real
modes. Only the clock's flag file, the free-space figure and pins that are
already taken are injected through :class:`Probes`.
"""

from __future__ import annotations

import json
import os
import sqlite3
import ssl
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
import trustme
from click.testing import CliRunner, Result
from gpiozero import LED
from gpiozero.pins.mock import MockFactory

from kiosk.api import ApiClient
from kiosk.cli_doctor import doctor
from kiosk.config import load_config
from kiosk.credentials import Device, write_enrollment
from kiosk.demo import card_image
from kiosk.devserver import DevServer
from kiosk.doctor import Probes, check_camera
from kiosk.sources import DirSource
from tests.test_sync_helpers import (
    CARD,
    add_records,
    enroll,
    server_fixture,  # noqa: F401 (a fixture)
)

NAMES = ["config", "camera", "zbar", "pins", "store", "token", "api", "clock", "disk"]


@pytest.fixture
def probes(tmp_path: Path) -> Probes:
    """Probes of a machine whose clock is synchronised."""
    flag = tmp_path / "synchronized"
    flag.touch()
    return Probes(sync_flag=flag, camera_seconds=1.0)


@pytest.fixture
def images(tmp_path: Path) -> Path:
    """A `dir:` camera folder holding one card image."""
    folder = tmp_path / "images"
    folder.mkdir()
    card_image("A999123453", "qrcode").save(folder / "001.png")
    return folder


def write_config(tmp_path: Path, camera: str = "picamera2", extra: str = "") -> Path:
    path = tmp_path / "kiosk.toml"
    path.write_text(
        f'[camera]\nsource = "{camera}"\n'
        '[gpio]\npin_factory = "mock"\n'
        f'[storage]\npath = "{tmp_path / "state" / "kiosk.db"}"\nmin_free_mb = 0\n{extra}'
    )
    return path


def run(config: Path, probes: Probes, *args: str) -> Result:
    return CliRunner().invoke(doctor, ["--config", str(config), *args], obj=probes)


def lines(result: Result) -> dict[str, str]:
    """Each check's console line, by check name."""
    found = {}
    for line in result.output.splitlines():
        name = line[6:].partition(":")[0]
        found[name] = line
    assert list(found) == NAMES, result.output
    return found


def checks(result: Result) -> dict[str, dict[str, Any]]:
    report = json.loads(result.output)
    return {check["name"]: check for check in report["checks"]}


def test_machine_without_a_camera_reports_it_and_exits_non_zero(
    tmp_path: Path, probes: Probes, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "picamera2", None)  # import fails, as off a Pi
    result = run(write_config(tmp_path), probes)
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit), result.output
    camera = lines(result)["camera"]
    assert camera.startswith("FAIL  camera: picamera2 is not installed")
    assert "apt install python3-picamera2" in camera and "rpicam-hello --list-cameras" in camera
    assert "ribbon cable" in camera and "systemctl stop kiosk" in camera
    assert lines(result)["zbar"].startswith("ok    zbar:")


def test_healthy_enrolled_kiosk_passes_every_check(
    tmp_path: Path, probes: Probes, images: Path, server: DevServer
) -> None:
    token = enroll(server, tmp_path / "state")
    config = write_config(tmp_path, f"dir:{images}", f'[api]\nbase_url = "{server.url}"\n')
    add_records(tmp_path / "state" / "kiosk.db", 2)
    result = run(config, probes)
    assert result.exit_code == 0, result.output
    found = lines(result)
    assert all(line.startswith("ok ") for line in found.values()), result.output
    assert found["camera"].endswith("gave a 640x480 frame")
    assert "led_green=17" in found["pins"] and "mock pins" in found["pins"]
    assert f"{server.url} accepted the token" in found["api"]
    assert server.requests("/v1/cards"), "the API was not asked"
    assert token not in result.output
    # The read-only check left no -wal or -shm file behind (root's would lock the kiosk out).
    assert sorted(p.name for p in (tmp_path / "state").iterdir()) == [
        "device.json",
        "kiosk.db",
        "token",
    ]


def test_camera_folder_without_images_or_missing_fails(tmp_path: Path, probes: Probes) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    camera = lines(run(write_config(tmp_path, f"dir:{empty}"), probes))["camera"]
    assert camera.startswith("FAIL  camera:") and "gave no frame" in camera
    assert "put an image file in it" in camera
    camera = lines(run(write_config(tmp_path, f"dir:{tmp_path / 'nowhere'}"), probes))["camera"]
    assert "does not exist" in camera


def test_hung_camera_is_reported_not_waited_for(tmp_path: Path, images: Path) -> None:
    released = threading.Event()

    class HungSource(DirSource):
        def read(self) -> Any:
            released.wait(10)

    config = write_config(tmp_path, f"dir:{images}")
    loaded = load_config(config)
    probes = Probes(
        open_source=lambda camera: HungSource(images, camera, paced=False), camera_seconds=0.2
    )
    result = check_camera(loaded, probes)
    released.set()
    assert result.status == "fail" and "hung" in result.detail


def test_missing_store_passes_with_a_note_and_is_not_created(
    tmp_path: Path, probes: Probes, images: Path
) -> None:
    result = run(write_config(tmp_path, f"dir:{images}"), probes)
    assert "does not exist yet; the kiosk creates it" in lines(result)["store"]
    assert lines(result)["store"].startswith("ok ")
    assert not (tmp_path / "state").exists()


def damage_index_entry(store: Path) -> None:
    """Change one card id in an index page, so the index disagrees with its table."""
    with sqlite3.connect(store) as conn:
        sql = "SELECT rootpage FROM sqlite_master WHERE name = 'events_by_card'"
        root = conn.execute(sql).fetchone()[0]
        size = conn.execute("PRAGMA page_size").fetchone()[0]
    data = bytearray(store.read_bytes())
    at = (root - 1) * size + data[(root - 1) * size : root * size].find(CARD.encode())
    data[at] = ord("B")
    store.write_bytes(bytes(data))


@pytest.mark.parametrize(
    ("damage", "says"),
    [("garbage", "file is not a database"), ("torn", "malformed"), ("index", "missing from index")],
)
def test_corrupt_store_fails_integrity(
    tmp_path: Path, probes: Probes, damage: str, says: str
) -> None:
    store = tmp_path / "state" / "kiosk.db"
    add_records(store, 5 if damage == "index" else 300)
    if damage == "garbage":
        store.write_bytes(b"not a database at all" * 100)
    elif damage == "torn":
        with store.open("r+b") as handle:  # smash the middle pages, keep the header
            handle.seek(3 * 4096)
            handle.write(os.urandom(4 * 4096))
    else:
        damage_index_entry(store)
    line = lines(run(write_config(tmp_path), probes))["store"]
    assert line.startswith(f"FAIL  store: {store}") and says in line
    assert "move" in line and "aside" in line


def test_token_readable_by_others_fails(tmp_path: Path, probes: Probes, server: DevServer) -> None:
    token = enroll(server, tmp_path / "state")
    (tmp_path / "state" / "token").chmod(0o644)
    result = run(write_config(tmp_path, extra=f'[api]\nbase_url = "{server.url}"\n'), probes)
    assert result.exit_code == 1
    line = lines(result)["token"]
    assert line.startswith("FAIL  token:") and "mode 0644" in line
    assert f"chmod 600 {tmp_path / 'state' / 'token'}" in line
    assert token not in result.output


def test_token_of_another_user_fails(tmp_path: Path, server: DevServer) -> None:
    enroll(server, tmp_path / "state")
    probes = Probes(user_id=lambda: os.geteuid() + 1)
    line = lines(run(write_config(tmp_path), probes))["token"]
    assert "belongs to" in line and "sudo -u kiosk kiosk doctor" in line


def test_unenrolled_systemd_credential_is_a_missing_token(
    tmp_path: Path, probes: Probes, monkeypatch: pytest.MonkeyPatch
) -> None:
    credentials = tmp_path / "credentials"
    credentials.mkdir()
    (credentials / "token").write_text("\n")  # SetCredential=token:\n when not enrolled
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(credentials))
    config = write_config(tmp_path, extra='[api]\nbase_url = "https://api.example.fi"\n')
    found = lines(run(config, probes))
    assert (
        found["token"].startswith("FAIL  token: no token at") and "kiosk enroll" in found["token"]
    )
    assert found["api"].startswith("skip  api: not enrolled")


def test_offline_site_skips_token_and_api(tmp_path: Path, probes: Probes, images: Path) -> None:
    result = run(write_config(tmp_path, f"dir:{images}"), probes)
    assert result.exit_code == 0, result.output
    assert lines(result)["token"].startswith("skip  token: offline site")
    assert lines(result)["api"].startswith("skip  api: offline site")


def test_wrong_token_is_refused(tmp_path: Path, probes: Probes, server: DevServer) -> None:
    enroll(server, tmp_path / "state")
    (tmp_path / "state" / "token").write_text("not-the-token\n")
    result = run(write_config(tmp_path), probes)
    line = lines(result)["api"]
    assert line.startswith(f"FAIL  api: {server.url} refused the device's token")
    assert "kiosk enroll CODE --api URL" in line
    assert "not-the-token" not in result.output


def test_unreachable_api_fails(tmp_path: Path, probes: Probes) -> None:
    state = tmp_path / "state"
    write_enrollment(state, Device("d-1", "demo-venue", "http://127.0.0.1:9"), "secret-token")
    line = lines(run(write_config(tmp_path), probes))["api"]
    assert line.startswith("FAIL  api: http://127.0.0.1:9 did not answer")
    assert "firewall" in line


def test_untrusted_tls_certificate_points_at_ca_file(tmp_path: Path, probes: Probes) -> None:
    ca = trustme.CA()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    with DevServer(enroll_codes=["CODE-1"], ssl_context=context) as server:
        ca_file = tmp_path / "ca.pem"
        ca.cert_pem.write_to_path(str(ca_file))
        state = tmp_path / "state"
        with ApiClient(server.url, ca_file=str(ca_file)) as client:
            enrollment = client.enroll(
                "CODE-1", {"hostname": "h", "model": "m", "software_version": "0"}
            )
        write_enrollment(
            state, Device(enrollment.device_id, "demo-venue", server.url), enrollment.token
        )
        line = lines(run(write_config(tmp_path), probes))["api"]
        assert line.startswith("FAIL  api: TLS to") and "api.ca_file" in line
        trusted = write_config(tmp_path, extra=f'[api]\nca_file = "{ca_file}"\n')
        assert lines(run(trusted, probes))["api"].startswith("ok    api:")


def test_bad_config_names_the_key_and_skips_the_rest(tmp_path: Path, probes: Probes) -> None:
    config = write_config(tmp_path, extra='[venue]\ncategory = "opera"\n')
    result = run(config, probes)
    assert result.exit_code == 1, result.output  # a failed check, not the CLI's exit 2
    found = lines(result)
    assert found["config"].startswith("FAIL  config:") and "venue.category" in found["config"]
    assert f"correct venue.category in {config}" in found["config"]
    assert found["camera"] == "skip  camera: needs a valid config (see config)"
    assert found["clock"].startswith("ok    clock:")
    missing = lines(run(tmp_path / "absent.toml", probes))["config"]
    assert "file not found" in missing and "config/kiosk.toml" in missing


def test_pin_held_by_another_program_fails_naming_it(tmp_path: Path, images: Path) -> None:
    factory = MockFactory()
    holder = LED(27, pin_factory=factory)  # as the running kiosk service would
    probes = Probes(make_pin_factory=lambda name: factory)
    line = lines(run(write_config(tmp_path, f"dir:{images}"), probes))["pins"]
    holder.close()
    assert line.startswith("FAIL  pins: gpio.led_red: cannot claim pin 27")
    assert "sudo systemctl stop kiosk" in line and "pinctrl get 27" in line


def test_zbar_clock_and_disk_failures_give_fixes(tmp_path: Path, images: Path) -> None:
    def no_zbar(config: Any) -> Any:
        raise ImportError("Unable to find zbar shared library")

    probes = Probes(
        make_decoder=no_zbar,
        sync_flag=tmp_path / "absent",
        disk_free=lambda folder: 10 * 1024 * 1024,
    )
    config = (
        write_config(tmp_path, f"dir:{images}")
        .read_text()
        .replace("min_free_mb = 0", "min_free_mb = 50")
    )
    path = tmp_path / "low.toml"
    path.write_text(config)
    found = lines(run(path, probes))
    assert "Unable to find zbar" in found["zbar"] and "apt install libzbar0" in found["zbar"]
    assert found["clock"].startswith("FAIL  clock: not synchronised")
    assert "timedatectl set-ntp true" in found["clock"]
    assert "systemctl enable --now systemd-timesyncd" in found["clock"]
    assert (
        found["disk"].startswith("FAIL  disk: 10 MB free")
        and "storage.min_free_mb" in found["disk"]
    )


def test_json_output_shape(tmp_path: Path, probes: Probes, images: Path) -> None:
    result = run(write_config(tmp_path, f"dir:{images}"), probes, "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["ok"] is True
    assert [check["name"] for check in report["checks"]] == NAMES
    for check in report["checks"]:
        assert set(check) == {"name", "status", "ok", "detail", "fix"}
    found = checks(result)
    assert found["camera"]["ok"] is True and found["api"]["ok"] is None
    assert found["api"]["status"] == "skip"
    bad = run(tmp_path / "absent.toml", probes, "--json")
    assert bad.exit_code == 1 and json.loads(bad.output)["ok"] is False
    config = checks(bad)["config"]
    assert config["ok"] is False and config["fix"]
