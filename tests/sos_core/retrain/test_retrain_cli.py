"""`sos retrain`, `sos audit verify` and `sos registry ...`: exit statuses and their sentences."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sos_core.cli import main
from sos_core.review import ReviewStore
from tests.sos_core.retrain.conftest import REVIEWER, fill_store
from tests.sos_core.review.helpers import raw_connect


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    with ReviewStore.open(tmp_path / "store") as store:
        store.record(actor="qa", action="test", subject="x", details={"n": 1})
        store.record(actor="qa", action="test", subject="x", details={"n": 2})
    return tmp_path / "store"


def test_audit_verify_passes_a_clean_store(folder: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["audit", "verify", "--store", str(folder)]) == 0
    assert "intact (2 entries)" in capsys.readouterr().out


def test_audit_verify_names_the_first_broken_entry(
    folder: Path, capsys: pytest.CaptureFixture
) -> None:
    conn = raw_connect(folder / "review.sqlite3")
    conn.executescript(
        "DROP TRIGGER audit_no_update; UPDATE audit SET actor = 'mallory' WHERE seq = 2;"
    )
    conn.close()
    assert main(["audit", "verify", "--store", str(folder)]) == 2
    err = capsys.readouterr().err
    assert "broken at entry 2 of 2" in err
    assert len(err.strip().splitlines()) == 1


def test_a_missing_store_is_refused_with_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    assert main(["audit", "verify", "--store", str(tmp_path / "nowhere")]) == 2
    assert "holds no SOS Review store" in capsys.readouterr().err
    assert not (tmp_path / "nowhere").exists()


def test_retrain_with_nothing_to_learn_exits_0(folder: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["retrain", "--store", str(folder), "--epochs", "1"]) == 0
    assert "no new expert labels" in capsys.readouterr().out


def test_retrain_without_a_locked_set_exits_2(
    folder: Path, box_data: dict[str, Path], capsys: pytest.CaptureFixture
) -> None:
    with ReviewStore.open(folder) as store:
        fill_store(store, box_data["queue"])
    assert main(["retrain", "--store", str(folder), "--json"]) == 2
    report = json.loads(capsys.readouterr().out)
    assert report["status"] == "no_locked_set"
    assert report["n_labels"] == 48


def test_registry_locked_import_needs_a_reviewer_then_shows_the_set(
    folder: Path, box_data: dict[str, Path], capsys: pytest.CaptureFixture
) -> None:
    base = ["registry", "locked", "--store", str(folder)]
    assert main(base) == 0
    assert "No locked validation set" in capsys.readouterr().out
    assert main([*base, "--import", str(box_data["locked"])]) == 2
    assert "--reviewer" in capsys.readouterr().err
    assert main([*base, "--import", str(box_data["locked"]), "--reviewer", REVIEWER]) == 0
    assert "24 case(s), generation 1" in capsys.readouterr().out
    assert main([*base, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["cases"] == 24


def test_registry_list_rollback_and_gate(folder: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["registry", "list", "--store", str(folder), "--json"]) == 0
    assert isinstance(json.loads(capsys.readouterr().out), list)
    assert main(["registry", "rollback", "--store", str(folder)]) == 2
    assert "no earlier model version" in capsys.readouterr().err
    assert main(["registry", "gate", "--store", str(folder)]) == 0
    assert "Promotion gate version 0" in capsys.readouterr().out


def test_registry_locked_import_sets_up_a_new_store(
    tmp_path: Path, box_data: dict[str, Path], capsys: pytest.CaptureFixture
) -> None:
    """The CLI's only way to start a store: importing the locked set that a store is fixed with."""
    folder = tmp_path / "new-store"
    base = ["registry", "locked", "--store", str(folder), "--import", str(box_data["locked"])]
    assert main(base) == 2  # no reviewer: refused before anything is created
    assert "--reviewer" in capsys.readouterr().err
    assert not folder.exists()
    not_a_dataset = [*base[:4], "--import", str(tmp_path), "--reviewer", REVIEWER]
    assert main(not_a_dataset) == 2
    assert "no manifest.jsonl" in capsys.readouterr().err
    assert not folder.exists()
    assert main([*base, "--reviewer", REVIEWER, "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert (info["cases"], info["generation"], info["store_created"]) == (24, 1, True)
    with ReviewStore.open(folder, create=False) as store:
        assert len(store.queue()) == 0  # locked cases are labelled but never queued
    assert main(["registry", "locked", "--store", str(folder)]) == 0
    assert "24 case(s), generation 1" in capsys.readouterr().out
    assert main(["registry", "list", "--store", str(tmp_path / "elsewhere")]) == 2
    assert not (tmp_path / "elsewhere").exists()  # only --import creates a store
