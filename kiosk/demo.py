"""``kiosk demo``: the real daemon on generated card images, with mock pins.

The demo makes card images (QR with segno, Code 39 with python-barcode), a small
card registry, and runs the real :class:`~kiosk.daemon.Daemon` over each scene's
images through the ``dir:`` source. Every decision is printed as it happens,
with the signal panel, and a summary table closes each scene.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import io
import logging
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from PIL import Image

from kiosk.config import Config
from kiosk.counters import LAST_REGISTRY_SYNC
from kiosk.daemon import Daemon, ScanReport
from kiosk.devserver import DevServer
from kiosk.store import CardRow, Store
from kiosk.sync import enroll_device

__all__ = ["Scene", "card_image", "demo_cards", "demo_config", "demo_scenes", "run_demo"]

FRAME_SIZE = (640, 480)
CHILD = "KAIKU:CHILD"
DONE = "KAIKU:DONE"
BLANK = ""
# Two empty frames' worth of images: 1.6 s at the demo's pace, well past its
# one-second repeat window, so the same sheet shown again counts again.
GAP = [(BLANK, "", "(gap)")] * 2


def demo_cards(today: dt.date) -> list[CardRow]:
    year = dt.timedelta(days=365)
    stamp = dt.datetime.now(dt.UTC).isoformat()

    def card(
        card_id: str, kind: str, children: int | None, start: dt.date, end: dt.date
    ) -> CardRow:
        return CardRow(card_id, kind, "active", start, end, children, stamp)

    return [
        card("A999123453", "personal", 0, today - year / 2, today + year / 2),
        card("A100000017", "personal", None, today - year / 4, today + year),
        card("A200000025", "personal", 1, today - 2 * year, today - year),
        card("A300000033", "personal", 2, today - year / 3, today + year / 2),
        card("Z400000041", "community", None, today - year / 3, today + year / 2),
        card("A500000059", "personal", 0, today - year / 3, today + year / 2),
    ]


@dataclasses.dataclass(frozen=True)
class Scene:
    """One venue and what is shown to its kiosk, in order."""

    title: str
    venue: dict[str, object]
    shows: Sequence[tuple[str, str, str]]  # (code text, symbology, what it is)


def demo_scenes() -> list[Scene]:
    museum = Scene(
        "Museum front desk (culture, tickets)",
        {"id": "museum-1", "category": "culture", "mode": "ticket"},
        [
            ("A999123453", "qrcode", "a valid card as QR"),
            ("A999123453", "qrcode", "the same card held up again at once: one scan"),
            ("A100000017", "code39", "a valid card as Code 39"),
            ("A200000025", "qrcode", "an expired card"),
            ("A777777777", "qrcode", "a card the registry does not know"),
            ("https://example.com/win-a-prize", "qrcode", "a URL that is not a card"),
            ("A300000033", "qrcode", "a card with two registered children"),
            (CHILD, "qrcode", "first child"),
            *GAP,
            (CHILD, "qrcode", "second child"),
            *GAP,
            (CHILD, "qrcode", "a third child: over the card's limit"),
            (DONE, "qrcode", "the holder is done"),
            ("Z400000041", "code39", "a community card with a small group"),
            (CHILD, "qrcode", "group member 1"),
            *GAP,
            (CHILD, "qrcode", "group member 2"),
            *GAP,
            (CHILD, "qrcode", "group member 3"),
            (DONE, "qrcode", "the group is in"),
            ("A999123453", "qrcode", "the first card again: already used"),
        ],
    )
    course = Scene(
        "Adult-education course (education, course places)",
        {"id": "opisto-1", "category": "education", "mode": "course"},
        [
            ("A300000033", "qrcode", "a card at a course"),
            (CHILD, "qrcode", "a child: courses admit no children"),
        ],
    )
    pool = Scene(
        "Swimming hall with a daily cap of 3 free entries (sports)",
        {"id": "uimahalli-1", "category": "sports", "mode": "ticket", "daily_cap": 3},
        [
            ("A300000033", "qrcode", "a holder with two children"),
            (CHILD, "qrcode", "first child"),
            *GAP,
            (CHILD, "qrcode", "second child: the cap is reached"),
            (DONE, "qrcode", "done"),
            ("A500000059", "code39", "the next holder: quota full"),
        ],
    )
    return [museum, course, pool]


def card_image(text: str, symbology: str) -> Image.Image:
    """A 640x480 frame showing ``text`` as a QR code or Code 39 barcode on a card."""
    frame = Image.new("L", FRAME_SIZE, 255)
    if not text:
        return frame
    if symbology == "code39":
        from barcode import Code39
        from barcode.writer import ImageWriter

        code = Code39(text, writer=ImageWriter(), add_checksum=False)
        buffer = io.BytesIO()
        code.write(buffer, options={"module_width": 0.3, "module_height": 12, "write_text": False})
    else:
        import segno

        buffer = io.BytesIO()
        segno.make(text, error="m", micro=False).save(buffer, kind="png", scale=6, border=4)
    buffer.seek(0)
    symbol = Image.open(buffer).convert("L")
    symbol.thumbnail((FRAME_SIZE[0] - 40, FRAME_SIZE[1] - 40))
    frame.paste(symbol, ((FRAME_SIZE[0] - symbol.width) // 2, (FRAME_SIZE[1] - symbol.height) // 2))
    return frame


def demo_config(workdir: Path, scene: Scene, base: Config | None = None) -> Config:
    """The kiosk config a scene runs with: mock pins, a dir: source, its own store."""
    config = base or Config()
    config = config.replace("venue", **scene.venue)
    config = config.replace(
        "camera",
        source=f"dir:{workdir / 'images'}",
        fps=10,
        frames_per_image=3,
        blank_frames=3,
    )
    config = config.replace("gpio", pin_factory="mock", relay=23)
    config = config.replace("storage", path=workdir / "kiosk.db")
    # Batches go up every second, so they can be seen arriving.
    config = config.replace("api", upload_interval_seconds=1.0)
    # Scenes follow each other fast; a code counts again after a one-second gap.
    return config.replace("rules", repeat_suppress_seconds=1.0)


def prepare_scene(workdir: Path, scene: Scene, today: dt.date) -> None:
    images = workdir / "images"
    images.mkdir(parents=True, exist_ok=True)
    for number, (text, symbology, _) in enumerate(scene.shows, start=1):
        card_image(text, symbology).save(images / f"{number:03d}.png")
    with Store(workdir / "kiosk.db") as store, store.transaction() as conn:
        store.upsert_cards(conn, demo_cards(today))
        store.set_meta(conn, LAST_REGISTRY_SYNC, dt.datetime.now(dt.UTC).isoformat())


def summary(store: Store) -> list[tuple[str, int, int, int]]:
    """(reason, scans, adults, children) per reason, from the store."""
    rows = store.conn.execute(
        "SELECT reason, count(*), sum(adults), sum(children) FROM events"
        " GROUP BY reason ORDER BY min(seq)"
    )
    return [(row[0], row[1], row[2], row[3]) for row in rows]


class _BatchEcho(logging.Handler):
    """Shows each batch the reference server stores, as it arrives."""

    def __init__(self, echo: Callable[[str], None]) -> None:
        super().__init__(logging.INFO)
        self._echo = echo

    def emit(self, record: logging.LogRecord) -> None:
        if record.getMessage().startswith("events ") and isinstance(record.args, tuple):
            _, batch, stored, duplicate, invalid = record.args
            self._echo(
                f"   central API ← batch {str(batch)[:8]}: {stored} stored,"
                f" {duplicate} duplicate, {invalid} invalid"
            )


@contextlib.contextmanager
def central_api(echo: Callable[[str], None], today: dt.date) -> Iterator[DevServer]:
    """The reference server on loopback, with the demo's cards, echoing batches."""
    cards = [
        {**card.as_row(), "valid_from": card.valid_from.isoformat()} for card in demo_cards(today)
    ]
    handler = _BatchEcho(echo)
    server_log = logging.getLogger("kiosk.devserver")
    server_log.addHandler(handler)
    server_log.setLevel(logging.INFO)
    server_log.propagate = False  # the server's own request log would drown the demo
    try:
        with DevServer(cards=cards) as server:
            yield server
    finally:
        server_log.removeHandler(handler)
        server_log.propagate = True


