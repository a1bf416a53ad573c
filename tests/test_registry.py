"""``kiosk registry import`` and ``kiosk registry show``: good files, bad rows, atomicity."""

from __future__ import annotations

import datetime as dt
import os
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner

from kiosk.cli_rules import registry as registry_command
from kiosk.config import Config
from kiosk.counters import LAST_REGISTRY_SYNC, TIME_FLOOR
from kiosk.registry import CHUNK, HEADER, RegistryImportError, import_csv
from kiosk.store import CardRow, Store
from tests.conftest import card
from tests.kiosk_process import save_good_time, write_config

HEADER_LINE = ",".join(HEADER)
GOOD = [
    "a999123453,personal,active,2026-01-01,2026-12-31,2",
    "Z400000041,community,active,2026-02-01,2027-01-31,",
    " A200000025 ,personal,inactive,2025-01-01,2025-12-31,0",
]


def write_csv(path: Path, *lines: str, header: str = HEADER_LINE) -> Path:
    path.write_text("\n".join([header, *lines]) + "\n", encoding="utf-8")
    return path


def cards(store: Store) -> dict[str, CardRow]:
    ids = [row[0] for row in store.conn.execute("SELECT card_id FROM cards")]
    return {card_id: row for card_id in ids if (row := store.card(card_id))}


def test_a_good_file_is_imported_with_ids_normalised_like_a_scan(tmp_path: Path) -> None:
    save_good_time(tmp_path / "kiosk.db")
    before = dt.datetime.now(dt.UTC)
    with Store(tmp_path / "kiosk.db") as store:
        assert import_csv(store, write_csv(tmp_path / "r.csv", *GOOD)) == 3
        stored = cards(store)
        refreshed = dt.datetime.fromisoformat(store.get_meta(LAST_REGISTRY_SYNC) or "")
    assert sorted(stored) == ["A200000025", "A999123453", "Z400000041"]
    first = stored["A999123453"]
    assert (first.kind, first.status, first.valid_from, first.valid_until, first.children) == (
        "personal",
        "active",
        dt.date(2026, 1, 1),
        dt.date(2026, 12, 31),
        2,
    )
    assert stored["Z400000041"].children is None  # empty: not registered
    assert stored["A200000025"].status == "inactive"
    # The import makes the registry fresh, as of now.
    assert before - dt.timedelta(seconds=1) <= refreshed <= dt.datetime.now(dt.UTC)
    assert first.updated_at == refreshed.isoformat()


def test_an_import_replaces_the_cards_it_lists_and_keeps_the_others(tmp_path: Path) -> None:
    with Store(tmp_path / "kiosk.db") as store:
        with store.transaction() as conn:
            store.upsert_cards(conn, [card("A999123453", children=5), card("A100000017")])
        import_csv(store, write_csv(tmp_path / "r.csv", GOOD[0]))
        stored = cards(store)
    assert stored["A999123453"].children == 2
    assert "A100000017" in stored


BAD_ROWS = [
    ("A1,personal,active,2026-01-01,2026-12-31,2", "card_id is not a card id"),
    ("ABCDEFGH,personal,active,2026-01-01,2026-12-31,2", "card_id is not a card id"),
    ("A999-12345,personal,active,2026-01-01,2026-12-31,2", "card_id is not a card id"),
    ("A100000017,family,active,2026-01-01,2026-12-31,2", "kind must be personal or community"),
    ("A100000017,personal,lost,2026-01-01,2026-12-31,2", "status must be active or inactive"),
    ("A100000017,personal,active,1.1.2026,2026-12-31,2", "valid_from is not a date"),
    ("A100000017,personal,active,2026-01-01,2026-02-30,2", "valid_until is not a date"),
    ("A100000017,personal,active,2026-12-31,2026-01-01,2", "valid_from is after valid_until"),
    ("A100000017,personal,active,2026-01-01,2026-12-31,-1", "children is not a number"),
    ("A100000017,personal,active,2026-01-01,2026-12-31,two", "children is not a number"),
    ("A100000017,personal,active,2026-01-01,2026-12-31,100", "children is not a number"),
    ("A100000017,personal,active,2026-01-01,2026-12-31", "expected 6 fields, found 5"),
    ("A100000017,personal,active,2026-01-01,2026-12-31,1,x", "expected 6 fields, found 7"),
    ("a999123453,personal,active,2026-01-01,2026-12-31,1", "the card is listed already on line 2"),
]


