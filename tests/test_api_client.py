"""The API client: TLS trust, Retry-After, the token's secrecy, credential files."""

from __future__ import annotations

import logging
import os
import ssl
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
import trustme

from kiosk.api import (
    ApiClient,
    AuthError,
    EnrollmentRefused,
    RetryableError,
    parse_retry_after,
)
from kiosk.credentials import Device, load_credentials, token_path, write_enrollment
from kiosk.devserver import DevServer, Fault
from kiosk.store import Store
from kiosk.sync import MUST_ENROLL_META, SyncWorker
from tests.test_sync_helpers import (
    DEVICE_INFO,
    add_records,
    enroll,
    make_config,
    server_fixture,  # noqa: F401 (a fixture)
)

# --- Retry-After ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "date", "expected"),
    [
        ("120", None, 120.0),
        (" 5 ", "garbage", 5.0),
        ("Wed, 21 Oct 2015 07:28:30 GMT", "Wed, 21 Oct 2015 07:28:00 GMT", 30.0),
        ("Wed, 21 Oct 2015 07:28:00 GMT", "Wed, 21 Oct 2015 07:29:00 GMT", 0.0),
        ("Wed, 21 Oct 2015 07:28:30 GMT", None, None),  # no Date: never the local clock
        ("soon", "Wed, 21 Oct 2015 07:28:00 GMT", None),
        ("-3", None, None),
        (None, None, None),
        ("99999999", None, 86400.0),
    ],
)
def test_parse_retry_after(value: str | None, date: str | None, expected: float | None) -> None:
    assert parse_retry_after(value, date) == expected


# --- TLS -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def cas(tmp_path_factory: pytest.TempPathFactory) -> dict[str, trustme.CA]:
    return {"right": trustme.CA(), "attacker": trustme.CA()}


@pytest.fixture(scope="module")
def ca_files(
    tmp_path_factory: pytest.TempPathFactory, cas: dict[str, trustme.CA]
) -> dict[str, str]:
    folder = tmp_path_factory.mktemp("ca")
    for name, ca in cas.items():
        ca.cert_pem.write_to_path(str(folder / f"{name}.pem"))
    return {name: str(folder / f"{name}.pem") for name in cas} | {"": ""}


def tls_server(ca: trustme.CA) -> DevServer:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1", "localhost").configure_cert(context)
    return DevServer(enroll_codes=["CODE-1"], ssl_context=context)


@pytest.fixture
def right_server(cas: dict[str, trustme.CA]) -> Iterator[DevServer]:
    with tls_server(cas["right"]) as server:
        yield server


@pytest.fixture
def attacker_server(cas: dict[str, trustme.CA]) -> Iterator[DevServer]:
    with tls_server(cas["attacker"]) as server:
        yield server


def test_private_ca_is_trusted(right_server: DevServer, ca_files: dict[str, str]) -> None:
    with ApiClient(right_server.url, ca_file=ca_files["right"]) as client:
        assert client.enroll("CODE-1", DEVICE_INFO).device_id


def test_wrong_ca_is_refused_as_a_network_error(
    attacker_server: DevServer, ca_files: dict[str, str]
) -> None:
    with (
        ApiClient(attacker_server.url, ca_file=ca_files["right"]) as client,
        pytest.raises(RetryableError, match="CERTIFICATE_VERIFY_FAILED"),
    ):
        client.enroll("CODE-1", DEVICE_INFO)
    assert attacker_server.unused_enroll_codes() == ["CODE-1"]


@pytest.mark.parametrize("ca_file", ["right", ""])
def test_environment_cannot_change_whom_the_kiosk_trusts(
    attacker_server: DevServer,
    ca_files: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    ca_file: str,
) -> None:
    monkeypatch.setenv("SSL_CERT_FILE", ca_files["attacker"])
    monkeypatch.setenv("SSL_CERT_DIR", str(Path(ca_files["attacker"]).parent))
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", ca_files["attacker"])
    with (
        ApiClient(attacker_server.url, ca_file=ca_files[ca_file]) as client,
        pytest.raises(RetryableError),
    ):
        client.enroll("CODE-1", DEVICE_INFO)


