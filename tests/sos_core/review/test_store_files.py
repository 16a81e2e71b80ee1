"""Opening the store: PRAGMAs read back (DB-1), network drives (DB-4), foreign files (DB-7)."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from sos_core.errors import (
    CorruptStore,
    NotAStore,
    StoreError,
    StoreOnNetworkDrive,
    StoreSecretMissing,
    StoreTooNew,
)
from sos_core.review import SCHEMA_VERSION, ReviewStore, default_location
from sos_core.review import connection as connection_mod
from sos_core.review.schema import APPLICATION_ID
from tests.sos_core.review.helpers import CHILD, REPO, add_case, child_env, sha256_file

# --- DB-1 ---------------------------------------------------------------------------------------


@pytest.mark.req("DB-1")
def test_two_processes_read_back_the_durability_pragmas(tmp_path: Path) -> None:
    folder = tmp_path / "store"
    ReviewStore.open(folder).close()
    procs = [
        subprocess.Popen(
            [sys.executable, str(CHILD), "pragmas", str(folder)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=REPO,
            env=child_env(),
        )
        for _ in range(2)
    ]
    # Both processes hold their connection open at the same time before either reports done.
    reports = [json.loads(p.stdout.readline() or "{}") for p in procs]  # type: ignore[union-attr]
    for p in procs:
        _, err = p.communicate("", timeout=60)
        assert p.returncode == 0, err
    for got in reports:
        assert got["journal_mode"] == "wal"
        assert got["synchronous"] in (2, 3)
        assert got["foreign_keys"] == 1
        assert got["busy_timeout"] >= 5000
        assert got["recursive_triggers"] == 1
        assert got["application_id"] == APPLICATION_ID
        assert got["user_version"] == SCHEMA_VERSION


@pytest.mark.req("DB-1")
def test_a_setting_sqlite_refuses_is_a_typed_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "store"
    ReviewStore.open(folder).close()
    real = connection_mod.read_pragmas

    def downgraded(conn: sqlite3.Connection) -> dict[str, int | str]:
        got = real(conn)
        got["journal_mode"] = "delete"  # as on a file system without shared memory
        return got

    monkeypatch.setattr(connection_mod, "read_pragmas", downgraded)
    with pytest.raises(StoreError, match="write-ahead logging"):
        ReviewStore.open(folder)


def test_folder_names_with_uri_characters_work(tmp_path: Path) -> None:
    folder = tmp_path / "Dr O'Neil #2 ?100% [ceph]"
    with ReviewStore.open(folder) as store:
        add_case(store)
    with ReviewStore.open(folder / "review.sqlite3") as store:
        assert len(store.cases()) == 1


def test_default_location_follows_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SOS_DATA_DIR", str(tmp_path / "elsewhere"))
    assert default_location() == tmp_path / "elsewhere"
    with ReviewStore.open() as store:
        assert store.folder == tmp_path / "elsewhere"
    monkeypatch.delenv("SOS_DATA_DIR")
    assert "SOS Review" in str(default_location())


# --- DB-4 ---------------------------------------------------------------------------------------


@pytest.mark.req("DB-4")
def test_unc_path_is_refused_with_a_clear_message(tmp_path: Path) -> None:
    with pytest.raises(StoreOnNetworkDrive, match="network share") as info:
        ReviewStore.open("\\\\fileserver\\radiology\\SOS Review")
    assert "own disk" in str(info.value)
    assert not (tmp_path / "fileserver").exists()


@pytest.mark.req("DB-4")
@pytest.mark.parametrize("fstype", ["nfs", "nfs4", "cifs", "smb3", "fuse.sshfs"])
def test_network_mount_is_refused_before_anything_is_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fstype: str
) -> None:
    monkeypatch.setattr(connection_mod, "filesystem_type", lambda path: fstype)
    folder = tmp_path / "mnt" / "store"
    with pytest.raises(StoreOnNetworkDrive, match="network|remote") as info:
        ReviewStore.open(folder)
    assert fstype in str(info.value)
    assert not folder.exists()


@pytest.mark.req("DB-4")
def test_local_disk_and_fuseblk_are_accepted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The real detector on this machine's temp folder, then a local NTFS-3G (fuseblk) disk.
    assert connection_mod.remote_reason(tmp_path) is None
    monkeypatch.setattr(connection_mod, "filesystem_type", lambda path: "fuseblk")
    ReviewStore.open(tmp_path / "store").close()


# --- DB-7 ---------------------------------------------------------------------------------------


def _fingerprint(path: Path) -> tuple[int, str, list[str]]:
    return path.stat().st_mtime_ns, sha256_file(path), sorted(os.listdir(path.parent))


def _our_store_file(tmp_path: Path) -> Path:
    folder = tmp_path / "source"
    with ReviewStore.open(folder) as store:
        for seed in range(20):
            case = add_case(store, seed)
            store.add_label(case.case_id, stage=1, box=(1, 1, 9, 9), reviewer="r", note="x" * 500)
    return folder / "review.sqlite3"


def _random_bytes(tmp_path: Path) -> Path:
    path = tmp_path / "random" / "review.sqlite3"
    path.parent.mkdir()
    path.write_bytes(os.urandom(8192))
    return path


def _other_app_db(tmp_path: Path) -> Path:
    path = tmp_path / "other" / "contacts.db"
    path.parent.mkdir()
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE contacts (name TEXT)")
    conn.execute("INSERT INTO contacts VALUES ('someone')")
    conn.commit()
    conn.close()
    return path


def _truncated(tmp_path: Path, *, to_page: bool) -> Path:
    data = _our_store_file(tmp_path).read_bytes()
    cut = (len(data) // 2) // 4096 * 4096 if to_page else len(data) // 2 + 123
    path = tmp_path / ("page-cut" if to_page else "mid-cut") / "review.sqlite3"
    path.parent.mkdir()
    path.write_bytes(data[:cut])
    return path


def _too_new(tmp_path: Path) -> Path:
    path = _our_store_file(tmp_path)
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 5}")
    conn.commit()
    conn.close()
    return path


@pytest.mark.req("DB-7")
@pytest.mark.parametrize(
    ("make", "error"),
    [
        (_random_bytes, NotAStore),
        (_other_app_db, NotAStore),
        (lambda t: _truncated(t, to_page=False), CorruptStore),
        (lambda t: _truncated(t, to_page=True), CorruptStore),
        (_too_new, StoreTooNew),
    ],
    ids=["random-bytes", "other-app-sqlite", "truncated", "truncated-at-page", "newer-version"],
)
def test_foreign_or_damaged_file_is_refused_untouched(
    tmp_path: Path, make: Callable[[Path], Path], error: type[StoreError]
) -> None:
    path = make(tmp_path)
    before = _fingerprint(path)
    for location in (path, path.parent):  # the file itself, and its folder if it is ours
        if location == path.parent and path.name != "review.sqlite3":
            continue
        with pytest.raises(error) as info:
            ReviewStore.open(location)
        message = str(info.value)
        assert path.name in message
        assert str(path.parent) not in message
        assert "untouched" in message
        assert _fingerprint(path) == before  # same mtime, same bytes, no -wal/-shm/key beside it


@pytest.mark.req("DB-7")
def test_empty_file_is_not_taken_for_a_store(tmp_path: Path) -> None:
    path = tmp_path / "empty.sqlite3"
    path.write_bytes(b"")
    with pytest.raises(NotAStore):
        ReviewStore.open(path)
    assert path.read_bytes() == b""


def test_missing_key_file_is_reported_not_recreated(tmp_path: Path) -> None:
    folder = tmp_path / "store"
    ReviewStore.open(folder).close()
    key = folder / "review.secret"
    key.rename(tmp_path / "moved.secret")
    with pytest.raises(StoreSecretMissing):
        ReviewStore.open(folder)
    assert not key.exists()
    # A key of another store is refused too: its pseudonyms would not match this store's.
    ReviewStore.open(tmp_path / "other").close()
    (tmp_path / "other" / "review.secret").rename(key)
    with pytest.raises(StoreSecretMissing, match="does not belong"):
        ReviewStore.open(folder)


def test_opening_without_create_does_not_make_a_store(tmp_path: Path) -> None:
    with pytest.raises(NotAStore, match="holds no SOS Review store"):
        ReviewStore.open(tmp_path / "nothing", create=False)
    assert not (tmp_path / "nothing").exists()
