"""`kiosk enroll`, `kiosk sync` and `kiosk status`, and a SIGKILL in mid-upload."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from click.testing import CliRunner

from kiosk.cli_api import enroll, status, sync
from kiosk.config import load_config
from kiosk.devserver import DevServer, Fault
from kiosk.store import Store
from kiosk.sync import MUST_ENROLL_META, SyncWorker
from tests.test_sync_helpers import (
    add_records,
    assert_exactly_once,
    drain,
    server_fixture,  # noqa: F401 (a fixture)
)


def write_config(tmp_path: Path, server: DevServer, extra: str = "") -> Path:
    path = tmp_path / "kiosk.toml"
    path.write_text(
        f'[storage]\npath = "{tmp_path / "state" / "kiosk.db"}"\nmin_free_mb = 0\n'
        f'[api]\nbase_url = "{server.url}"\nbatch_size = 5\ntimeout_seconds = 2\n{extra}'
    )
    return path


def test_enroll_sync_status(server: DevServer, tmp_path: Path) -> None:
    config = write_config(tmp_path, server)
    runner = CliRunner()
    before = json.loads(runner.invoke(status, ["--config", str(config), "--json"]).output)
    assert before["enrolled"] is False and before["clock_trusted"] is None
    result = runner.invoke(enroll, ["CODE-1", "--config", str(config)])
    assert result.exit_code == 0, result.output
    assert "enrolled device_id=" in result.output
    assert json.loads((tmp_path / "state" / "device.json").read_text())["api"] == server.url
    again = runner.invoke(enroll, ["CODE-1", "--config", str(config)])
    assert again.exit_code == 1 and "already used" in again.output
    ids = add_records(tmp_path / "state" / "kiosk.db", 12)
    add_records(tmp_path / "state" / "kiosk.db", 1, card_id=None, reason="ok")  # invalid
    result = runner.invoke(sync, ["--config", str(config)])
    assert result.exit_code == 0, result.output
    assert "stored=12" in result.output and "quarantined=1" in result.output
    assert "registry updated=3" in result.output
    with Store(tmp_path / "state" / "kiosk.db") as store:
        store.put_meta("clock_trusted", "1")
    report = json.loads(runner.invoke(status, ["--config", str(config), "--json"]).output)
    assert report["enrolled"] is True
    assert (report["queue_depth"], report["delivered"], report["quarantined"]) == (0, 12, 1)
    assert report["registry_cards"] == 3 and report["clock_trusted"] is True
    assert report["last_upload"] and report["last_registry_sync"]
    assert "card_id" in report["quarantined_records"][0]["error"]
    assert sorted(e["event_id"] for e in server.stored_events()) == sorted(ids)
    human = runner.invoke(status, ["--config", str(config)]).output
    assert "quarantined:         1" in human and "clock trusted:       yes" in human


def test_status_says_enroll_again_after_401(server: DevServer, tmp_path: Path) -> None:
    config = write_config(tmp_path, server)
    runner = CliRunner()
    assert runner.invoke(enroll, ["CODE-1", "--config", str(config)]).exit_code == 0
    add_records(tmp_path / "state" / "kiosk.db", 2)
    server.inject(Fault("401", path="/v1/events"))
    result = runner.invoke(sync, ["--config", str(config)])
    assert result.exit_code == 1 and "token" in result.output
    report = json.loads(runner.invoke(status, ["--config", str(config), "--json"]).output)
    assert (report["enrolled"], report["must_enroll"], report["queue_depth"]) == (False, True, 2)
    assert "enroll" in runner.invoke(status, ["--config", str(config)]).output
    assert runner.invoke(enroll, ["CODE-2", "--config", str(config)]).exit_code == 0
    with Store(tmp_path / "state" / "kiosk.db") as store:
        assert store.get_meta(MUST_ENROLL_META) is None


def test_bad_config_exits_2_naming_the_key(server: DevServer, tmp_path: Path) -> None:
    config = write_config(tmp_path, server, "max_backoff_seconds = -1\n")
    for command, args in ((status, []), (sync, []), (enroll, ["CODE-1"])):
        result = CliRunner().invoke(command, [*args, "--config", str(config)])
        assert result.exit_code == 2 and "api.max_backoff_seconds" in result.output


def test_sigkill_in_mid_upload_loses_and_duplicates_nothing(
    server: DevServer, tmp_path: Path
) -> None:
    config_file = write_config(tmp_path, server)
    assert CliRunner().invoke(enroll, ["CODE-1", "--config", str(config_file)]).exit_code == 0
    database = tmp_path / "state" / "kiosk.db"
    ids = add_records(database, 12)
    # The server stores the first batch, then sits on its answer.
    server.inject(Fault("slow", path="/v1/events", delay=5))
    process = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from kiosk.cli_api import sync; sync()",
            "--config",
            str(config_file),
        ],
        cwd=Path.cwd(),
        env=os.environ | {"PYTHONPATH": str(Path.cwd())},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while len(server.stored_events()) < 5 and time.monotonic() < deadline:
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=10)
    assert len(server.stored_events()) == 5
    with Store(database) as store:
        assert store.delivered_count() == 0  # the 200 never came
    drain(SyncWorker(load_config(config_file), backoff_base=0.01), database)
    assert_exactly_once(server, ids, database)
