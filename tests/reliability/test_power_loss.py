"""Power loss: a commit that returned survives a cut.

The cut is modelled at the file layer by an apsw VFS over the real files: each
``xSync`` makes a file's bytes durable, and a cut keeps only the durable bytes
(no unsynced write survives, the harshest honest disk). Durable state changes
only at a sync, so checking the state just before every sync, and at the end,
covers every possible cut moment. The writes are the store's own: its
``PRAGMAS``, its ``MIGRATIONS``, one commit per record, its checkpoint. Each cut
image is then opened by the real :class:`~kiosk.store.Store`, which must recover
every record whose commit had returned, and nothing torn.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import apsw
import pytest

import kiosk.store
from kiosk.store import MIGRATIONS, Store
from tests.reliability.conftest import sized
from tests.test_sync_helpers import record

RECORDS = sized(quick=150, full=3000)
CHECKPOINT_EVERY = 50  # the sync worker checkpoints after retention; do it often here
COLUMNS = [field.name for field in dataclasses.fields(kiosk.store.EventRecord)]
INSERT = f"INSERT INTO events ({', '.join(COLUMNS)}) VALUES ({', '.join(':' + c for c in COLUMNS)})"
_names = itertools.count()


@dataclasses.dataclass
class Cut:
    """What a power cut at one moment leaves: durable bytes, and the commits that had returned."""

    files: dict[str, bytes]
    returned: int


class SyncedOnly(apsw.VFS):
    """The default VFS, remembering per file the bytes it had at its last sync."""

    def __init__(self) -> None:
        self.name = f"synced-only-{next(_names)}"
        self.durable: dict[str, bytes] = {}
        self.cuts: list[Cut] = []
        self.returned = 0
        super().__init__(self.name, "")

    def cut(self) -> None:
        self.cuts.append(Cut(dict(self.durable), self.returned))

    def xOpen(self, name: Any, flags: list[int]) -> apsw.VFSFile:
        return _File(self, name, flags)

    def xDelete(self, filename: str, syncdir: bool) -> None:
        super().xDelete(filename, syncdir)
        self.durable.pop(filename, None)


class _File(apsw.VFSFile):
    def __init__(self, vfs: SyncedOnly, name: Any, flags: list[int]) -> None:
        self.vfs = vfs
        self.path = name.filename() if hasattr(name, "filename") else str(name)
        super().__init__("", name, flags)

    def xSync(self, flags: int) -> None:
        # Until this sync completes, a cut leaves the previous durable bytes.
        self.vfs.cut()
        super().xSync(flags)
        self.vfs.durable[self.path] = Path(self.path).read_bytes()


@pytest.fixture
def vfs() -> Iterator[SyncedOnly]:
    model = SyncedOnly()
    yield model
    model.unregister()


def write_through_the_model(vfs: SyncedOnly, path: Path, pragmas: tuple[str, ...]) -> list[str]:
    """The store's statements on ``path``, one commit per record; returns the event ids."""
    db = apsw.Connection(str(path), vfs=vfs.name)
    for pragma in pragmas:
        db.execute(pragma)
    for number, script in enumerate(MIGRATIONS, start=1):
        with db:  # one transaction, as Store._migrate
            db.execute(script)
            db.execute(f"PRAGMA user_version={number}")
    ids = []
    for number in range(1, RECORDS + 1):
        event = record(days_ago=0)
        db.execute(INSERT, dataclasses.asdict(event))
        ids.append(event.event_id)
        vfs.returned += 1
        if number % CHECKPOINT_EVERY == 0:
            db.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # as Store.checkpoint
    vfs.cut()  # the power goes at the very end, before any close
    return ids


def recover(cut: Cut, folder: Path, original: Path) -> list[str]:
    """Put a cut's durable bytes in ``folder`` and open them with the real Store."""
    folder.mkdir()
    for name, data in cut.files.items():
        if name.startswith(str(original)) and not name.endswith("-shm"):
            (folder / Path(name).name).write_bytes(data)
    with Store(folder / original.name) as store:
        assert store.integrity_ok()
        recovered = [event["event_id"] for event in store.events()]
    assert not list(folder.glob("*.corrupt-*")), "a cut must never look like corruption"
    return recovered


def lost_commits(vfs: SyncedOnly, tmp_path: Path, pragmas: tuple[str, ...]) -> list[int]:
    """For every possible cut: how many returned commits the recovered store lacks."""
    path = tmp_path / "kiosk.db"
    ids = write_through_the_model(vfs, path, pragmas)
    lost = []
    for number, cut in enumerate(vfs.cuts):
        recovered = recover(cut, tmp_path / f"cut-{number}", path)
        # Whole commits in order: a prefix of what was written, never a torn record.
        assert recovered == ids[: len(recovered)]
        lost.append(max(0, cut.returned - len(recovered)))
    return lost


def test_every_commit_that_returned_survives_any_cut(vfs: SyncedOnly, tmp_path: Path) -> None:
    lost = lost_commits(vfs, tmp_path, kiosk.store.PRAGMAS)
    assert sum(lost) == 0, f"{sum(lost)} returned commits lost over {len(lost)} cuts"
    assert len(lost) > RECORDS, "a cut before every sync was checked"


def test_the_model_detects_loss_with_synchronous_normal(vfs: SyncedOnly, tmp_path: Path) -> None:
    # The guard removed: with NORMAL a WAL commit returns before its fsync.
    normal = tuple(p.replace("synchronous=FULL", "synchronous=NORMAL") for p in kiosk.store.PRAGMAS)
    assert normal != kiosk.store.PRAGMAS
    lost = lost_commits(vfs, tmp_path, normal)
    assert max(lost) > 0, "the model must see NORMAL lose returned commits"
