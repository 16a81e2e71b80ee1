"""The Predictor in a child process answers as the in-process one and outlives its child."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import numpy as np
import pytest

from sos_core.errors import ModelNotFound, ParameterError
from sos_core.imaging import open_study
from sos_core.inference import predictor_process as pp_module
from sos_core.inference.predictor import Predictor
from sos_core.inference.predictor_process import PredictorProcess, PredictorProcessError
from sos_core.phantom import draw_subject, render_volume, write_cbct_series


@pytest.fixture
def child(tiny_models: tuple[Path, Path]) -> PredictorProcess:
    proc = PredictorProcess(tiny_models[1], "cpu", threads=1)
    yield proc
    proc.close()


def _same(a: object, b: object) -> None:
    assert a.stage == b.stage
    np.testing.assert_array_equal(a.probabilities, b.probabilities)
    np.testing.assert_array_equal(a.cam, b.cam)
    assert a.box == b.box
    assert a.flags == b.flags
    assert a.messages == b.messages
    assert a.slice_index == b.slice_index
    assert a.model_version == b.model_version


def test_answers_as_the_in_process_predictor(
    tiny_models: tuple[Path, Path], child: PredictorProcess, tmp_path: Path
) -> None:
    data, model = tiny_models
    local = Predictor(model, "cpu", threads=1)
    image = open_study(sorted((data / "images").glob("*.png"))[0])
    _same(child.predict(image), local.predict(image))
    assert child.card.to_dict() == local.card.to_dict()
    assert child.version == local.version
    assert child.device == "cpu"
    assert child.size == local.size
    assert not child.predict(image).cam.flags.writeable  # read-only, as in-process
    # A volume: reduced here, staged there, neighbours averaged there.
    vol = render_volume(draw_subject(seed=3, stage=1), size=64, spacing=3.0)
    write_cbct_series(vol, tmp_path / "series", "case_x")
    study = open_study(tmp_path / "series")
    _same(child.predict(study, neighbours=1), local.predict(study, neighbours=1))
    assert child.predict(study, neighbours=1).extra == local.predict(study, neighbours=1).extra
    with pytest.raises(ParameterError):
        child.predict(study, neighbours=-1)


def test_a_load_error_arrives_with_its_type(tmp_path: Path) -> None:
    proc = PredictorProcess(tmp_path / "no-model-here", "cpu")
    try:
        with pytest.raises(ModelNotFound):
            proc.wait_ready()
    finally:
        proc.close()


def test_a_dead_child_is_replaced_and_a_death_mid_call_is_a_typed_error(
    tiny_models: tuple[Path, Path], child: PredictorProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    data, _ = tiny_models
    image = open_study(sorted((data / "images").glob("*.png"))[0])
    expected = child.predict(image)
    first = child.pid
    os.kill(first, signal.SIGKILL)  # between calls: the next call starts a new child
    child._proc.wait(timeout=10)  # (private) so the death has surely happened
    _same(child.predict(image), expected)
    assert child.pid != first

    import sos_core.inference.study_inputs as si

    real = si.study_inputs

    def kill_then_reduce(*args: object, **kwargs: object) -> object:
        os.kill(child.pid, signal.SIGKILL)  # the child dies while the call is under way
        return real(*args, **kwargs)

    monkeypatch.setattr(si, "study_inputs", kill_then_reduce)
    with pytest.raises(PredictorProcessError, match="stopped unexpectedly"):
        child.predict(image)
    monkeypatch.setattr(si, "study_inputs", real)
    _same(child.predict(image), expected)  # and the next call works again


def test_close_ends_the_child(child: PredictorProcess) -> None:
    child.wait_ready()
    pid = child.pid
    child.close()
    assert child.pid is None
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    child.close()  # idempotent


def test_errors_travel_typed_and_anything_else_becomes_one_sentence() -> None:
    err = pp_module._error_from(pp_module._error_to(ZeroDivisionError("x")))
    assert isinstance(err, PredictorProcessError)
    assert "ZeroDivisionError" in str(err)
    assert str(err).endswith(".")
    typed = pp_module._error_from(pp_module._error_to(ModelNotFound("model.json is missing.")))
    assert type(typed) is ModelNotFound
    assert str(typed) == "model.json is missing."
    forged = pp_module._error_from({"op": "error", "type": "Path", "message": "m"})
    assert type(forged) is PredictorProcessError  # only our error classes are built


@pytest.mark.req("MW-1")
def test_the_wire_carries_arrays_and_json_and_refuses_object_arrays() -> None:
    import io

    from sos_core.inference.wire import WireError, read_message, write_message

    buf = io.BytesIO()
    message = {
        "a": np.arange(12, dtype=np.float32).reshape(3, 4),
        "b": [np.zeros(0, np.int16), {"c": (1, 2.5, None, "x")}],
        "n": np.float32(0.25),
    }
    write_message(buf, message)
    write_message(buf, {"second": True})
    buf.seek(0)
    got = read_message(buf)
    np.testing.assert_array_equal(got["a"], message["a"])
    assert got["a"].dtype == np.float32
    assert got["b"][0].dtype == np.int16
    assert got["b"][1] == {"c": [1, 2.5, None, "x"]}
    assert got["n"] == 0.25
    assert read_message(buf) == {"second": True}
    with pytest.raises(EOFError):
        read_message(buf)
    header = b'{"body": {"__array__": 0}, "arrays": [["|O", [1]]]}'
    with pytest.raises(WireError):
        read_message(io.BytesIO(len(header).to_bytes(4, "big") + header + b"\0" * 8))
    truncated = io.BytesIO()
    write_message(truncated, np.ones(100))
    with pytest.raises(EOFError):  # cut inside the array bytes
        read_message(io.BytesIO(truncated.getvalue()[:-10]))
