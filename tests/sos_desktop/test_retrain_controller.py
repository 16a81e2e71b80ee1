"""Retraining from the app (issue 7): the dialog runs a real retraining process and says what
happened in one sentence; cancel ends a running process as "cancelled"; a change of the model
registry's active pointer (e.g. by another app instance) reloads the new active model without a
restart; at start the app loads the registry's active model, else the embedded one."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from sos_core.retrain import ModelRegistry, import_locked_set
from sos_core.retrain.records import RetrainReport
from sos_core.review import ReviewStore
from sos_desktop.main_window import MainWindow
from sos_desktop.prediction_service import ModelInfo
from sos_desktop.retrain_controller import (
    registry_active_dir,
    report_sentence,
    startup_model_dir,
    step_text,
)
from tests.sos_core.retrain.conftest import (
    REVIEWER,
    fill_store,
    make_box_dataset,
    random_model_dir,
)

RUN_TIMEOUT_MS = 120_000  # a spawned child imports torch; generous on a shared 2-core machine


def _store_open(qtbot: Any, win: MainWindow) -> Path:
    qtbot.waitUntil(lambda: win.retrain.store_folder is not None, timeout=20000)
    folder = win.retrain.store_folder
    assert folder is not None
    return folder


def _teacher_dir(folder: Path) -> Path:
    """An untrained tiny teacher saved as a model folder (a registry needs one to retrain)."""
    import torch

    from sos_core.models.card import ModelCard
    from sos_core.models.model_file import save_model
    from sos_core.models.registry import create_model
    from sos_core.preprocess import PREPROCESSING_ID
    from sos_core.stages import get_scheme

    torch.manual_seed(0)
    scheme = get_scheme()
    card = ModelCard(
        name="sos-teacher",
        architecture="teacher",
        kwargs={"width": 0.25},
        input_size=(32, 32),
        stage_scheme=scheme.id,
        stage_names=scheme.names,
        version="test-teacher",
        preprocessing={"id": PREPROCESSING_ID, "input": "crop", "crop_context": 1.25},
        modalities=("slice",),
    )
    save_model(folder, create_model("teacher", width=0.25), card)
    return folder


def _embedded(root: Path, student: Path, *, teacher: bool = False) -> Path:
    """An 'embedded models' folder (student/, optionally teacher/) a registry seeds itself from."""
    shutil.copytree(student, root / "student")
    if teacher:
        _teacher_dir(root / "teacher")
    return root


# --- plain functions --------------------------------------------------------------------------
def test_startup_model_is_the_registry_active_one_else_the_embedded_student(
    tmp_path: Path, trained_student: Path
) -> None:
    embedded = _embedded(tmp_path / "embedded", trained_student)
    store = tmp_path / "store"
    assert startup_model_dir(store, env={}, embedded=embedded) == embedded / "student"
    assert startup_model_dir(None, env={}, embedded=embedded) == embedded / "student"
    assert not (store / "models").exists()  # looking did not create a registry

    registry = ModelRegistry(store / "models", embedded=embedded)
    active = registry.active()  # seeds the registry with the embedded student
    assert active is not None
    assert startup_model_dir(store, env={}, embedded=embedded) == active.folder
    assert startup_model_dir(store, env={}, embedded=embedded) == registry.active_model_dir()
    # an explicit override wins
    assert startup_model_dir(store, env={"SOS_MODEL_DIR": "/x/m"}) == Path("/x/m")
    # a damaged pointer falls back to the embedded model instead of failing the start
    (store / "models" / "active.json").write_text("{not json", encoding="utf-8")
    assert registry_active_dir(store) is None
    assert startup_model_dir(store, env={}, embedded=embedded) == embedded / "student"


def test_report_sentences_name_the_outcome_and_the_gate_numbers() -> None:
    gate = {
        "decision": "reject",
        "reasons": ["f1_macro (overall) fell from 0.700 to 0.500, beyond the margin of 0.020"],
        "checks": [
            {"metric": "accuracy", "scope": "overall", "active": 0.75, "candidate": 0.5},
            {"metric": "f1_macro", "scope": "overall", "active": 0.7, "candidate": 0.5},
            {"metric": "f1", "scope": "stage 1", "active": 0.1, "candidate": 0.9},
        ],
    }
    rejected = RetrainReport(
        "rejected", "x", parent_version="student-aaa", candidate_version="student-bbb", gate=gate
    )
    text = report_sentence(rejected)
    assert text.startswith("The current model student-aaa was kept")
    assert "fell from 0.700 to 0.500" in text
    assert "accuracy 75% \u2192 50%" in text
    assert "F1 0.70 \u2192 0.50" in text
    promoted = RetrainReport(
        "promoted", "x", candidate_version="student-ccc", n_labels=12, gate=gate
    )
    assert "student-ccc" in report_sentence(promoted)
    assert "now in use" in report_sentence(promoted)
    assert report_sentence(RetrainReport("no_locked_set", "Fix one first.")) == "Fix one first."
    assert step_text(0.0) != step_text(0.5) != step_text(0.95)


# --- the dialog and a real retraining process ---------------------------------------------------
def test_with_no_labels_the_dialog_says_there_is_nothing_to_learn(
    qtbot: Any, make_window: Any
) -> None:
    win = make_window()
    _store_open(qtbot, win)
    assert "retrain" in win.actions_by_key
    win.actions_by_key["retrain"].trigger()
    dialog = win.retrain.dialog
    assert dialog is not None
    assert dialog.isVisible()
    assert not dialog.isModal()
    qtbot.waitUntil(lambda: "No labelled case" in dialog.queue_label.text(), timeout=20000)

    with qtbot.waitSignal(win.retrain.finished, timeout=RUN_TIMEOUT_MS) as done:
        dialog.start_button.click()
        assert not dialog.start_button.isEnabled()
        assert dialog.cancel_button.isEnabled()
    report = done.args[0]
    assert isinstance(report, RetrainReport), report
    assert report.status == "nothing_to_learn"
    assert "nothing to learn from" in dialog.result_label.text()
    assert dialog.start_button.isEnabled()
    assert not dialog.cancel_button.isEnabled()
    assert not win.retrain.running


def test_cancel_ends_a_running_retraining_process_as_cancelled(
    qtbot: Any, make_window: Any, tmp_path: Path
) -> None:
    """Cancel is asked right after the start: the child honours it at its first check (after
    writing the training data, before any epoch), which is deterministic; cancelling mid-epoch
    is the same event and is covered in tests/sos_core/retrain."""
    win = make_window()
    folder = _store_open(qtbot, win)
    with ReviewStore.open(folder, create=False) as store:
        locked = make_box_dataset(tmp_path / "locked", 8, seed=3, split="test")
        import_locked_set(store, locked, reviewer=REVIEWER, source_kind="synthetic")
        fill_store(store, make_box_dataset(tmp_path / "queue", 6, seed=5))
    student = random_model_dir(tmp_path / "s", seed=1)
    win.retrain.embedded = _embedded(tmp_path / "embedded", student, teacher=True)

    dialog = win.retrain.show_dialog()
    qtbot.waitUntil(lambda: "waiting" in dialog.queue_label.text(), timeout=20000)
    text = dialog.queue_label.text()  # the 8 locked cases are never queued (RG-4)
    assert text.startswith("6 labelled case(s) waiting")
    assert "8 labelled case(s) of the locked validation set" in text
    with qtbot.waitSignal(win.retrain.finished, timeout=RUN_TIMEOUT_MS) as done:
        dialog.start_button.click()
        dialog.cancel_button.click()
        assert "Cancelling" in dialog.step_label.text()
    report = done.args[0]
    assert isinstance(report, RetrainReport), report
    assert report.status == "cancelled"
    assert report.n_labels == 6  # the locked cases were held out
    assert "cancelled" in dialog.result_label.text()
    registry = ModelRegistry(folder / "models", embedded=win.retrain.embedded)
    assert registry.candidates() == []  # nothing was registered


# --- following the registry -------------------------------------------------------------------
def test_a_change_of_the_registry_pointer_reloads_the_new_active_model(
    qtbot: Any, make_window: Any, tmp_path: Path, trained_student: Path
) -> None:
    win = make_window(model_dir=trained_student)
    folder = _store_open(qtbot, win)
    registry = ModelRegistry(folder / "models", embedded=_embedded(tmp_path / "e", trained_student))
    origin = registry.active()
    assert origin is not None
    win.retrain.check_registry()  # the seed (generation 1) is noticed as well
    qtbot.waitUntil(lambda: win.retrain.model_dir == origin.folder, timeout=5000)
    qtbot.waitUntil(
        lambda: win.prediction.info is not None and win.prediction.info.model_dir == origin.folder,
        timeout=30000,
    )
    assert not win.retrain.check_registry()  # nothing changed since: no reload

    # another instance (here: the API directly) registers a second real model and promotes it
    second = random_model_dir(tmp_path / "second", seed=7, version="second")
    new = registry.register(
        second, role="student", lineage={"parent": origin.version, "gate": {"decision": "promote"}}
    )
    win.retrain.pointer_timer.setInterval(20)  # the timer, not a direct call, must notice it
    with qtbot.waitSignal(win.prediction.model_changed, timeout=30000) as changed:
        registry.promote(new.version, actor="other-instance")
    info = changed.args[0]
    assert isinstance(info, ModelInfo)
    assert registry.pointer()["generation"] == 2
    assert info.model_dir == new.folder == registry.active_model_dir()
    assert info.version.startswith(new.version)  # the registered id, with its weights hash
    assert win.model_status.text() == f"Model {info.version}"


def test_an_explicit_model_is_kept_until_the_registry_changes(
    qtbot: Any, make_window: Any, tmp_path: Path, trained_student: Path
) -> None:
    """A window given its model (tests, --model) does not switch on the first look at the
    store's registry, only when the pointer changes afterwards."""
    folder = tmp_path / "store"
    ModelRegistry(folder / "models", embedded=_embedded(tmp_path / "e", trained_student)).active()
    win = make_window(model_dir=trained_student)
    assert _store_open(qtbot, win) == folder
    assert not win.retrain.check_registry()
    assert win.retrain.model_dir is None


def test_a_window_that_chose_its_model_starts_on_the_store_active_one(
    qtbot: Any, make_window: Any, tmp_path: Path, trained_student: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    """Without an override the window starts on the store's active model (RG-9)."""
    folder = tmp_path / "store"
    registry = ModelRegistry(folder / "models", embedded=_embedded(tmp_path / "e", trained_student))
    active = registry.active()
    assert active is not None
    monkeypatch.delenv("SOS_MODEL_DIR")
    win = make_window()
    assert win.retrain.follow_store
    assert win.retrain.model_dir == active.folder
    _store_open(qtbot, win)
    assert not win.retrain.check_registry()  # already on it
