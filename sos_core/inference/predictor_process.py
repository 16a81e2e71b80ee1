"""A `Predictor` in a child process, with the same `predict(study)` as the in-process one.

Why: importing torch and loading the model takes about 2 s of one core, and Python imports hold
the GIL, so in the app's own process that work queues behind the window's start-up instead of
running beside it. In a child it runs on the other core while the window opens, and a crash
inside torch ends the child, not the app. The caller reduces each study to the few arrays the
model sees (`study_inputs`), so a 400-slice volume is never copied across.

Protocol: `sos_core.inference.wire` messages (JSON and raw arrays, never pickle) over the child's
stdin/stdout. The child's own stdout is pointed at stderr so a stray print cannot corrupt the
channel; when the parent goes away the child reads end-of-file and exits.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from sos_core import errors
from sos_core.errors import SosError
from sos_core.inference.wire import WireError, read_message, write_message

if TYPE_CHECKING:
    from sos_core.imaging.study import Study
    from sos_core.inference.prediction import Prediction
    from sos_core.inference.study_inputs import StudyInputs
    from sos_core.models.card import ModelCard

logger = logging.getLogger(__name__)


# A frozen bundle has no `python -m`: its executable runs installer/launcher.py, which serves
# the channel when given this flag.
FROZEN_FLAG = "--prediction-process"


def child_command() -> list[str]:
    """The command that starts a prediction process, from source or from a frozen bundle."""
    if getattr(sys, "frozen", False):
        return [sys.executable, FROZEN_FLAG]
    return [sys.executable, "-m", "sos_core.inference.predictor_process"]


class PredictorProcessError(SosError, RuntimeError):
    """The prediction process stopped or answered nonsense."""


class PredictorProcess:
    """Starts the child at once; the first use of `card`, `version`, `device`, `size` or
    `predict` waits until its model is loaded. Thread-safe (one call at a time). A child that
    died is started again by the next `predict`."""

    def __init__(
        self,
        model_dir: str | Path | None = None,
        device: str | None = None,
        *,
        threads: int | None = None,
    ) -> None:
        self.model_dir = Path(model_dir) if model_dir is not None else None
        self.requested_device = device
        self._threads = threads
        self._lock = threading.Lock()
        self._proc: subprocess.Popen[bytes] | None = None
        self._ready: tuple[ModelCard, str, str, int] | None = None
        self._start()

    # --- life cycle ---------------------------------------------------------------------------
    def _start(self) -> None:
        root = str(Path(__file__).resolve().parents[2])  # the folder holding sos_core
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
        self._proc = subprocess.Popen(
            child_command(),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
        )
        model = str(self.model_dir) if self.model_dir is not None else None
        self._ready = None
        self._send(
            {
                "op": "load",
                "model": model,
                "device": self.requested_device,
                "threads": self._threads,
            }
        )

    def wait_ready(self) -> None:
        """Block until the child has loaded its model; its load error is raised here."""
        with self._lock:
            self._ensure_ready()

    def _ensure_ready(self) -> None:
        if self._proc is None or self._proc.poll() is not None:
            _reap(self._proc)  # died between calls (its pipes are still open here)
            self._start()
        if self._ready is None:
            reply = self._receive("ready")
            from sos_core.models.card import ModelCard

            card = ModelCard.from_json(reply["card"])
            self._ready = (card, str(reply["version"]), str(reply["device"]), int(reply["size"]))

    def close(self) -> None:
        """Stop the child (idempotent)."""
        with self._lock:
            proc, self._proc, self._ready = self._proc, None, None
            _reap(proc)

    def __del__(self) -> None:
        with contextlib.suppress(Exception):  # interpreter shutdown
            self.close()

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    # --- what the app reads -------------------------------------------------------------------
    def _info(self) -> tuple[ModelCard, str, str, int]:
        with self._lock:
            self._ensure_ready()
            assert self._ready is not None
            return self._ready

    @property
    def card(self) -> ModelCard:
        return self._info()[0]

    @property
    def version(self) -> str:
        return self._info()[1]

    @property
    def device(self) -> str:
        return self._info()[2]

    @property
    def size(self) -> int:
        return self._info()[3]

    def predict(
        self,
        study: Study,
        slice: int | None = None,  # noqa: A002
        *,
        neighbours: int = 0,
    ) -> Prediction:
        """As `Predictor.predict`; the study is reduced here and staged in the child."""
        from sos_core.inference.study_inputs import study_inputs

        with self._lock:
            self._ensure_ready()
            assert self._ready is not None
            size_for = self._ready[0].input_size_for
            inputs = study_inputs(study, slice, neighbours=neighbours, input_size=size_for)
            self._send({"op": "predict", "inputs": dataclasses.asdict(inputs)})
            reply = self._receive("prediction")
        return _prediction_from(reply["prediction"])

    # --- the channel --------------------------------------------------------------------------
    def _send(self, message: dict[str, Any]) -> None:
        assert self._proc is not None
        assert self._proc.stdin is not None
        try:
            write_message(self._proc.stdin, message)
        except (BrokenPipeError, OSError) as exc:
            self._lost()
            raise PredictorProcessError(_STOPPED) from exc

    def _receive(self, expected: str) -> dict[str, Any]:
        assert self._proc is not None
        assert self._proc.stdout is not None
        try:
            reply = read_message(self._proc.stdout)
        except (EOFError, OSError, WireError) as exc:
            self._lost()
            raise PredictorProcessError(_STOPPED) from exc
        op = reply.get("op") if isinstance(reply, dict) else None
        if op == "error":
            raise _error_from(reply)
        if op != expected:
            self._lost()
            raise PredictorProcessError("The prediction process answered out of turn; try again.")
        return reply

    def _lost(self) -> None:
        """The child is gone: reap it so the next call starts a fresh one."""
        proc, self._proc, self._ready = self._proc, None, None
        _reap(proc)
        logger.warning("the prediction process stopped")


def _reap(proc: subprocess.Popen[bytes] | None) -> None:
    """Kill and wait for a child (it holds no state worth a goodbye, and may still be importing
    torch), and close its pipes."""
    if proc is None:
        return
    proc.kill()
    proc.wait()
    for stream in (proc.stdin, proc.stdout):
        if stream is not None:
            with contextlib.suppress(OSError):
                stream.close()


_STOPPED = "The prediction process stopped unexpectedly; predict again to restart it."


# --- what travels ----------------------------------------------------------------------------
def _prediction_to(p: Prediction) -> dict[str, Any]:
    return {f.name: getattr(p, f.name) for f in dataclasses.fields(p)}


def _prediction_from(d: dict[str, Any]) -> Prediction:
    """JSON turned tuples into lists; the rest arrives as sent (the map read-only again, by
    Prediction itself, as in-process)."""
    from sos_core.inference.prediction import Prediction

    box = d["box"]
    return Prediction(
        **{
            **d,
            "probabilities": tuple(d["probabilities"]),
            "box": tuple(box) if box is not None else None,
            "flags": tuple(d["flags"]),
            "messages": tuple(d["messages"]),
        }
    )


def _inputs_from(d: dict[str, Any]) -> StudyInputs:
    from sos_core.inference.study_inputs import StudyInputs

    return StudyInputs(
        **{
            **d,
            "neighbour_slices": tuple(d["neighbour_slices"]),
            "neighbour_inputs": tuple(d["neighbour_inputs"]),
        }
    )


def _error_to(exc: BaseException) -> dict[str, Any]:
    """Our typed errors travel by class name and sentence; anything else becomes one sentence."""
    if isinstance(exc, SosError):
        return {"op": "error", "type": type(exc).__name__, "message": str(exc)}
    logger.error("prediction failed in the child process", exc_info=exc)
    return {
        "op": "error",
        "type": PredictorProcessError.__name__,
        "message": f"The prediction failed inside the model ({type(exc).__name__}); see the log.",
    }


def _error_from(reply: dict[str, Any]) -> SosError:
    cls = getattr(errors, str(reply.get("type")), None)
    message = str(reply.get("message", ""))
    if isinstance(cls, type) and issubclass(cls, SosError):
        try:
            return cls(message)
        except TypeError:  # a class that needs more than the sentence
            pass
    return PredictorProcessError(message)


# --- the child --------------------------------------------------------------------------------
def serve(channel_in: IO[bytes], channel_out: IO[bytes]) -> int:
    """Load the model the first message names, then answer predictions until end-of-file."""
    try:
        load = read_message(channel_in)
    except EOFError:
        return 0
    try:
        from sos_core.inference.predictor import Predictor

        predictor = Predictor(load["model"], load["device"], threads=load["threads"])
    except Exception as exc:  # noqa: BLE001 - every load failure goes back to the app
        write_message(channel_out, _error_to(exc))
        return 1
    write_message(
        channel_out,
        {
            "op": "ready",
            "card": predictor.card.to_json(),  # the card holds read-only views
            "version": predictor.version,
            "device": predictor.device.type,
            "size": predictor.size,
        },
    )
    while True:
        try:
            message = read_message(channel_in)
        except EOFError:
            return 0
        try:
            prediction = predictor.predict_inputs(_inputs_from(message["inputs"]))
            reply = {"op": "prediction", "prediction": _prediction_to(prediction)}
        except Exception as exc:  # noqa: BLE001 - reported to the app, the child goes on
            reply = _error_to(exc)
        write_message(channel_out, reply)


def serve_stdio() -> int:
    """The child's entry: serve on stdin/stdout (`python -m ...` or a bundle's FROZEN_FLAG)."""
    # Keep the channel on private descriptors; fd 1 becomes stderr so prints cannot reach it.
    channel_in = os.fdopen(os.dup(0), "rb")
    channel_out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    sys.stdout = sys.stderr
    logging.basicConfig(level=logging.INFO, format="%(levelname)s predictor: %(message)s")
    return serve(channel_in, channel_out)


if __name__ == "__main__":
    sys.exit(serve_stdio())