def test_environment_proxies_are_ignored(
    right_server: DevServer, ca_files: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("HTTPS_PROXY", "HTTP_PROXY", "ALL_PROXY", "https_proxy", "all_proxy"):
        monkeypatch.setenv(name, "http://127.0.0.1:9")  # nothing listens there
    with ApiClient(right_server.url, ca_file=ca_files["right"]) as client:
        assert client.enroll("CODE-1", DEVICE_INFO).venue_id == "demo-venue"


def test_tls_failure_keeps_records_queued(
    attacker_server: DevServer, ca_files: dict[str, str], tmp_path: Path
) -> None:
    config = make_config(tmp_path, attacker_server).replace("api", ca_file=ca_files["right"])
    write_enrollment(
        config.storage.state_dir, Device("dev", "demo-venue", attacker_server.url), "t0ken"
    )
    add_records(config.storage.path, 3)
    SyncWorker(config).run_once()
    with Store(config.storage.path) as store:
        assert store.queue_depth() == 3
    assert attacker_server.requests() == []  # refused before any HTTP request


# --- the token's secrecy -------------------------------------------------------


def test_token_never_in_logs_errors_or_repr(
    server: DevServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    config = make_config(tmp_path, server)
    token = enroll(server, config.storage.state_dir)
    add_records(config.storage.path, 3)
    server.inject(Fault("500", path="/v1/events"))
    server.inject(Fault("401", path="/v1/events"))
    worker = SyncWorker(config, backoff_base=0.01)
    texts = []
    for _ in range(3):
        worker.run_once()
        try:
            worker.upload()
        except AuthError as error:
            texts.append(str(error) + repr(error))
    credentials = load_credentials(config.storage.state_dir)
    with ApiClient(server.url, token) as client:
        texts += [repr(client), repr(credentials)]
        with pytest.raises(AuthError) as refused:
            ApiClient(server.url, token + "x").cards(None, 10)
        texts.append(str(refused.value))
    assert worker.fault == "must_enroll"
    assert texts and caplog.records
    for text in [caplog.text, *texts]:
        assert token not in text


def test_enrollment_code_is_one_time(server: DevServer) -> None:
    with ApiClient(server.url) as client:
        client.enroll("CODE-1", DEVICE_INFO)
        with pytest.raises(EnrollmentRefused, match="already used"):
            client.enroll("CODE-1", DEVICE_INFO)
        with pytest.raises(EnrollmentRefused, match="unknown"):
            client.enroll("NOPE", DEVICE_INFO)


# --- credential files ------------------------------------------------------------


def test_token_file_is_0600_from_birth(tmp_path: Path) -> None:
    old = os.umask(0)  # even a careless umask must not widen it
    try:
        write_enrollment(tmp_path / "state", Device("d", "v", "https://api"), "secret")
    finally:
        os.umask(old)
    for name in ("token", "device.json"):
        assert stat.S_IMODE((tmp_path / "state" / name).stat().st_mode) == 0o600
    credentials = load_credentials(tmp_path / "state")
    assert credentials is not None and credentials.token == "secret"


def test_systemd_credential_wins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_enrollment(tmp_path, Device("d", "v", "https://api"), "from-state-dir")
    credentials_directory = tmp_path / "creds"
    credentials_directory.mkdir()
    (credentials_directory / "token").write_text("from-systemd\n")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(credentials_directory))
    assert token_path(tmp_path) == credentials_directory / "token"
    credentials = load_credentials(tmp_path)
    assert credentials is not None and credentials.token == "from-systemd"


def test_not_enrolled_means_no_calls_and_no_fault(server: DevServer, tmp_path: Path) -> None:
    # An offline site never enrolls: that is its choice, not a fault to show.
    config = make_config(tmp_path, server)
    worker = SyncWorker(config)
    worker.run_once()
    assert worker.fault is None
    assert server.requests() == []
    with Store(config.storage.path) as store:
        assert store.get_meta(MUST_ENROLL_META) is None  # never refused, just not enrolled
