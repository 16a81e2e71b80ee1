"""The installation self-test: it stages the real bundled sample, and fails with one sentence."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from resources import resource_path
from sos_core.errors import ModelError, ModelNotFound, NoImagesFound
from sos_core.models.model_file import read_card
from sos_core.self_test import (
    PYLIBJPEG_SYNTAXES,
    check_decoders,
    check_spawn,
    missing_decoders,
    run_self_test,
    sample_input,
)
from tests.sos_core.retrain.conftest import random_model_dir

LINE = re.compile(r"^SOS Review self-test OK: (\S+) → stage (\d) \((.+)\), model (\S+), (\d+) ms$")


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An untrained tiny student: the self-test checks the installation, not the accuracy."""
    return random_model_dir(tmp_path_factory.mktemp("self_test") / "student", seed=3)


def test_stages_the_bundled_cbct_series(model: Path) -> None:
    result = run_self_test(model_dir=model, spawn=False)
    card = read_card(model)
    assert result.sample == "cbct/series_000"
    assert 0 <= result.stage < len(card.stage_names)
    assert result.stage_name == card.stage_names[result.stage]
    assert result.model_version == f"{card.version}+{card.weights_sha256[:8]}"
    assert result.milliseconds > 0
    match = LINE.match(result.line())
    assert match is not None, result.line()
    assert match.group(1, 2, 4) == ("cbct/series_000", str(result.stage), result.model_version)


def test_falls_back_to_the_manifest_when_the_series_is_missing(tmp_path: Path) -> None:
    samples = tmp_path / "samples"
    shutil.copytree(resource_path("samples"), samples, ignore=shutil.ignore_patterns("cbct"))
    first = samples / "slices" / "case_000001.png"
    assert sample_input(samples) == first
    first.unlink()  # a manifest entry whose file is gone is passed over
    assert sample_input(samples) == samples / "cephs" / "case_000001.dcm"


def test_no_sample_is_one_sentence(tmp_path: Path, model: Path) -> None:
    with pytest.raises(NoImagesFound, match=r"^The bundled sample is missing .*reinstall it\.$"):
        run_self_test(samples=tmp_path, model_dir=model, spawn=False)


def test_no_model_is_one_sentence(tmp_path: Path) -> None:
    with pytest.raises(ModelNotFound, match=r"^No model is installed in .*\.$") as info:
        run_self_test(model_dir=tmp_path / "student", spawn=False)
    assert "\n" not in str(info.value)


def test_model_override_is_honoured(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("SOS_MODEL_DIR", str(tmp_path / "elsewhere"))
    with pytest.raises(ModelNotFound, match="elsewhere"):
        run_self_test(spawn=False)


def test_a_broken_teacher_beside_the_student_fails(tmp_path: Path, model: Path) -> None:
    shutil.copytree(model, tmp_path / "student")
    teacher = shutil.copytree(model, tmp_path / "teacher")
    (teacher / "weights.safetensors").write_bytes(b"not the weights")
    with pytest.raises(ModelError):
        run_self_test(model_dir=tmp_path / "student", spawn=False)


def test_decoder_registry_check() -> None:
    check_decoders()  # pylibjpeg and its plugins are installed here
    assert missing_decoders({uid: ["plugin"] for uid in PYLIBJPEG_SYNTAXES}) == []
    lost = missing_decoders({})  # what a bundle without the plugins' metadata sees
    assert lost == list(PYLIBJPEG_SYNTAXES.values())
    one_left = {uid: ["plugin"] for uid in list(PYLIBJPEG_SYNTAXES)[1:]}
    assert missing_decoders(one_left) == ["JPEG Lossless"]


def test_spawned_child_answers() -> None:
    check_spawn(timeout=60)


def test_embedded_model_stages_the_bundled_sample(monkeypatch: pytest.MonkeyPatch) -> None:
    """What ships works together; fails (one sentence) while resources/models/student is absent."""
    monkeypatch.delenv("SOS_MODEL_DIR", raising=False)
    result = run_self_test(spawn=False)
    assert LINE.match(result.line()), result.line()
    assert result.sample == "cbct/series_000"