def run_demo(
    workdir: Path,
    echo: Callable[[str], None],
    format_report: Callable[[ScanReport], str],
) -> list[list[tuple[str, int, int, int]]]:
    """Run every scene against the reference central API; returns each scene's summary."""
    today = dt.datetime.now(dt.UTC).date()
    results = []
    with central_api(echo, today) as server:
        echo(f"Reference central API (kiosk devserver) at {server.url}")
        for number, scene in enumerate(demo_scenes(), start=1):
            scene_dir = workdir / f"scene-{number}"
            prepare_scene(scene_dir, scene, today)
            echo(f"\n== {scene.title} ==")
            for index, (_, _, what) in enumerate(scene.shows, start=1):
                if what != "(gap)":
                    echo(f"   image {index:03d}: {what}")
            echo("")
            config = demo_config(scene_dir, scene)
            code = f"DEMO-{number}"
            server.add_enroll_code(code, venue_id=config.venue.id)
            enroll_device(config, code, server.url)
            daemon = Daemon(
                config,
                until_idle=True,
                on_report=lambda report: echo("   " + format_report(report)),
            )
            daemon.run()
            with Store(config.storage.path) as store:
                rows = summary(store)
                delivered = store.delivered_count()
                recorded = len(store.events())
            echo("")
            echo(f"   {'reason':16} {'scans':>5} {'adults':>6} {'children':>8}")
            for reason, scans, adults, children in rows:
                echo(f"   {reason:16} {scans:5d} {adults:6d} {children:8d}")
            echo(f"   delivered to the central API: {delivered} of {recorded} records")
            results.append(rows)
    return results
