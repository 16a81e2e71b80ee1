"""The CUDA paths, checked where a GPU exists (the test suite never needs one).

Runs, on a machine with CUDA, and prints one line per check with its figures:

1. device selection: "auto" picks CUDA, "cuda:0" works, $SOS_DEVICE=cpu and an explicit "cpu"
   win over it, an unavailable "mps" is a typed error;
2. the Predictor with the embedded student on the GPU against the same model on the CPU: same
   stage on every sample, largest probability difference, Grad-CAM agreement, and latency
   (median of `predict_image`, forward alone) on each;
3. `sos predict --device cuda --json` on the samples: exit 0 and "device": "cuda";
4. training with mixed precision and channels-last: a teacher and a student for a few epochs
   on a small phantom; finite losses, a saved model that loads on the CPU, and resume from the
   checkpoint continuing at the next epoch.

Exits 1 if any check fails. The JSON written with `--out` holds every figure.

    python benchmarks/cuda_paths.py --out cuda.json
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import statistics
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sos_core.device import choose_device  # noqa: E402
from sos_core.errors import ParameterError  # noqa: E402

SAMPLES = Path(__file__).resolve().parents[1] / "resources" / "samples" / "slices"
RESULTS: dict[str, dict] = {}


def check(name: str) -> Callable[[Callable[[], dict]], Callable[[], bool]]:
    def wrap(fn: Callable[[], dict]) -> Callable[[], bool]:
        def run() -> bool:
            t0 = time.perf_counter()
            try:
                figures = fn()
            except Exception:  # noqa: BLE001 - a failed check is reported, the others still run
                RESULTS[name] = {"ok": False, "error": traceback.format_exc()}
                print(f"FAIL {name}\n{RESULTS[name]['error']}", flush=True)
                return False
            figures["seconds"] = round(time.perf_counter() - t0, 2)
            RESULTS[name] = {"ok": True, **figures}
            print(f"ok   {name}: {json.dumps(figures)}", flush=True)
            return True

        return run

    return wrap


@check("device selection")
def device_selection() -> dict:
    assert choose_device(None).type == "cuda"
    assert choose_device("cuda:0") == torch.device("cuda:0")
    assert choose_device("cpu").type == "cpu"
    os.environ["SOS_DEVICE"] = "cpu"
    try:
        assert choose_device(None).type == "cpu"
        assert choose_device("cuda").type == "cuda"  # the argument beats the variable
    finally:
        del os.environ["SOS_DEVICE"]
    mps_error = ""
    if not torch.backends.mps.is_available():
        try:
            choose_device("mps")
        except ParameterError as exc:
            mps_error = str(exc)
        assert mps_error, "an unavailable MPS must be refused"
    return {"gpu": torch.cuda.get_device_name(0), "torch": torch.__version__, "mps": mps_error}


def _images() -> list[np.ndarray]:
    from PIL import Image

    return [np.asarray(Image.open(p), dtype=np.float32) for p in sorted(SAMPLES.glob("*.png"))]


def _latency(fn: Callable[[], object], runs: int, sync: bool) -> float:
    for _ in range(5):
        fn()
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        if sync:
            torch.cuda.synchronize()
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)


@check("predictor: GPU against CPU")
def predictor_gpu_vs_cpu() -> dict:
    from sos_core.inference.predictor import Predictor

    images = _images()
    gpu, cpu = Predictor(device="cuda"), Predictor(device="cpu")
    assert next(gpu.model.parameters()).is_cuda
    out: dict = {"cases": len(images), "cpu_threads": torch.get_num_threads()}
    dp, corr = [], []
    for img in images:
        a, b = gpu.predict_image(img), cpu.predict_image(img)
        assert (a.device, b.device) == ("cuda", "cpu")
        assert a.stage == b.stage, f"stage {a.stage} on the GPU, {b.stage} on the CPU"
        assert a.flags == b.flags, f"flags {a.flags} on the GPU, {b.flags} on the CPU"
        dp.append(float(np.abs(np.subtract(a.probabilities, b.probabilities)).max()))
        corr.append(float(np.corrcoef(a.cam.ravel(), b.cam.ravel())[0, 1]))
    out["max_abs_prob_diff"] = max(dp)
    out["min_cam_correlation"] = min(corr)
    # cuDNN may use TF32 for convolutions: agreement to a few thousandths, not bit for bit.
    assert max(dp) < 5e-3, max(dp)
    assert min(corr) > 0.99, min(corr)
    img = images[0]
    x = torch.zeros(1, 1, gpu.size, gpu.size)
    with torch.inference_mode():
        xg = x.cuda().contiguous(memory_format=torch.channels_last)
        out["gpu_forward_ms"] = _latency(lambda: gpu.model(xg), 50, sync=True)
        out["cpu_forward_ms"] = _latency(lambda: cpu.model(x), 20, sync=False)
    out["gpu_predict_ms"] = _latency(lambda: gpu.predict_image(img), 50, sync=False)
    out["cpu_predict_ms"] = _latency(lambda: cpu.predict_image(img), 20, sync=False)
    return {k: round(v, 5) if isinstance(v, float) else v for k, v in out.items()}


@check("sos predict --device cuda --json")
def cli_on_gpu() -> dict:
    from sos_core.cli import main

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        code = main(["predict", "--device", "cuda", "--json", str(SAMPLES)])
    lines = [json.loads(line) for line in buf.getvalue().splitlines() if line.strip()]
    assert code == 0, f"exit status {code}"
    assert lines, "no JSON lines"
    assert all(o.get("device") == "cuda" for o in lines), lines
    return {"exit": code, "images": len(lines), "stages": [o.get("stage") for o in lines]}


@check("training: mixed precision, channels-last, resume")
def amp_training() -> dict:
    from sos_core.distill.config import config_from_dict
    from sos_core.distill.training import mixed_precision_dtype, train
    from sos_core.models.model_file import load_model
    from sos_core.phantom.dataset import DatasetConfig, generate_dataset

    work = Path(tempfile.mkdtemp(prefix="sos-cuda-"))
    data = work / "data"
    generate_dataset(DatasetConfig(count=80, modalities=("slice",), seed=7, workers=4), data)
    common = {"dataset": str(data), "modalities": ["slice"], "device": "cuda", "amp": True}
    teacher_cfg = {
        "kind": "teacher",
        "out": str(work / "teacher"),
        "model": {"key": "teacher", "kwargs": {"width": 0.75}},
        "epochs": 2,
        "batch_size": 32,
        **common,
    }
    t0 = time.perf_counter()
    teacher = train(config_from_dict(teacher_cfg), resume=False)
    teacher_s = time.perf_counter() - t0
    # Resume: a longer run of the same config continues after the saved epochs.
    resumed = train(config_from_dict({**teacher_cfg, "epochs": 3}), resume=True)
    assert [h["epoch"] for h in resumed.history] == [0, 1, 2], resumed.history
    student = train(
        config_from_dict(
            {
                "kind": "student",
                "out": str(work / "student"),
                "teacher": str(teacher.model_dir),
                "model": {"key": "student"},
                "epochs": 2,
                "batch_size": 32,
                **common,
            }
        ),
        resume=False,
    )
    losses = [h["train_loss"] for h in teacher.history + student.history]
    assert all(np.isfinite(losses)), losses
    model, card = load_model(student.model_dir, device="cpu")
    assert not next(model.parameters()).is_cuda
    return {
        "amp_dtype": str(mixed_precision_dtype(torch.device("cuda"))),
        "teacher_epoch_s": round(teacher_s / 2, 2),
        "losses": [round(v, 4) for v in losses],
        "student_card": card.version,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", help="JSON file for every figure")
    args = ap.parse_args()
    if not torch.cuda.is_available():
        print("no CUDA device here: nothing to check (this script is for a GPU machine).")
        sys.exit(2)
    checks = [device_selection, predictor_gpu_vs_cpu, cli_on_gpu, amp_training]
    ok = [c() for c in checks]
    if args.out:
        Path(args.out).write_text(json.dumps(RESULTS, indent=1))
    sys.exit(0 if all(ok) else 1)


if __name__ == "__main__":
    main()
