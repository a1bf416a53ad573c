"""The config file: defaults, the documented example, and one clear error per mistake."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from kiosk.cli import main
from kiosk.config import SCHEMA, Config, load_config, parse_config
from kiosk.errors import ConfigError

REPO = Path(__file__).resolve().parent.parent
EXAMPLE = REPO / "config" / "kiosk.toml"


def test_the_shipped_config_documents_every_key_with_its_default() -> None:
    data = tomllib.loads(EXAMPLE.read_text())
    assert parse_config(data) == Config()
    for section, keys in SCHEMA.items():
        assert set(data[section]) == set(keys), f"[{section}] in config/kiosk.toml"


def test_an_empty_file_gives_every_default(tmp_path: Path) -> None:
    path = tmp_path / "kiosk.toml"
    path.write_text("")
    assert load_config(path) == Config()


def test_a_site_file_names_only_what_differs(tmp_path: Path) -> None:
    path = tmp_path / "kiosk.toml"
    path.write_text(
        '[venue]\nid = "uimahalli-1"\ncategory = "sports"\ndaily_cap = 50\n'
        'closed_dates = ["2026-12-24"]\n[venue.opening_hours]\nmon = "06:00-21:00"\n'
        "[gpio]\nrelay = 23\nled_amber = false\n"
    )
    config = load_config(path)
    assert config.venue.category == "sports" and config.venue.daily_cap == 50
    assert config.venue.opening_hours[0][0][0].hour == 6
    assert config.gpio.relay == 23 and config.gpio.led_amber is None
    assert config.camera == Config().camera


def test_kiosk_config_environment_variable_names_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "site.toml"
    path.write_text('[venue]\nid = "from-env"\n')
    monkeypatch.setenv("KIOSK_CONFIG", str(path))
    assert load_config().venue.id == "from-env"


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("[camera]\nfsp = 30\n", "camera.fsp"),
        ("[cameras]\nfps = 30\n", "cameras"),
        ('[camera]\nfps = "fast"\n', "camera.fps"),
        ("[gpio]\nled_green = 40\n", "gpio.led_green"),
        ("[gpio]\nled_green = 27\n", "gpio.led_red"),  # the clash names both keys
        ('[venue]\ncategory = "circus"\n', "venue.category"),
        ('[venue]\ntimezone = "Mars/Olympus"\n', "venue.timezone"),
        ('[venue.opening_hours]\nmon = "21:00-06:00"\n', "venue.opening_hours"),
        ('[venue]\nclosed_dates = ["24.12.2026"]\n', "venue.closed_dates"),
        ('[decoder]\nsymbologies = ["ean13"]\n', "decoder.symbologies"),
        ('[api]\nbase_url = "ftp://example.fi"\n', "api.base_url"),
        ('[companions]\ndone_code = "kaiku:child"\n', "companions.done_code"),
        ("[rules]\nrepeat_suppress_seconds = true\n", "rules.repeat_suppress_seconds"),
    ],
)
def test_a_bad_config_exits_2_with_one_line_naming_the_key(
    tmp_path: Path, text: str, key: str
) -> None:
    path = tmp_path / "kiosk.toml"
    path.write_text(text)
    result = CliRunner().invoke(main, ["run", "--config", str(path)])
    assert result.exit_code == 2
    assert result.output.startswith(f"config error: {key}: ")
    assert result.output.count("\n") == 1


def test_a_missing_or_broken_file_exits_2(tmp_path: Path) -> None:
    runner = CliRunner()
    missing = runner.invoke(main, ["run", "--config", str(tmp_path / "none.toml")])
    assert missing.exit_code == 2 and "file not found" in missing.output
    broken = tmp_path / "broken.toml"
    broken.write_text("[venue\n")
    result = runner.invoke(main, ["run", "--config", str(broken)])
    assert result.exit_code == 2 and "not valid TOML" in result.output


toml_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**40), 2**40)
    | st.floats(allow_nan=False)
    | st.text(max_size=30),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=10,
)
section_names = st.sampled_from([*SCHEMA, "other"])


@st.composite
def config_documents(draw: st.DrawFn) -> dict[str, object]:
    document: dict[str, object] = {}
    for section in draw(st.lists(section_names, max_size=4, unique=True)):
        keys = [*SCHEMA.get(section, {}), "unknown"]
        document[section] = draw(st.dictionaries(st.sampled_from(keys), toml_values, max_size=4))
    return document


@settings(max_examples=300, deadline=None)
@given(config_documents())
def test_any_document_gives_a_config_or_a_config_error_naming_a_key(
    document: dict[str, object],
) -> None:
    try:
        parse_config(document)
    except ConfigError as error:
        assert error.key.split(".")[0] in document or error.key.startswith("companions")