@pytest.mark.parametrize(("bad", "message"), BAD_ROWS, ids=[m for _, m in BAD_ROWS])
def test_a_bad_row_names_its_line_and_nothing_of_the_file_is_applied(
    tmp_path: Path, bad: str, message: str
) -> None:
    # A chunk of good rows first, so the bad one is in the second chunk.
    filler = [f"B{n:09d},personal,active,2026-01-01,2026-12-31,1" for n in range(CHUNK)]
    path = write_csv(tmp_path / "r.csv", GOOD[0], *filler, bad, GOOD[1])
    with Store(tmp_path / "kiosk.db") as store:
        with store.transaction() as conn:
            store.upsert_cards(conn, [card("A999123453", children=5)])
            store.set_meta(conn, LAST_REGISTRY_SYNC, "2026-11-01T00:00:00+00:00")
        with pytest.raises(RegistryImportError) as raised:
            import_csv(store, path)
        assert store.card_count() == 1
        assert store.card("A999123453") == card("A999123453", children=5)
        assert store.get_meta(LAST_REGISTRY_SYNC) == "2026-11-01T00:00:00+00:00"
    assert str(raised.value).startswith(f"line {CHUNK + 3}: {message}")
    assert str(raised.value).endswith("; nothing was imported")
    # A card id is never echoed: the operator has the line number.
    assert "A1000" not in str(raised.value)


@pytest.mark.parametrize(
    "header",
    [
        "card_id,kind,status,valid_from,valid_until",
        "id,kind,status,valid_from,valid_until,children",
        "A999123453,personal,active,2026-01-01,2026-12-31,2",
    ],
)
def test_a_wrong_header_is_line_1(tmp_path: Path, header: str) -> None:
    with (
        Store(tmp_path / "kiosk.db") as store,
        pytest.raises(RegistryImportError, match=r"^line 1: the header"),
    ):
        import_csv(store, write_csv(tmp_path / "r.csv", *GOOD, header=header))


def test_line_numbers_count_blank_lines_and_quoted_line_breaks(tmp_path: Path) -> None:
    path = tmp_path / "r.csv"
    path.write_text(
        "\ufeff" + HEADER_LINE + "\r\n"  # a spreadsheet's byte-order mark and CRLFs
        '"A999123453",personal,active,2026-01-01,2026-12-31,"2"\r\n'
        "\r\n"
        '"A100000017\n",personal,active,2026-01-01,2026-12-31,1\r\n'
        "A100000025,personal,active,2026-01-01,2026-13-01,1\r\n"
    )
    with (
        Store(tmp_path / "kiosk.db") as store,
        pytest.raises(RegistryImportError, match=r"^line 6: valid_until"),
    ):
        import_csv(store, path)


def test_a_header_only_file_imports_nothing_and_does_not_make_the_registry_fresh(
    tmp_path: Path,
) -> None:
    with Store(tmp_path / "kiosk.db") as store:
        assert import_csv(store, write_csv(tmp_path / "r.csv")) == 0
        assert store.get_meta(LAST_REGISTRY_SYNC) is None


