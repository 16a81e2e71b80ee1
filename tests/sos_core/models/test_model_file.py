"""Model folders: round trip, integrity (MW-2), pickle refusal (MW-3), header checks (MW-4)."""

from __future__ import annotations

import hashlib
import io
import json
import pickle
import time
import tracemalloc
from pathlib import Path

import pytest
import torch
from safetensors.torch import save as st_save
from torch import nn

from sos_core.errors import (
    ModelError,
    ModelFormatError,
    ModelIntegrityError,
    ModelNotFound,
    UnsafeModelFile,
)
from sos_core.models.card import ModelCard
from sos_core.models.model_file import (
    CARD_NAME,
    WEIGHTS_NAME,
    load_model,
    read_card,
    save_model,
)
from sos_core.models.registry import create_model
from sos_core.models.safe_weights import looks_like_pickle, read_header, refuse_unsafe_file

KWARGS = {"num_classes": 4, "width": 0.25}


def _card() -> ModelCard:
    return ModelCard(
        name="test-teacher",
        architecture="teacher",
        kwargs=KWARGS,
        input_size=(64, 64),
        stage_scheme="sos-4",
        stage_names=("Open", "Partially fused", "Mostly fused", "Completely fused"),
        version="1",
        created="2026-11-26T10:00:00+00:00",
    )


def _model(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return create_model("teacher", **KWARGS).eval()


@pytest.fixture
def saved(tmp_path: Path) -> Path:
    folder = tmp_path / "model"
    save_model(folder, _model(), _card())
    return folder


def _tamper(folder: Path, blob: bytes, *, rehash: bool = True) -> None:
    """Replace the weights; with `rehash` also fix the card's checksum, as an attacker would."""
    (folder / WEIGHTS_NAME).write_bytes(blob)
    if rehash:
        card = read_card(folder).replace(weights_sha256=hashlib.sha256(blob).hexdigest())
        (folder / CARD_NAME).write_text(card.to_json(), encoding="utf-8")


def _state(folder: Path) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in _model().state_dict().items()}


def _assemble(header: dict[str, object] | bytes, data: bytes) -> bytes:
    raw = header if isinstance(header, bytes) else json.dumps(header).encode()
    return len(raw).to_bytes(8, "little") + raw + data


def _split(blob: bytes) -> tuple[dict[str, object], bytes]:
    n = int.from_bytes(blob[:8], "little")
    return json.loads(blob[8 : 8 + n]), blob[8 + n :]


# --- round trip ----------------------------------------------------------------------------------


