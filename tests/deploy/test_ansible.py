"""provision/ansible: syntax check, ansible-lint (production), a --check rehearsal, the template."""

from __future__ import annotations

import json
import sys
import tomllib
from pathlib import Path

import pytest

from kiosk.config import parse_config

from .conftest import ANSIBLE_DIR, missing, require_tool, run

try:  # PyYAML comes with ansible-core; without it the tests below fail in CI, skip elsewhere
    import yaml
except ImportError:  # pragma: no cover
    yaml = None


def load_yaml(text: str) -> object:
    if yaml is None:
        missing("PyYAML is not installed (it comes with ansible-core)")
    return yaml.safe_load(text)


ROLE = ANSIBLE_DIR / "roles/kiosk"


def ansible(tool: str, *args: str | Path) -> tuple[int, str]:
    result = run(require_tool(tool), *args, cwd=ANSIBLE_DIR, env={"ANSIBLE_NOCOLOR": "1"})
    return result.returncode, result.stdout + result.stderr


def test_playbook_syntax() -> None:
    code, output = ansible("ansible-playbook", "--syntax-check", "site.yml")
    assert code == 0, output


def test_ansible_lint_production_profile() -> None:
    code, output = ansible("ansible-lint", "--offline", "--profile", "production", "site.yml")
    assert code == 0, output
    assert "Profile 'production' was required, and it passed" in output


def test_check_run_on_localhost(tmp_path: Path, stand_in_wheel: Path) -> None:
    inventory = tmp_path / "hosts.yml"
    host = {"ansible_connection": "local", "ansible_python_interpreter": sys.executable}
    inventory.write_text(json.dumps({"kiosks": {"hosts": {"localhost": host}}}))
    # apt cannot rehearse packages that only Raspberry Pi OS has; a host that runs
    # systemd would try services not installed yet, so the guard is tested where it is absent.
    skip = ["kiosk_apt"] + (["kiosk_services"] if Path("/run/systemd/system").is_dir() else [])
    code, output = ansible(
        "ansible-playbook",
        "--check",
        "-i",
        inventory,
        "--skip-tags",
        ",".join(skip),
        "-e",
        json.dumps(
            {
                "kiosk_wheel": str(stand_in_wheel),
                "kiosk_venue_id": "library-1",
                "kiosk_enroll_code": "C-1",
                "kiosk_api_url": "https://api.example.fi",
                "kiosk_overlay_root": True,
            }
        ),
        "site.yml",
    )
    assert code == 0, output
    assert "failed=0" in output
    for task in (
        "Create the kiosk user",
        "Write the kiosk config",
        "Install the systemd units",
        "Point the bind mount at the writable partition",
        "Enroll the kiosk",
    ):
        assert f"TASK [kiosk : {task}]" in output, f"the rehearsal skipped {task!r}"


def render_config(tmp_path: Path, **host_vars: object) -> dict[str, object]:
    """Render the role's config template the way a play would, and parse the TOML."""
    defaults = load_yaml((ROLE / "defaults/main.yml").read_text())
    assert isinstance(defaults, dict)
    variables = {key: value for key, value in defaults.items() if "{{" not in str(value)}
    variables.update(host_vars)
    (tmp_path / "vars.json").write_text(json.dumps(variables))
    dest = tmp_path / "kiosk.toml"
    code, output = ansible(
        "ansible",
        "localhost",
        "-c",
        "local",
        "-i",
        "localhost,",
        "-e",
        f"ansible_python_interpreter={sys.executable}",
        "-m",
        "ansible.builtin.template",
        "-a",
        f"src={ROLE / 'templates/kiosk.toml.j2'} dest={dest}",
        "-e",
        f"@{tmp_path / 'vars.json'}",
    )
    assert code == 0, output
    return tomllib.loads(dest.read_text())


def test_config_template_defaults_match_the_wiring(tmp_path: Path) -> None:
    document = render_config(tmp_path, kiosk_venue_id="library-1")
    config = parse_config(document)
    assert config.venue.id == "library-1"
    assert config.gpio.pins() == {
        "led_green": 17,
        "led_red": 27,
        "led_amber": 22,
        "buzzer": 18,
        "child_button": 5,
        "done_button": 6,
    }
    assert config.gpio.relay is None


@pytest.mark.parametrize("relay", [23, "23"])
def test_config_template_per_host_values(tmp_path: Path, relay: object) -> None:
    document = render_config(
        tmp_path,
        kiosk_venue_id="pool-1",
        kiosk_category="sports",
        kiosk_mode="course",
        kiosk_gpio_relay=relay,
        kiosk_gpio_buzzer=False,
        kiosk_api_url="https://api.example.fi",
    )
    config = parse_config(document)
    assert (config.venue.category, config.venue.mode) == ("sports", "course")
    assert config.gpio.relay == 23 and config.gpio.buzzer is None
    assert config.api.base_url == "https://api.example.fi"
    # Only what a host decides is named; every other key keeps its default.
    assert set(document) == {"venue", "gpio", "api"}
