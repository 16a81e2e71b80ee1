"""Inference speed of the student: `Predictor.predict` vs the bare forward pass.

Measures, for one phantom cephalogram on the CPU, at the size the model reads cephalograms at:
steady-state latency of `Predictor.predict_image` (preprocessing + forward + Grad-CAM + flags;
median and p95) beside the forward pass alone; `sos predict --json` wall time from process start
to JSON (start-up included); throughput over a folder of 200 images; peak RSS. The model folder
defaults to the embedded student; `--untrained` builds a same-architecture student with random
weights in a temp folder (latency does not depend on the weights), which is what runs before
the student is trained.

    .venv/bin/python benchmarks/predict_latency.py [--model DIR | --untrained]
"""

from __future__ import annotations

import argparse
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._results import machine_line, write_section  # noqa: E402
from sos_core.inference.predictor import Predictor, default_model_dir  # noqa: E402
from sos_core.models.card import ModelCard  # noqa: E402
from sos_core.models.model_file import save_model  # noqa: E402
from sos_core.models.registry import create_model  # noqa: E402
from sos_core.preprocess import prepare_image  # noqa: E402
from sos_core.stages import get_scheme  # noqa: E402


def untrained_student(folder: Path, size: int = 256) -> Path:
    torch.manual_seed(0)
    model = create_model("student")
    scheme = get_scheme()
    card = ModelCard(
        name="sos-student",
        architecture="student",
        input_size=(size, size),
        stage_scheme=scheme.id,
        stage_names=scheme.names,
        version="untrained-bench",
        preprocessing={"input": "full"},
        intended_use="benchmark only",
    )
    save_model(folder, model, card)
    return folder


def _as_predictor_input(image01: np.ndarray) -> torch.Tensor:
    x = torch.from_numpy(image01)[None, None]
    return x.contiguous(memory_format=torch.channels_last)


def _pct(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model")
    ap.add_argument("--untrained", action="store_true")
    ap.add_argument("--repeats", type=int, default=60)
    ap.add_argument("--folder-size", type=int, default=200)
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp())
    model_dir = (
        untrained_student(tmp / "model")
        if args.untrained
        else Path(args.model)
        if args.model
        else default_model_dir()
    )
    from sos_core.phantom import draw_subject, render_ceph
    from sos_core.phantom.writers import write_ceph_dx

    ceph = render_ceph(draw_subject(5, stage=2))
    dcm = write_ceph_dx(ceph, tmp / "ceph.dcm", "bench")  # a DX file: read as a cephalogram
    pixels = ceph.image

    predictor = Predictor(model_dir, device="cpu")
    size = predictor.card.input_size_for("ceph")  # the size the model reads cephalograms at
    # The forward alone, as the Predictor runs it (BatchNorm folded, channels-last).
    x = _as_predictor_input(prepare_image(pixels, size)[0])
    model = predictor.model
    fwd, full = [], []
    with torch.inference_mode():
        for _ in range(5):
            model(x)
            predictor.predict_image(pixels, kind="ceph")
        for _ in range(args.repeats):  # interleaved so load changes hit both alike
            t = time.perf_counter()
            model(x)
            fwd.append(time.perf_counter() - t)
            t = time.perf_counter()
            predictor.predict_image(pixels, kind="ceph")
            full.append(time.perf_counter() - t)

    cli = []
    for _ in range(3):
        t = time.perf_counter()
        subprocess.run(
            [
                sys.executable,
                "-m",
                "sos_core.cli",
                "predict",
                "--json",
                "--model",
                str(model_dir),
                str(dcm),
            ],
            check=True,
            capture_output=True,
        )
        cli.append(time.perf_counter() - t)

    images = [render_ceph(draw_subject(1000 + i)).image for i in range(min(20, args.folder_size))]
    t = time.perf_counter()
    for i in range(args.folder_size):
        predictor.predict_image(images[i % len(images)], kind="ceph")
    folder_s = time.perf_counter() - t
    t = time.perf_counter()
    with torch.inference_mode():
        for i in range(args.folder_size):
            model(_as_predictor_input(prepare_image(images[i % len(images)], size)[0]))
    folder_fwd = time.perf_counter() - t
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    med_f, med_p = statistics.median(fwd), statistics.median(full)
    lines = [
        f"Run: `{' '.join(sys.argv)}` — {machine_line()}; torch threads {torch.get_num_threads()}.",
        "",
        f"Model `{predictor.card.version}` ({predictor.card.architecture}, read at {size} px "
        "for cephalograms); "
        f"one phantom cephalogram {pixels.shape[1]}x{pixels.shape[0]}; {args.repeats} interleaved "
        "repeats.",
        "",
        "| measurement | median | p95 | vs forward alone |",
        "| --- | ---: | ---: | ---: |",
        f"| forward pass alone | {med_f * 1e3:.1f} ms | {_pct(fwd, 95) * 1e3:.1f} ms | 1.00x |",
        f"| Predictor.predict_image (preprocess + forward + Grad-CAM + flags) | "
        f"{med_p * 1e3:.1f} ms | {_pct(full, 95) * 1e3:.1f} ms | {med_p / med_f:.2f}x |",
        f"| `sos predict --json` one image, process start to JSON | "
        f"{statistics.median(cli):.2f} s | - | - |",
        f"| {args.folder_size} images, Predictor | {args.folder_size / folder_s:.1f} img/s | - | "
        f"{folder_s / folder_fwd:.2f}x the time |",
        f"| {args.folder_size} images, preprocess + forward only | "
        f"{args.folder_size / folder_fwd:.1f} img/s | - | 1.00x |",
        f"| peak RSS of this process | {peak_mb:.0f} MB | - | - |",
        "",
        f"Targets: predict + Grad-CAM median <= 50 ms: {med_p * 1e3:.1f} ms "
        f"({'met' if med_p <= 0.05 else 'NOT met'}); `sos predict` one image < 3 s: "
        f"{statistics.median(cli):.2f} s ({'met' if statistics.median(cli) < 3 else 'NOT met'}).",
    ]
    table = "\n".join(lines)
    print(table)
    if not args.no_write:
        write_section("Inference: Predictor latency", table)


if __name__ == "__main__":
    main()
