"""DC-1: every pydicom test file and a mutation corpus end in a Study or an ImagingError.

The corpus is built from four representative files (explicit VR with rescale, implicit VR,
RLE-encapsulated, a segmentation with nested undefined-length sequences) with fixed seeds:
truncations, byte flips, lying length fields, the pydicom #2330 deep-sequence builder, a
truncated item header (#2332) and encapsulated pixels inside a sequence (#2324). Each case must
finish in < 5 s with < 256 MB traced allocation (tracemalloc sees numpy and Python buffers, not
the decoders' own C allocations).
"""

from __future__ import annotations

import importlib.util
import itertools
import struct
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file, get_testdata_files

from sos_core.errors import CorruptFile, ImagingError
from sos_core.imaging import Study, open_study

DATA_ROOT = Path(get_testdata_file("CT_small.dcm")).parent
ALL_FILES = sorted(Path(f) for f in get_testdata_files() if Path(f).is_file())
SEEDS = ("CT_small.dcm", "MR_small_implicit.dcm", "MR_small_RLE.dcm", "liver_1frame.dcm")
CASE_SECONDS = 5.0
CASE_BYTES = 256 * 1024**2
_UNDEFINED = 0xFFFFFFFF
_LONG_VRS = {b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"SV", b"UC", b"UN", b"UR", b"UT"}


