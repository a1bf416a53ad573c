"""Security (issue 6, item 7): what ``tests/test_api_client.py``,
``tests/test_devserver.py`` and ``tests/test_sync_registry.py`` do not already show.

Here: the token is in neither ``kiosk status`` (text and --json), the process
environment after enrollment nor the real daemon's environment and output; the
token file the ``kiosk enroll`` command writes is 0600; TLS is refused with an
expired certificate and with a certificate for another host name; the ``kiosk
devserver`` command refuses a missing or wrong token on every device endpoint.
"""

from __future__ import annotations

import datetime as dt
import os
import signal
import ssl
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import trustme
from click.testing import CliRunner

from kiosk.api import ApiClient, RetryableError
from kiosk.cli import main
from kiosk.config import Config
from kiosk.devserver import DevServer
from tests.conftest import wait_for
from tests.kiosk_process import kiosk_run, write_config
from tests.test_api_client import ca_files, cas  # noqa: F401 (fixtures)
from tests.test_sync_helpers import DEVICE_INFO, add_records

DEVICE_ENDPOINTS = [("GET", "/v1/cards"), ("POST", "/v1/events"), ("POST", "/v1/heartbeat")]


@pytest.fixture
def enrolled(tmp_path: Path, kiosk_config: Config) -> Iterator[tuple[DevServer, Config, Path, str]]:
    """A reference server, a kiosk enrolled with it through the CLI, its config file
    and its token."""
    with DevServer(enroll_codes=["CODE-1"]) as server:
        config_file = write_config(kiosk_config, tmp_path / "kiosk.toml")
        result = CliRunner().invoke(
            main, ["enroll", "CODE-1", "--api", server.url, "--config", str(config_file)]
        )
        assert result.exit_code == 0, result.output
        token = (kiosk_config.storage.state_dir / "token").read_text().strip()
        assert len(token) >= 32
        yield server, kiosk_config, config_file, token


def test_kiosk_enroll_writes_a_0600_token_and_keeps_it_out_of_the_environment(
    enrolled: tuple[DevServer, Config, Path, str],
) -> None:
    _, config, _, token = enrolled
    mode = stat.S_IMODE((config.storage.state_dir / "token").stat().st_mode)
    assert mode == 0o600
    assert not any(token in value for value in os.environ.values())


def test_kiosk_status_never_shows_the_token(
    enrolled: tuple[DevServer, Config, Path, str],
) -> None:
    _, config, config_file, token = enrolled
    add_records(config.storage.path, 3)
    runner = CliRunner()
    outputs = [
        runner.invoke(main, ["status", "--config", str(config_file), *flag]).output
        for flag in ([], ["--json"])
    ]
    assert all("queue" in output for output in outputs)  # the report itself was printed
    for output in outputs:
        assert token not in output
        assert token[:8] not in output


def test_the_running_daemon_keeps_the_token_out_of_its_environment_and_output(
    enrolled: tuple[DevServer, Config, Path, str],
) -> None:
    server, _, config_file, token = enrolled
    process = kiosk_run(config_file)
    try:
        # The daemon read the token and used it: the server saw it authenticated.
        assert wait_for(lambda: bool(server.requests("/v1/heartbeat")), 20)
        environment = Path(f"/proc/{process.pid}/environ").read_bytes()
    finally:
        process.send_signal(signal.SIGTERM)
        stdout, stderr = process.communicate(timeout=30)
    assert [r.status for r in server.requests("/v1/heartbeat")][:1] == [200]
    for seen in (environment, stdout, stderr):
        assert token.encode() not in seen


# --- TLS: the cases tests/test_api_client.py does not cover ----------------------


def serve_tls(cert: trustme.LeafCert) -> DevServer:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(context)
    return DevServer(enroll_codes=["CODE-1"], ssl_context=context)


@pytest.mark.parametrize("case", ["expired", "wrong-host"])
def test_tls_is_refused_with_an_expired_certificate_or_another_host_name(
    cas: dict[str, trustme.CA],  # noqa: F811
    ca_files: dict[str, str],  # noqa: F811
    case: str,
) -> None:
    ca = cas["right"]
    now = dt.datetime.now(dt.UTC)
    if case == "expired":
        cert = ca.issue_cert(
            "127.0.0.1",
            "localhost",
            not_before=now - dt.timedelta(days=30),
            not_after=now - dt.timedelta(days=1),
        )
        reason = "certificate has expired"
    else:
        cert = ca.issue_cert("api.kaikukortti.example")
        reason = "IP address mismatch"
    with serve_tls(cert) as server, ApiClient(server.url, ca_file=ca_files["right"]) as client:
        with pytest.raises(RetryableError, match=reason):
            client.enroll("CODE-1", DEVICE_INFO)
        assert server.unused_enroll_codes() == ["CODE-1"]
        assert server.requests() == []


# --- the kiosk devserver command ---------------------------------------------------


@pytest.fixture
def devserver_command(tmp_path: Path) -> Iterator[str]:
    """``kiosk devserver`` on a free loopback port; yields its URL."""
    process = subprocess.Popen(
        [sys.executable, "-m", "kiosk", "devserver", "--port", "0", "--enroll-code", "CODE-1"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert process.stdout is not None
        yield process.stdout.readline().split()[-1]
    finally:
        process.terminate()
        process.wait(10)


def test_kiosk_devserver_refuses_missing_or_wrong_tokens(devserver_command: str) -> None:
    url = devserver_command
    enrollment = httpx.post(f"{url}/v1/enroll", json={"code": "CODE-1", "device": DEVICE_INFO})
    token = enrollment.json()["token"]
    wrong = [{}, {"Authorization": ""}, {"Authorization": "Bearer"}, {"Authorization": "Basic x"}]
    wrong += [{"Authorization": f"Bearer {token}x"}, {"Authorization": f"Bearer {token[:-1]}"}]
    wrong += [{"Authorization": f"bearer {token}"}]
    statuses = {
        httpx.request(method, f"{url}{path}", headers=headers, json={}).status_code
        for method, path in DEVICE_ENDPOINTS
        for headers in wrong
    }
    assert statuses == {401}
    # The right token passes the same door.
    good = httpx.get(f"{url}/v1/cards", headers={"Authorization": f"Bearer {token}"})
    assert good.status_code == 200
