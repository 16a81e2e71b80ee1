"""The installed application's self-test: decoders, the embedded model, the sample, a child process.

`run_self_test()` is what `SOSReview --self-test` runs after every installer build and what
support asks a clinic to run. It checks the pieces a bundler can drop without any error at build
time: pylibjpeg's decoders (found through package metadata, not imports), the embedded model
files, the bundled sample and the spawned process retraining runs in (a frozen app needs
`multiprocessing.freeze_support()` for that). Qt-free; the desktop adds its own Qt check.
Thread affinity: any thread; it starts one short-lived child process.
"""

from __future__ import annotations

import json
import logging
import multiprocessing as mp
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from sos_core.errors import ModelNotFound, NoImagesFound, SosError, UnsupportedEncoding

if TYPE_CHECKING:
    from multiprocessing.connection import Connection

logger = logging.getLogger(__name__)

# The sample staged by the self-test: the CBCT series goes through the most code (DICOM series,
# volume, automatic mid-sagittal slice). Without it, the manifest's first case is used.
PREFERRED_SAMPLE = "cbct/series_000"
# Transfer syntaxes whose only decoder here is a pylibjpeg plugin (Pillow and pydicom cover JPEG
# baseline, JPEG 2000 and RLE themselves), so a bundle without pylibjpeg's metadata fails on them.
PYLIBJPEG_SYNTAXES = {
    "1.2.840.10008.1.2.4.57": "JPEG Lossless",
    "1.2.840.10008.1.2.4.70": "JPEG Lossless SV1",
    "1.2.840.10008.1.2.4.80": "JPEG-LS Lossless",
    "1.2.840.10008.1.2.4.90": "JPEG 2000 Lossless",
}
SPAWN_TIMEOUT_S = 120.0  # a cold frozen app starts in seconds; minutes means it hangs


@dataclass(frozen=True, slots=True)
class SelfTestResult:
    """What the self-test staged and how.

    sample
        The sample's path relative to the samples folder, '/'-separated.
    milliseconds
        Opening the sample and predicting it, after the model was loaded.
    """

    sample: str
    stage: int
    stage_name: str
    model_version: str
    milliseconds: float

    def line(self) -> str:
        """The one line printed on success."""
        return (
            f"SOS Review self-test OK: {self.sample} → stage {self.stage} ({self.stage_name}), "
            f"model {self.model_version}, {self.milliseconds:.0f} ms"
        )


def missing_decoders(registered: Mapping[str, object]) -> list[str]:
    """Names of the `PYLIBJPEG_SYNTAXES` that have no entry in pylibjpeg's decoder registry."""
    return [name for uid, name in PYLIBJPEG_SYNTAXES.items() if not registered.get(uid)]


def check_decoders() -> None:
    """Raise `UnsupportedEncoding` when pylibjpeg's plugins cannot be found (lost metadata)."""
    from pylibjpeg.utils import get_pixel_data_decoders

    missing = missing_decoders(get_pixel_data_decoders(version=2))
    if missing:
        raise UnsupportedEncoding(
            f"The DICOM decoders for {', '.join(missing)} are not installed with this copy of "
            "SOS Review; reinstall it.",
            transfer_syntax_name=missing[0],
            plugin_hint="pylibjpeg pylibjpeg-libjpeg pylibjpeg-openjpeg",
        )


def sample_input(samples: Path) -> Path:
    """The sample to stage: the CBCT series if bundled, else the manifest's first case."""
    preferred = samples / PREFERRED_SAMPLE
    if preferred.is_dir():
        return preferred
    manifest = samples / "manifest.jsonl"
    if manifest.is_file():
        for text in manifest.read_text(encoding="utf-8").splitlines():
            if text.strip():
                record = json.loads(text)
                path = samples / str(record.get("dicom") or record["file"])
                if path.exists():
                    return path
    raise NoImagesFound(
        "The bundled sample is missing from this copy of SOS Review; reinstall it.", path=samples
    )


def model_folder(model_dir: Path | None = None) -> Path:
    """The student to test: `model_dir`, else $SOS_MODEL_DIR, else the embedded one.

    Raises `ModelNotFound` with a sentence saying what to do when it holds no model.
    """
    from resources import ROOT
    from sos_core.inference.predictor import default_model_dir

    folder = Path(model_dir) if model_dir is not None else default_model_dir()
    if not (folder / "model.json").is_file():
        # The bundle-relative path for the embedded model, else the base name only (DI-5).
        shown = (
            f"resources/{folder.relative_to(ROOT).as_posix()}"
            if folder.is_relative_to(ROOT)
            else folder.name
        )
        raise ModelNotFound(
            f"No model is installed in {shown} (it has no model.json); install or train the "
            "embedded model before building or running SOS Review.",
            path=folder,
        )
    return folder


def _echo(conn: Connection, token: str) -> None:  # pragma: no cover - runs in the child
    conn.send(token)
    conn.close()


def check_spawn(timeout: float = SPAWN_TIMEOUT_S) -> None:
    """Start a `spawn` child the way retraining does and wait for its answer."""
    ctx = mp.get_context("spawn")
    reader, writer = ctx.Pipe(duplex=False)
    child = ctx.Process(target=_echo, args=(writer, "sos-self-test"), name="sos-self-test")
    child.start()
    writer.close()
    try:
        answered = reader.poll(timeout) and reader.recv() == "sos-self-test"
    except EOFError:
        answered = False
    finally:
        child.join(timeout=10)
        if child.is_alive():
            child.kill()
            child.join()
    if not answered or child.exitcode != 0:
        raise SosError(
            "A child process could not be started (retraining would not run); reinstall SOS "
            f"Review or report exit status {child.exitcode}."
        )


def run_self_test(
    *, samples: Path | None = None, model_dir: Path | None = None, spawn: bool = True
) -> SelfTestResult:
    """Check the installation and stage the bundled sample on the CPU.

    Parameters
    ----------
    samples
        The samples folder (default: the bundled one).
    model_dir
        The student (default: $SOS_MODEL_DIR, else the embedded `resources/models/student`).
    spawn
        Also check that a `spawn` child process starts.

    Raises
    ------
    SosError
        The first problem found, as one sentence (`ModelNotFound`, `NoImagesFound`,
        `UnsupportedEncoding`, or any error loading the model or the sample).
    """
    from resources import resource_path

    check_decoders()
    folder = model_folder(model_dir)
    samples_dir = samples if samples is not None else resource_path("samples")
    sample = sample_input(samples_dir)
    _check_teacher(folder)

    from sos_core.imaging import open_study
    from sos_core.inference.predictor import Predictor

    predictor = Predictor(folder, device="cpu")
    start = time.perf_counter()
    prediction = predictor.predict(open_study(sample))
    elapsed = (time.perf_counter() - start) * 1000.0
    if spawn:
        check_spawn()
    name = sample.relative_to(samples_dir).as_posix()
    logger.info("self-test staged %s in %.0f ms", name, elapsed)
    return SelfTestResult(
        sample=name,
        stage=prediction.stage,
        stage_name=prediction.stage_name,
        model_version=prediction.model_version,
        milliseconds=elapsed,
    )


def _check_teacher(student: Path) -> None:
    """The embedded teacher beside the student (used by retraining) loads, when one ships."""
    teacher = student.parent / "teacher"
    if (teacher / "model.json").is_file():
        from sos_core.models.model_file import load_model

        load_model(teacher, device="cpu")
