"""ModelCard: validation, immutability, JSON round trip."""

from __future__ import annotations

import json

import pytest

from sos_core.errors import ModelFormatError
from sos_core.models.card import ModelCard

STAGES = ("Open", "Partially fused", "Mostly fused", "Completely fused")


def _card(**changes: object) -> ModelCard:
    fields: dict[str, object] = {
        "name": "sos-student",
        "architecture": "student",
        "kwargs": {"num_classes": 4, "width": 1.0},
        "input_size": (256, 256),
        "stage_scheme": "sos-4",
        "stage_names": STAGES,
        "version": "0.1.0",
        "preprocessing": {"id": "percentile-0.5-99.5-letterbox-v1", "size": 256},
        "training_data": {"source": "phantom", "n_train": 700},
        "metrics": {"accuracy": 0.9},
        "created": "2026-11-26T10:00:00+00:00",
        "modalities": ("slice", "ceph"),
        "intended_use": "Research; not a clinical device.",
        "licence": "MIT",
        "origin": "trained on synthetic phantoms",
    }
    fields.update(changes)
    return ModelCard(**fields)  # type: ignore[arg-type]


def test_round_trip_through_json() -> None:
    card = _card(weights_sha256="ab" * 32, temperature=1.7, parent_version="0.0.9")
    again = ModelCard.from_json(card.to_json())
    assert again == card
    assert again.num_classes == 4
    assert json.loads(card.to_json())["kwargs"] == {"num_classes": 4, "width": 1.0}


def test_mappings_are_read_only() -> None:
    card = _card()
    with pytest.raises(TypeError):
        card.kwargs["width"] = 2.0  # type: ignore[index]
    with pytest.raises(AttributeError):
        card.version = "2"  # type: ignore[misc]


def test_created_defaults_to_now_in_utc() -> None:
    fields = _card().to_dict()
    del fields["created"]
    card = ModelCard.from_dict(fields)
    assert card.created.endswith("+00:00")
    assert card.created[:4].isdigit()


@pytest.mark.parametrize(
    "changes",
    [
        {"name": ""},
        {"input_size": (256,)},
        {"input_size": (256, 0)},
        {"stage_names": ("Only",)},
        {"kwargs": {"num_classes": 3}},
        {"temperature": 0.0},
        {"temperature": float("nan")},
        {"weights_sha256": "XYZ"},
        {"weights_sha256": "AB" * 32},
        {"created": "2026-11-26T10:00:00"},
        {"created": "2026-11-26T10:00:00+02:00"},
        {"created": "yesterday"},
        {"format_version": 2},
        {"in_chans": 0},
        {"modality_input_sizes": {"cbct": (320, 320)}},  # not one of the card's modalities
        {"modality_input_sizes": {"ceph": (320, 256)}},  # not square
        {"modality_input_sizes": {"ceph": (4, 4)}},
        {"modality_input_sizes": {"ceph": 320}},
    ],
)
def test_invalid_fields_are_refused(changes: dict[str, object]) -> None:
    with pytest.raises(ModelFormatError):
        _card(**changes)


def test_from_json_refuses_malformed_documents() -> None:
    good = json.loads(_card().to_json())
    with pytest.raises(ModelFormatError, match="not valid JSON"):
        ModelCard.from_json("{not json")
    with pytest.raises(ModelFormatError, match="not a JSON object"):
        ModelCard.from_json("[1, 2]")
    with pytest.raises(ModelFormatError, match="unknown fields"):
        ModelCard.from_json(json.dumps({**good, "run_this": "import os"}))
    missing = dict(good)
    del missing["architecture"]
    with pytest.raises(ModelFormatError, match="incomplete"):
        ModelCard.from_json(json.dumps(missing))
    with pytest.raises(ModelFormatError, match="must be an object"):
        ModelCard.from_json(json.dumps({**good, "kwargs": [1]}))
    with pytest.raises(ModelFormatError, match="not valid JSON"):
        ModelCard.from_json(json.dumps(good).replace('"temperature": 1.0', '"temperature": NaN'))


def test_a_modality_can_be_read_at_its_own_size() -> None:
    card = _card(modality_input_sizes={"ceph": [320, 320]})
    assert card.input_size_for("ceph") == 320
    assert card.input_size_for("slice") == 256
    assert card.input_size_for(None) == 256  # a file that does not say what it shows
    assert card.input_sizes() == (256, 320)
    again = ModelCard.from_json(card.to_json())
    assert again == card
    assert json.loads(card.to_json())["modality_input_sizes"] == {"ceph": [320, 320]}


def test_a_card_without_sizes_per_modality_is_written_as_before() -> None:
    # Versions from before the field refuse unknown fields: leaving the empty map out keeps
    # the cards of every model that reads one size readable by them.
    assert "modality_input_sizes" not in json.loads(_card().to_json())
    assert _card().input_sizes() == (256,)
    with pytest.raises(ModelFormatError, match="must be an object"):
        ModelCard.from_json(json.dumps({**_card().to_dict(), "modality_input_sizes": [320]}))