def test_the_refresh_time_comes_from_the_trusted_clock_not_a_wall_clock_at_1970(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    floor = dt.datetime.now(dt.UTC)
    monkeypatch.setattr(time, "time", lambda: 0.0)
    with Store(tmp_path / "kiosk.db") as store:
        with store.transaction() as conn:
            store.set_meta(conn, TIME_FLOOR, floor.isoformat())
        import_csv(store, write_csv(tmp_path / "r.csv", GOOD[0]))
        refreshed = dt.datetime.fromisoformat(store.get_meta(LAST_REGISTRY_SYNC) or "")
    assert dt.timedelta(0) <= refreshed - floor < dt.timedelta(minutes=1)


@pytest.mark.skipif(not os.environ.get("KIOSK_FULL"), reason="a million rows: KIOSK_FULL=1")
@pytest.mark.full
def test_a_million_rows_import_in_reasonable_time(tmp_path: Path) -> None:
    lines = [f"A{n:09d},personal,active,2026-01-01,2026-12-31,{n % 5}" for n in range(1_000_000)]
    path = write_csv(tmp_path / "r.csv", *lines)
    with Store(tmp_path / "kiosk.db") as store:
        started = time.monotonic()
        assert import_csv(store, path) == 1_000_000
        assert time.monotonic() - started < 60
        started = time.monotonic()
        for n in range(0, 1_000_000, 1000):
            assert store.card(f"A{n:09d}") is not None
        assert time.monotonic() - started < 1.0  # a thousand lookups


# --- the commands -----------------------------------------------------------------


@pytest.fixture
def config_file(tmp_path: Path, kiosk_config: Config) -> Path:
    return write_config(kiosk_config, tmp_path / "kiosk.toml")


def test_registry_import_command_reports_the_count(config_file: Path, tmp_path: Path) -> None:
    path = write_csv(tmp_path / "r.csv", *GOOD)
    result = CliRunner().invoke(
        registry_command, ["import", "--config", str(config_file), str(path)]
    )
    assert result.exit_code == 0
    assert result.output == "imported 3 cards; the registry now holds 3\n"


def test_registry_import_command_fails_with_the_line_and_exit_1(
    config_file: Path, tmp_path: Path
) -> None:
    path = write_csv(tmp_path / "r.csv", GOOD[0], "A100000017,personal,gone,2026-01-01,2026-12-31,")
    result = CliRunner().invoke(
        registry_command, ["import", "--config", str(config_file), str(path)]
    )
    assert result.exit_code == 1
    assert result.stderr == "line 3: status must be active or inactive; nothing was imported\n"


def test_registry_import_of_a_missing_file_is_one_line(config_file: Path, tmp_path: Path) -> None:
    missing = tmp_path / "nope.csv"
    result = CliRunner().invoke(
        registry_command, ["import", "--config", str(config_file), str(missing)]
    )
    assert (result.exit_code, result.stderr) == (1, f"{missing}: file not found\n")


def test_registry_show_prints_the_stored_row(
    config_file: Path, registry: Callable[..., None]
) -> None:
    registry(
        card(
            "A999123453",
            valid_from=dt.date(2026, 1, 1),
            valid_until=dt.date(2026, 12, 31),
            children=None,
        )
    )
    result = CliRunner().invoke(
        registry_command, ["show", "--config", str(config_file), "a999123453"]
    )
    assert result.exit_code == 0
    assert result.output.splitlines() == [
        "card         A999123453",
        "kind         personal",
        "status       active",
        "valid        2026-01-01 to 2026-12-31 (inclusive)",
        "children     not registered",
        "updated_at   2026-11-01T00:00:00+00:00",
    ]


def test_registry_show_of_an_unknown_card_exits_1_with_one_line(
    config_file: Path, registry: Callable[..., None]
) -> None:
    registry(card("A999123453"))
    result = CliRunner().invoke(
        registry_command, ["show", "--config", str(config_file), "A777777777"]
    )
    assert (result.exit_code, result.output) == (1, "A777777777: not in the local registry\n")


def test_registry_commands_with_a_bad_config_exit_2(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[venue]\ndaily_cap = -1\n")
    result = CliRunner().invoke(registry_command, ["show", "--config", str(bad), "A999123453"])
    assert result.exit_code == 2
    assert "venue.daily_cap" in result.stderr