def _pydicom_decodes(path: Path) -> bool:
    """The oracle: pydicom on its own reads the file and decodes an image from it."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            ds = pydicom.dcmread(path, force=True)
            decoded = "PixelData" in ds and ds.pixel_array.size > 0
        except Exception:  # noqa: BLE001 - any pydicom failure means "pydicom cannot"
            return False
    return decoded


@pytest.mark.req("DC-1")
@pytest.mark.filterwarnings("ignore::UserWarning")
@pytest.mark.parametrize("path", ALL_FILES, ids=[str(p.relative_to(DATA_ROOT)) for p in ALL_FILES])
def test_every_pydicom_file_gives_a_study_or_a_typed_error(path: Path) -> None:
    if path.name == "DICOMDIR" and importlib.util.find_spec("sos_core.imaging.dicomdir") is None:
        pytest.skip("the DICOMDIR reader is not in this checkout yet")
    result: Study | ImagingError
    try:
        result = open_study(path)
    except ImagingError as exc:
        result = exc
    if isinstance(result, ImagingError):
        assert str(path.parent) not in str(result)  # base names only
    if _pydicom_decodes(path):
        assert isinstance(result, Study), f"pydicom decodes {path.name} but we raised {result!r}"


# --- the mutation corpus -------------------------------------------------------------------


def _length_fields(data: bytes, implicit: bool) -> list[tuple[int, int]]:
    """(offset, size) of each top-level length field, file meta included, up to the first
    undefined-length element (whose content would need a full parser)."""
    fields, pos = [], 132
    while pos + 8 <= len(data):
        group = struct.unpack_from("<H", data, pos)[0]
        vr = data[pos + 4 : pos + 6]
        if implicit and group != 0x0002:
            offset, size = pos + 4, 4
        elif vr in _LONG_VRS:
            offset, size = pos + 8, 4
        else:
            offset, size = pos + 6, 2
        length = struct.unpack_from("<L" if size == 4 else "<H", data, offset)[0]
        fields.append((offset, size))
        if length == _UNDEFINED:
            break
        pos = offset + size + length
    return fields


def _set_lengths(data: bytes, fields: list[tuple[int, int]]) -> bytes:
    out = bytearray(data)
    for offset, size in fields:
        struct.pack_into("<L" if size == 4 else "<H", out, offset, (1 << 8 * size) - 16)
    return bytes(out)


def _seed(name: str) -> tuple[bytes, bool]:
    path = Path(get_testdata_file(name))
    implicit = pydicom.dcmread(path, stop_before_pixels=True).file_meta.TransferSyntaxUID == (
        pydicom.uid.ImplicitVRLittleEndian
    )
    return path.read_bytes(), implicit


def _truncations(name: str) -> Iterator[tuple[str, bytes]]:
    data, _ = _seed(name)
    for cut in np.linspace(0, len(data), 64, endpoint=False).astype(int):
        yield f"cut@{cut}", data[:cut]


def _flip_mutants(data: bytes, seed: int) -> Iterator[bytes]:
    """Endless seeded mutants with 1-8 XOR-flipped bytes; every other one in the header."""
    rng = np.random.default_rng(seed)
    i = 0
    while True:
        out = bytearray(data)
        span = min(len(data), 2000) if i % 2 else len(data)
        for at in rng.integers(0, span, rng.integers(1, 9)):
            out[int(at)] ^= int(rng.integers(1, 256))
        yield bytes(out)
        i += 1


def _flips(name: str) -> Iterator[tuple[str, bytes]]:
    data, _ = _seed(name)
    mutants = _flip_mutants(data, SEEDS.index(name) + 7)
    for i, mutant in zip(range(32), mutants, strict=False):
        yield f"flip#{i}", mutant


# Inputs a longer fuzz run (the same generator) found costly before `guards.open_bounded`:
# pydicom's recovery from a damaged sequence read a garbage length of 1-4 GiB.
FUZZ_REGRESSIONS = [
    ("JPEG2000.dcm", 1003, 196),
    ("JPEG2000.dcm", 1003, 287),
    ("examples_palette.dcm", 1005, 297),
    ("liver_1frame.dcm", 1009, 0),
    ("liver_1frame.dcm", 1009, 19),
    ("liver_1frame.dcm", 1009, 109),
    ("liver_1frame.dcm", 1009, 128),
]


def _regressions() -> Iterator[tuple[str, bytes]]:
    for name, seed, index in FUZZ_REGRESSIONS:
        data = Path(get_testdata_file(name)).read_bytes()
        mutant = next(itertools.islice(_flip_mutants(data, seed), index, None))
        yield f"{name}/{seed}/{index}", mutant


def _lengths(name: str) -> Iterator[tuple[str, bytes]]:
    data, implicit = _seed(name)
    fields = _length_fields(data, implicit)
    assert len(fields) > 20
    for offset, size in fields:
        yield f"len@{offset}", _set_lengths(data, [(offset, size)])
    yield "len@all", _set_lengths(data, fields)


def _explicit_sq(tag: tuple[int, int], depth: int) -> bytes:
    opening = struct.pack("<HH2sHL", *tag, b"SQ", 0, _UNDEFINED) + struct.pack(
        "<HHL", 0xFFFE, 0xE000, _UNDEFINED
    )
    closing = struct.pack("<HHL", 0xFFFE, 0xE00D, 0) + struct.pack("<HHL", 0xFFFE, 0xE0DD, 0)
    return opening * depth + closing * depth


def _encapsulated_item(implicit: bool) -> bytes:
    """An Icon Image Sequence item whose pixels are encapsulated (undefined length)."""
    if implicit:
        head = struct.pack("<HHL", 0x0088, 0x0200, _UNDEFINED)
        pixels = struct.pack("<HHL", 0x7FE0, 0x0010, _UNDEFINED)
        rows = struct.pack("<HHLH", 0x0028, 0x0010, 2, 2)
    else:
        head = struct.pack("<HH2sHL", 0x0088, 0x0200, b"SQ", 0, _UNDEFINED)
        pixels = struct.pack("<HH2sHL", 0x7FE0, 0x0010, b"OB", 0, _UNDEFINED)
        rows = struct.pack("<HH2sHH", 0x0028, 0x0010, b"US", 2, 2)
    item = struct.pack("<HHL", 0xFFFE, 0xE000, _UNDEFINED)
    fragments = (
        struct.pack("<HHL", 0xFFFE, 0xE000, 0)
        + struct.pack("<HHL", 0xFFFE, 0xE000, 8)
        + b"\xff\xd8\xff\xd9\0\0\0\0"
        + struct.pack("<HHL", 0xFFFE, 0xE0DD, 0)
    )
    close = struct.pack("<HHL", 0xFFFE, 0xE00D, 0) + struct.pack("<HHL", 0xFFFE, 0xE0DD, 0)
    return head + item + rows + pixels + fragments + close


def _insert_before_pixels(data: bytes, insert: bytes) -> bytes:
    at = max(data.find(b"\xe0\x7f\x10\x00OW"), data.find(b"\xe0\x7f\x10\x00OB"))
    if at < 0:
        at = data.find(b"\xe0\x7f\x10\x00")
    return data[:at] + insert + data[at:]


def _structural() -> Iterator[tuple[str, bytes]]:
    ct, _ = _seed("CT_small.dcm")
    implicit_mr, _ = _seed("MR_small_implicit.dcm")
    yield "sq-nested-300", _insert_before_pixels(ct, _explicit_sq((0x0040, 0xA730), 300))
    cut_item = _explicit_sq((0x0040, 0xA730), 1)[:14]  # SQ header + 2 bytes of an item tag
    yield "truncated-item-header", ct[: ct.find(b"\xe0\x7f\x10\x00OW")] + cut_item
    yield "encapsulated-in-sq-explicit", _insert_before_pixels(ct, _encapsulated_item(False))
    yield (
        "encapsulated-in-sq-implicit",
        _insert_before_pixels(implicit_mr, _encapsulated_item(True)),
    )


def _run_cases(
    tmp_path: Path, measure: Callable, cases: Iterator[tuple[str, bytes]]
) -> dict[str, object]:
    """Open every case; return {case id: outcome} and collect any rule broken."""
    broken: list[str] = []
    outcomes: dict[str, object] = {}
    path = tmp_path / "case.dcm"
    for case_id, data in cases:
        path.write_bytes(data)
        with measure() as cost:
            try:
                outcome: object = open_study(path)
            except ImagingError as exc:
                outcome = exc
            except Exception as exc:  # noqa: BLE001 - the very thing this test hunts for
                outcome = exc
                broken.append(f"{case_id}: untyped {exc!r}")
        outcomes[case_id] = outcome
        if cost.seconds >= CASE_SECONDS:
            broken.append(f"{case_id}: took {cost.seconds:.1f} s")
        if cost.peak_bytes >= CASE_BYTES:
            broken.append(f"{case_id}: allocated {cost.peak_bytes / 1024**2:.0f} MB")
    assert not broken, "\n".join(broken)
    return outcomes


MUTATORS = {"truncation": _truncations, "flips": _flips, "lengths": _lengths}


@pytest.mark.req("DC-1")
@pytest.mark.filterwarnings("ignore::UserWarning")
@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("mutator", sorted(MUTATORS))
def test_mutants_end_in_a_study_or_a_typed_error(tmp_path, measure, seed, mutator) -> None:
    outcomes = _run_cases(tmp_path, measure, MUTATORS[mutator](seed))
    assert len(outcomes) > 20
    if mutator == "truncation":
        # A cut file is refused, never shown half-read.
        assert not any(isinstance(o, Study) for o in outcomes.values())


@pytest.mark.req("DC-1")
@pytest.mark.filterwarnings("ignore::UserWarning")
def test_fuzz_regressions_stay_cheap(tmp_path, measure) -> None:
    outcomes = _run_cases(tmp_path, measure, _regressions())
    assert len(outcomes) == len(FUZZ_REGRESSIONS)


@pytest.mark.req("DC-1")
@pytest.mark.filterwarnings("ignore::UserWarning")
def test_structural_cases_from_pydicom_issues(tmp_path, measure) -> None:
    outcomes = _run_cases(tmp_path, measure, _structural())
    assert isinstance(outcomes["sq-nested-300"], CorruptFile)
    assert isinstance(outcomes["truncated-item-header"], ImagingError)
    # A (legal) icon image with encapsulated pixels inside a sequence does not stop loading.
    assert isinstance(outcomes["encapsulated-in-sq-explicit"], Study)
    assert isinstance(outcomes["encapsulated-in-sq-implicit"], Study | ImagingError)


# --- what escapes, and what must --------------------------------------------------------------


@pytest.mark.req("DC-1")
@pytest.mark.parametrize(
    "error",
    [
        RecursionError("deep"),
        OSError("disk"),
        struct.error("unpack"),
        MemoryError(),
        OverflowError("big"),
        TypeError("type"),
        ValueError("value"),
        IndexError("index"),
        KeyError("key"),
    ],
    ids=lambda e: type(e).__name__,
)
def test_library_failures_are_wrapped_with_their_cause(monkeypatch, error) -> None:
    def failing(*args: object, **kwargs: object) -> None:
        raise error

    monkeypatch.setattr("sos_core.imaging.dicom_file.dcmread", failing)
    with pytest.raises(ImagingError) as info:
        open_study(get_testdata_file("CT_small.dcm"))
    assert info.value.__cause__ is error


def _interrupt(*args: object, **kwargs: object) -> None:
    raise KeyboardInterrupt


@pytest.mark.req("DC-1")
@pytest.mark.parametrize(
    "target",
    [
        "sos_core.imaging.dicom_file.prescan_element_lengths",
        "sos_core.imaging.dicom_file.dcmread",
        "pydicom.dataset.Dataset.pixel_array",
        "pydicom.pixels.apply_color_lut",  # imported where a palette image is converted
    ],
)
def test_keyboard_interrupt_is_never_swallowed(monkeypatch, target: str) -> None:
    replacement = property(_interrupt) if target.endswith("pixel_array") else _interrupt
    monkeypatch.setattr(target, replacement)
    name = "examples_palette.dcm" if "color_lut" in target else "CT_small.dcm"
    with pytest.raises(KeyboardInterrupt):
        open_study(get_testdata_file(name))


@pytest.mark.req("DC-1")
def test_keyboard_interrupt_passes_through_the_raster_reader(monkeypatch, tmp_path) -> None:
    from PIL import Image

    Image.new("L", (4, 4)).save(tmp_path / "a.png")
    monkeypatch.setattr("PIL.Image.open", _interrupt)
    with pytest.raises(KeyboardInterrupt):
        open_study(tmp_path / "a.png")