def test_round_trip_gives_the_same_network(saved: Path) -> None:
    model, card = load_model(saved)
    assert card.weights_sha256 == hashlib.sha256((saved / WEIGHTS_NAME).read_bytes()).hexdigest()
    assert not model.training
    x = torch.rand(2, 1, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(model(x), _model()(x))
    assert not list(saved.glob("*.tmp"))  # atomic writes leave no temp files


def test_save_never_overwrites_a_version(saved: Path) -> None:
    with pytest.raises(ModelError, match="never overwritten"):
        save_model(saved, _model(), _card())


def test_save_refuses_a_card_that_does_not_describe_the_model(tmp_path: Path) -> None:
    card = _card().replace(kwargs={"num_classes": 4, "width": 0.5})
    with pytest.raises(ModelFormatError, match="does not match"):
        save_model(tmp_path / "m", _model(), card)


def test_missing_folder_and_files_are_typed(tmp_path: Path, saved: Path) -> None:
    with pytest.raises(ModelNotFound):
        load_model(tmp_path / "nowhere")
    (saved / CARD_NAME).unlink()
    with pytest.raises(ModelNotFound):
        load_model(saved)
    with pytest.raises(ModelFormatError, match="single file"):
        load_model(saved / WEIGHTS_NAME)


def test_unknown_architecture_in_card_is_a_format_error(saved: Path) -> None:
    data = json.loads((saved / CARD_NAME).read_text())
    data["architecture"] = "no-such-net"
    (saved / CARD_NAME).write_text(json.dumps(data))
    with pytest.raises(ModelFormatError, match="does not know"):
        load_model(saved)


# --- MW-2: checksum ------------------------------------------------------------------------------


@pytest.fixture
def no_state_loaded(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts load_state_dict calls: a refused folder must not reach it."""
    calls: list[int] = []
    original = nn.Module.load_state_dict

    def spy(self: nn.Module, *args: object, **kwargs: object) -> object:
        calls.append(1)
        return original(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(nn.Module, "load_state_dict", spy)
    return calls


@pytest.mark.req("MW-2")
@pytest.mark.parametrize("where", ["last data byte", "header byte"])
def test_flipped_byte_is_refused(saved: Path, no_state_loaded: list[int], where: str) -> None:
    active, _ = load_model(saved)
    before = {k: v.clone() for k, v in active.state_dict().items()}
    no_state_loaded.clear()
    blob = bytearray((saved / WEIGHTS_NAME).read_bytes())
    index = len(blob) - 1 if where == "last data byte" else 20
    blob[index] ^= 0x01
    _tamper(saved, bytes(blob), rehash=False)
    with pytest.raises(ModelIntegrityError, match="checksum"):
        load_model(saved)
    assert no_state_loaded == []
    after = active.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # the active model unchanged


@pytest.mark.req("MW-2")
def test_edited_hash_in_card_is_refused(saved: Path, no_state_loaded: list[int]) -> None:
    data = json.loads((saved / CARD_NAME).read_text())
    digest = data["weights_sha256"]
    data["weights_sha256"] = ("0" if digest[0] != "0" else "1") + digest[1:]
    (saved / CARD_NAME).write_text(json.dumps(data))
    with pytest.raises(ModelIntegrityError):
        load_model(saved)
    data["weights_sha256"] = ""
    (saved / CARD_NAME).write_text(json.dumps(data))
    with pytest.raises(ModelIntegrityError, match="no weights checksum"):
        load_model(saved)
    assert no_state_loaded == []


# --- MW-3: pickles are never run -----------------------------------------------------------------


class _Evil:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str, str]]:
        return (open, (str(self.marker), "w"))  # unpickling creates the marker file


def test_the_pickle_fixture_is_live(tmp_path: Path) -> None:
    """Guard: the payload really runs code when unpickled, so MW-3 tests can fail."""
    marker = tmp_path / "ran"
    pickle.loads(pickle.dumps(_Evil(marker), protocol=4)).close()
    assert marker.exists()


def _payloads(marker: Path) -> dict[str, bytes]:
    evil = _Evil(marker)
    buf = io.BytesIO()
    torch.save(evil, buf)  # saving is safe; the zip archive wraps the pickle
    return {
        "protocol 0": pickle.dumps(evil, protocol=0),
        "protocol 2": pickle.dumps(evil, protocol=2),
        "protocol 5": pickle.dumps(evil, protocol=5),
        "torch.save zip": buf.getvalue(),
    }


@pytest.mark.req("MW-3")
@pytest.mark.parametrize("suffix", [".pt", ".pth", ".ckpt"])
def test_pickle_files_offered_directly_are_refused(tmp_path: Path, suffix: str) -> None:
    marker = tmp_path / "marker"
    for kind, payload in _payloads(marker).items():
        path = tmp_path / f"model-{kind.replace(' ', '_')}{suffix}"
        path.write_bytes(payload)
        with pytest.raises(UnsafeModelFile, match="pickle"):
            load_model(path)
        with pytest.raises(UnsafeModelFile):
            refuse_unsafe_file(path)
    assert not marker.exists()


@pytest.mark.req("MW-3")
def test_pickle_renamed_safetensors_is_refused_anywhere(tmp_path: Path, saved: Path) -> None:
    marker = tmp_path / "marker"
    for kind, payload in _payloads(marker).items():
        assert looks_like_pickle(payload), kind
        lone = tmp_path / "weights.safetensors"
        lone.write_bytes(payload)
        with pytest.raises(UnsafeModelFile):
            load_model(lone)
        _tamper(saved, payload)  # inside a model folder, even with a matching checksum
        with pytest.raises(UnsafeModelFile):
            load_model(saved)
    assert not marker.exists()


@pytest.mark.req("MW-3")
def test_folder_holding_only_a_pickle_is_refused(tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    folder = tmp_path / "downloaded"
    folder.mkdir()
    (folder / "model.pt").write_bytes(_payloads(marker)["torch.save zip"])
    with pytest.raises(UnsafeModelFile):
        load_model(folder)
    assert not marker.exists()


def test_a_real_safetensors_file_is_not_mistaken_for_a_pickle(saved: Path) -> None:
    refuse_unsafe_file(saved / WEIGHTS_NAME)  # no error
    assert not looks_like_pickle((saved / WEIGHTS_NAME).read_bytes()[:65536])


# --- MW-4: the header is checked before anything is allocated -----------------------------------


def _mw4_cases(blob: bytes, state: dict[str, torch.Tensor]) -> dict[str, bytes]:
    header, data = _split(blob)
    again = json.dumps(header["classifier.bias"])  # the same entry twice: only a dup check sees it
    dup = json.dumps(header)[:-1] + f', "classifier.bias": {again}}}'
    overlap = dict(header)  # BN bias pointing at the BN weight's bytes: same size, overlapping
    bias = dict(header["features.stem.1.bias"])  # type: ignore[call-overload]
    bias["data_offsets"] = header["features.stem.1.weight"]["data_offsets"]  # type: ignore[index]
    overlap["features.stem.1.bias"] = bias
    wrong_shape = dict(state)
    wrong_shape["classifier.weight"] = torch.zeros(4, state["classifier.weight"].shape[1] + 1)
    wrong_dtype = dict(state)
    wrong_dtype["classifier.weight"] = state["classifier.weight"].double()
    missing = {k: v for k, v in state.items() if k != "classifier.bias"}
    return {
        "truncated": blob[: len(blob) // 2],
        "header length 2^63": (2**63).to_bytes(8, "little") + blob[8:],
        "header length beyond the file": (len(blob)).to_bytes(8, "little") + blob[8:],
        "JSON not starting with {": _assemble(b" " + json.dumps(header).encode(), data),
        "JSON array": _assemble(b"[" + json.dumps(header).encode() + b"]", data),
        "duplicate key": _assemble(dup.encode(), data),
        "overlapping offsets": _assemble(overlap, data),
        "trailing bytes": blob + b"\0" * 8,
        "extra tensor": st_save({**state, "extra.weight": torch.zeros(3)}),
        "missing tensor": st_save(missing),
        "wrong shape": st_save(wrong_shape),
        "wrong dtype": st_save(wrong_dtype),
    }


@pytest.mark.req("MW-4")
def test_malformed_weight_files_give_a_typed_error_fast(saved: Path) -> None:
    blob = (saved / WEIGHTS_NAME).read_bytes()
    state = {k: v.clone() for k, v in _model().state_dict().items()}
    for case, bad in _mw4_cases(blob, state).items():
        _tamper(saved, bad)  # checksum matches: only the format checks stand in the way
        start = time.perf_counter()
        with pytest.raises(ModelFormatError):
            load_model(saved)
        elapsed = time.perf_counter() - start
        assert elapsed < 1.0, f"{case} took {elapsed:.2f} s"


@pytest.mark.req("MW-4")
def test_huge_header_length_allocates_nothing() -> None:
    fake = io.BytesIO((2**63).to_bytes(8, "little") + b"{}")
    tracemalloc.start()
    try:
        with pytest.raises(ModelFormatError, match="100 MB"):
            read_header(fake, 10)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 1024**2


@pytest.mark.req("MW-4")
def test_header_checks_by_hand() -> None:
    entry = {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}
    good = _assemble({"a": entry, "__metadata__": {"format": "pt"}}, b"\0" * 8)
    header = read_header(io.BytesIO(good), len(good))
    assert [(e.name, e.shape, e.begin, e.end) for e in header.entries] == [("a", (2,), 0, 8)]
    bad_cases = [
        {"a": {**entry, "dtype": "F128"}},
        {"a": {**entry, "shape": [-2]}},
        {"a": {**entry, "shape": [2.0]}},
        {"a": {**entry, "data_offsets": [0, 12]}},
        {"a": {**entry, "data_offsets": [8, 0]}},
        {"a": {**entry, "extra": 1}},
        {"a": entry, "b": {**entry, "data_offsets": [4, 12]}},
        {"a": entry, "__metadata__": {"n": 1}},
    ]
    for case in bad_cases:
        blob = _assemble(case, b"\0" * 8)
        with pytest.raises(ModelFormatError):
            read_header(io.BytesIO(blob), len(blob))
    for blob in (b"\x01\x00", _assemble(b'{"a": NaN}', b""), _assemble(b"{\xff}", b"")):
        with pytest.raises(ModelFormatError):
            read_header(io.BytesIO(blob), len(blob))
