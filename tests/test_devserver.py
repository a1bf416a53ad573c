"""The reference server: strict contract checks, and the `kiosk devserver` command."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from kiosk.devserver import DevServer, load_cards_csv, parse_fault, validate_event
from kiosk.sync import event_body
from tests.test_sync_helpers import DEVICE_INFO, record


def event(**changes: Any) -> dict[str, Any]:
    return event_body({**record().__dict__, "seq": 1}) | changes


@pytest.fixture
def api() -> Iterator[tuple[DevServer, httpx.Client, str]]:
    with DevServer(enroll_codes=["CODE-1"]) as server, httpx.Client(base_url=server.url) as http:
        answer = http.post("/v1/enroll", json={"code": "CODE-1", "device": DEVICE_INFO})
        assert answer.status_code == 201
        body = answer.json()
        http.headers["Authorization"] = f"Bearer {body['token']}"
        yield server, http, body["device_id"]


def post_events(http: httpx.Client, device_id: str, events: list[Any]) -> httpx.Response:
    batch_id = str(uuid.uuid4())
    return http.post(
        "/v1/events",
        json={"device_id": device_id, "batch_id": batch_id, "events": events},
        headers={"Idempotency-Key": batch_id},
    )


def test_events_are_deduped_and_validated_one_by_one(
    api: tuple[DevServer, httpx.Client, str],
) -> None:
    server, http, device_id = api
    good, bad = event(), event(reason="expired")  # expired does not fit accepted
    first = post_events(http, device_id, [good, bad]).json()["results"]
    assert [r["status"] for r in first] == ["stored", "invalid"]
    assert "reason" in first[1]["error"]
    again = post_events(http, device_id, [good]).json()["results"]
    assert again == [{"event_id": good["event_id"], "status": "duplicate"}]
    assert len(server.stored_events()) == 1


@pytest.mark.parametrize(
    ("change", "why"),
    [
        ({"event_id": "not-a-uuid"}, "event_id"),
        ({"seq": 0}, "seq"),
        ({"card_id": None}, "card_id"),
        ({"card_id": "a b"}, "card_id"),
        ({"scanned_at": "2026-01-01T10:00:00"}, "offset"),
        ({"clock_trusted": 1}, "clock_trusted"),
        ({"category": "music"}, "category"),
        ({"extra": 1}, "unknown fields"),
    ],
)
def test_validate_event(change: dict[str, Any], why: str) -> None:
    assert validate_event(event()) is None
    assert why in (validate_event(event(**change)) or "")


def test_not_a_card_has_no_card_id() -> None:
    assert validate_event(event(card_id=None, result="rejected", reason="not_a_card")) is None


def test_whole_batch_errors_and_tokens(api: tuple[DevServer, httpx.Client, str]) -> None:
    server, http, device_id = api
    assert http.post("/v1/events", json={"events": []}).status_code == 400
    mismatch = http.post(
        "/v1/events",
        json={"device_id": device_id, "batch_id": "b1", "events": [event()]},
        headers={"Idempotency-Key": "b2"},
    )
    assert mismatch.status_code == 400 and "Idempotency-Key" in mismatch.json()["error"]
    assert post_events(http, "someone-else", [event()]).status_code == 400
    for token in ("", "Bearer nope", "Basic abc"):
        answer = httpx.get(f"{server.url}/v1/cards", headers={"Authorization": token})
        assert answer.status_code == 401 and answer.json()["error"]


def test_cards_are_cursor_paged(api: tuple[DevServer, httpx.Client, str]) -> None:
    server, http, _ = api
    server.upsert_cards(
        {
            "card_id": f"A00000{n:04d}",
            "kind": "community",
            "status": "active",
            "valid_from": "2025-01-01",
            "valid_until": "2026-01-01",
            "children": "",
        }
        for n in range(5)
    )
    first = http.get("/v1/cards", params={"limit": 3}).json()
    assert len(first["cards"]) == 3 and first["more"] is True
    assert first["cards"][0]["children"] is None
    second = http.get("/v1/cards", params={"limit": 3, "since": first["next"]}).json()
    assert len(second["cards"]) == 2 and second["more"] is False
    assert http.get("/v1/cards", params={"since": "x"}).status_code == 400


def test_heartbeat_is_strict(api: tuple[DevServer, httpx.Client, str]) -> None:
    _, http, device_id = api
    beat = {
        "device_id": device_id,
        "software_version": "1",
        "queue_depth": 0,
        "quarantined": 0,
        "last_registry_sync": None,
        "registry_cards": 0,
        "camera_ok": True,
        "clock_synced": True,
        "disk_free_bytes": 1,
        "uptime_s": 1,
    }
    assert "server_time" in http.post("/v1/heartbeat", json=beat).json()
    assert http.post("/v1/heartbeat", json=beat | {"queue_depth": True}).status_code == 400


def test_cards_csv(tmp_path: Path) -> None:
    path = tmp_path / "cards.csv"
    path.write_text(
        "card_id,kind,status,valid_from,valid_until,children\n"
        "A999123453,personal,active,2025-01-01,2026-12-31,3\n"
        "X999000001,community,inactive,2025-01-01,2026-12-31,\n"
    )
    assert [c["children"] for c in load_cards_csv(path)] == [3, None]
    path.write_text("card_id,kind\nA999123453,personal\n")
    with pytest.raises(ValueError, match="header"):
        load_cards_csv(path)


def test_fault_specs() -> None:
    fault = parse_fault("429 count=2 retry_after=5 as_date=1 path=/v1/events after=1")
    assert (fault.kind, fault.count, fault.retry_after, fault.as_date, fault.after) == (
        "429",
        2,
        5.0,
        True,
        1,
    )
    with pytest.raises(ValueError):
        parse_fault("418")


def test_devserver_command_prints_url_and_code_and_obeys_admin(tmp_path: Path) -> None:
    cards = tmp_path / "cards.csv"
    cards.write_text(
        "card_id,kind,status,valid_from,valid_until,children\n"
        "A999123453,personal,active,2025-01-01,2026-12-31,3\n"
    )
    command = [
        sys.executable,
        "-c",
        "from kiosk.cli_api import devserver; devserver()",
        "--port",
        "0",
        "--cards",
        str(cards),
        "--enroll-code",
        "PILOT-7",
        "--data",
        str(tmp_path / "central.db"),
        "--admin-token",
        "adm",
    ]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, cwd=Path.cwd())
    try:
        assert process.stdout is not None
        url = process.stdout.readline().split()[-1]
        assert process.stdout.readline().startswith("enrollment code: PILOT-7")
        admin = {"X-Admin-Token": "adm"}
        assert httpx.post(f"{url}/admin/faults", json={"kind": "503"}).status_code == 403
        fault = {"kind": "503", "path": "/v1/enroll"}
        assert httpx.post(f"{url}/admin/faults", json=fault, headers=admin).status_code == 200
        enroll = {"code": "PILOT-7", "device": DEVICE_INFO}
        assert httpx.post(f"{url}/v1/enroll", json=enroll).status_code == 503
        token = httpx.post(f"{url}/v1/enroll", json=enroll).json()["token"]
        cards_page = httpx.get(f"{url}/v1/cards", headers={"Authorization": f"Bearer {token}"})
        assert [c["card_id"] for c in cards_page.json()["cards"]] == ["A999123453"]
        seen = httpx.get(f"{url}/admin/requests", headers=admin).json()["requests"]
        assert [r["status"] for r in seen] == [503, 201, 200]
    finally:
        process.terminate()
        process.wait(timeout=10)
    assert json.dumps(seen).count("arrived") == 3


def test_client_bodies_match_the_contract() -> None:
    yaml = pytest.importorskip("yaml")
    jsonschema = pytest.importorskip("jsonschema")
    contract = yaml.safe_load((Path(__file__).parent.parent / "docs/central-api.yaml").read_text())
    jsonschema.validate(event(), contract["components"]["schemas"]["Event"])
    jsonschema.validate(
        {
            "card_id": "A999123453",
            "kind": "personal",
            "status": "active",
            "valid_from": "2025-01-01",
            "valid_until": "2026-01-01",
            "children": None,
        },
        contract["components"]["schemas"]["Card"],
    )
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(event(extra=1), contract["components"]["schemas"]["Event"])
