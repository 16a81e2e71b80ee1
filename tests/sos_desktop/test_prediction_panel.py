"""PredictionPanel: stage in words, a bar per stage, flags as sentences, model and device."""

from __future__ import annotations

from typing import Any

import numpy as np

from sos_core.inference.prediction import Prediction
from sos_core.stages import SOS_4_STAGE
from sos_desktop.prediction_panel import PredictionPanel, device_words
from sos_desktop.prediction_service import PredictionResult


def _result(flags: tuple[str, ...] = (), messages: tuple[str, ...] = ()) -> PredictionResult:
    pred = Prediction(
        stage=1,
        stage_name="Partially fused",
        probabilities=(0.1, 0.48, 0.4, 0.02),
        model_version="0.3.0+deadbeef",
        device="cuda:0",
        cam=np.zeros((4, 4), np.float32),
        slice_index=211,
        flags=flags,
        messages=messages,
        seconds=0.25,
    )
    return PredictionResult("case-x", pred, "0.3.0+deadbeef", SOS_4_STAGE.names)


def test_result_is_shown_in_words_and_bars(qtbot: Any) -> None:
    panel = PredictionPanel()
    qtbot.addWidget(panel)
    panel.show_result(
        _result(("between_stages", "attention_off_target"), ("between stages 1 and 2", ""))
    )
    assert panel.stage_label.text() == "Stage 1 \u00b7 Partially fused"
    assert "endocranial" in panel.description.text()
    assert [b.value() for b in panel.probability_bars] == [100, 480, 400, 20]
    assert panel.probability_bars[1].format() == "48.0 %"
    flags = panel.flags_label.text()
    assert "between stages 1 and 2" in flags
    assert "attention is off the cranial base" in flags  # words supplied for an empty message
    model = panel.model_label.text()
    assert "0.3.0+deadbeef" in model
    assert "GPU (CUDA)" in model
    assert "sagittal slice 212" in model


def test_no_flags_and_messages(qtbot: Any) -> None:
    panel = PredictionPanel()
    qtbot.addWidget(panel)
    panel.show_result(_result())
    assert "No review flags" in panel.flags_label.text()
    panel.show_message("No model available yet: the image can be reviewed by hand.")
    assert panel.result is None
    assert panel.bars_frame.isHidden()
    assert panel.message.text().startswith("No model available yet")
    assert device_words("cpu") == "CPU"
    assert device_words("xpu") == "xpu"
