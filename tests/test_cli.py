"""The command line: `kiosk decode` and `kiosk demo`."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from kiosk.cli import main
from kiosk.demo import card_image


def test_decode_json_prints_one_object_per_file(tmp_path: Path) -> None:
    qr, bar, empty = tmp_path / "qr.png", tmp_path / "bar.png", tmp_path / "empty.png"
    card_image("A999123453", "qrcode").save(qr)
    card_image("A100000017", "code39").save(bar)
    card_image("", "").save(empty)
    result = CliRunner().invoke(main, ["decode", "--json", str(qr), str(bar), str(empty)])
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.output.splitlines()]
    assert [line["file"] for line in lines] == [str(qr), str(bar), str(empty)]
    assert [(s["type"], s["text"]) for s in lines[0]["symbols"]] == [("QRCODE", "A999123453")]
    assert [(s["type"], s["text"]) for s in lines[1]["symbols"]] == [("CODE39", "A100000017")]
    assert lines[2]["symbols"] == []
    polygon = lines[0]["symbols"][0]["polygon"]
    assert len(polygon) == 4 and all(0 <= x <= 640 and 0 <= y <= 480 for x, y in polygon)
    assert all(line["ms"] >= 0 for line in lines)


def test_decode_reads_real_photos(datasets: Path) -> None:
    photo = datasets / "zxing-cpp-samples" / "qrcode-1" / "1.png"
    expected = (datasets / "zxing-cpp-samples" / "qrcode-1" / "1.txt").read_text()
    result = CliRunner().invoke(main, ["decode", "--json", str(photo)])
    assert result.exit_code == 0
    assert [s["text"] for s in json.loads(result.output)["symbols"]] == [expected]


def test_demo_runs_every_scene_and_ends_with_summaries() -> None:
    result = CliRunner().invoke(main, ["demo"])
    assert result.exit_code == 0, result.output
    output = result.output
    for reason in ("ok", "expired", "unknown_card", "not_a_card", "already_used", "quota_full"):
        assert f"   {reason} " in output, reason
    assert "CHILD     refused" in output
    assert "ENTERED   1 adult, 2 children" in output
    assert output.rstrip().endswith("Demo finished.")
