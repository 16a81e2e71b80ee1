"""Benchmark: training and scoring throughput of the student on the CPU, by batch layout.

Why training runs in micro-batches (`micro_batch`) and scoring in batches of 4 on the CPU: a
batch of 32 student inputs at 256-384 px holds hundreds of MB of activations, and every
memory-bound layer (BatchNorm, ReLU, depthwise convolutions) then streams them from main
memory. Smaller pieces stay closer to the caches.

* Training: one step of the full distillation objective (L_cls + L_dist + L_attn + outside)
  through `training.accumulate_gradients`, the code `sos distill` runs, on a batch of 32
  with the whole batch at once (the peer: what training did before) or in micro-batches of
  16, 8 or 4; at 256 px (the shipped student) and 384 px.
* Scoring (validation, evaluation, the card's review statistics): eval-mode forward with
  Grad-CAM over 64 images, in the default layout in batches of 64 (the peer) or as
  `device.prepare_for_scoring` sets it up (channels-last, batches of 4).

Milliseconds per image, medians of interleaved repeats, ratio to the peer. Run it on a quiet
machine. Writes the section "Training speed: micro-batches on the CPU" of RESULTS.md.

    .venv/bin/python benchmarks/train_speed.py [--repeats 5] [--sizes 256 384] [--no-write]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._results import machine_line, write_section  # noqa: E402
from benchmarks._timing import interleaved_medians  # noqa: E402
from sos_core.device import configure_cpu_threads, prepare_for_scoring  # noqa: E402
from sos_core.distill.losses import DistillObjective  # noqa: E402
from sos_core.distill.training import _TrainForward, accumulate_gradients  # noqa: E402
from sos_core.explain import GradCam  # noqa: E402
from sos_core.inference.predictor import default_model_dir  # noqa: E402
from sos_core.models.model_file import load_model  # noqa: E402

CPU = torch.device("cpu")
BATCH = 32
MICRO = (None, 16, 8, 4)


def _training(size: int, repeats: int) -> dict[str, float]:
    model, _ = load_model(default_model_dir())
    model = model.to(memory_format=torch.channels_last).train()
    net = _TrainForward(model)
    objective = DistillObjective(alpha_cls=1.0, beta_dist=1.0, gamma_attn=2.0, delta_outside=0.5)
    g = torch.Generator().manual_seed(0)
    x = torch.rand(BATCH, 1, size, size, generator=g)
    y = torch.randint(0, 4, (BATCH,), generator=g)
    corner = torch.rand(BATCH, 2, generator=g) * (size * 0.6)
    boxes = torch.cat([corner, corner + size * 0.1], dim=1)
    t_logits, t_cams = torch.randn(BATCH, 4, generator=g), torch.rand(BATCH, 8, 8, generator=g)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5)
    scaler = torch.amp.GradScaler("cuda", enabled=False)

    def step(micro: int | None) -> None:
        optimizer.zero_grad(set_to_none=True)
        accumulate_gradients(
            net,
            objective,
            x,
            y,
            boxes=boxes,
            teacher_logits=t_logits,
            teacher_cams=t_cams,
            input_size=size,
            micro_batch=micro,
            device=CPU,
            channels_last=True,
            amp_dtype=None,
            scaler=scaler,
            ddp=False,
        )
        optimizer.step()

    fns = {_label(m): (lambda m=m: step(m)) for m in MICRO}  # type: ignore[misc]
    return {k: v / BATCH for k, v in interleaved_medians(fns, repeats).items()}


def _label(micro: int | None) -> str:
    return f"whole batch of {BATCH} (peer)" if micro is None else f"micro-batches of {micro}"


def _scoring(size: int, repeats: int) -> dict[str, float]:
    n = 64
    x = torch.rand(n, 1, size, size, generator=torch.Generator().manual_seed(1))
    before, _ = load_model(default_model_dir())
    after, _ = load_model(default_model_dir())
    batch = prepare_for_scoring(after)
    cams = {"before": GradCam(before), "after": GradCam(after)}

    def run(name: str, step: int) -> None:
        for i in range(0, n, step):
            cams[name](x[i : i + step])

    fns = {
        "default layout, batches of 64 (peer)": lambda: run("before", 64),
        f"channels-last, batches of {batch} (prepare_for_scoring)": lambda: run("after", batch),
    }
    return {k: v / n for k, v in interleaved_medians(fns, repeats).items()}


def _rows(results: dict[str, float]) -> list[str]:
    base = next(iter(results.values()))
    return [f"| {k} | {v * 1e3:.1f} | {base / v:.2f}x |" for k, v in results.items()]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--sizes", type=int, nargs="+", default=[256, 384])
    ap.add_argument("--threads", type=int, help="default: all cores, as training uses")
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()
    threads = configure_cpu_threads(args.threads)
    torch.manual_seed(0)
    _, card = load_model(default_model_dir())
    lines = [
        f"Run: `{' '.join(sys.argv)}` — {machine_line()}; torch {torch.__version__}, {threads} "
        f"thread(s), wall time, medians of {args.repeats} interleaved repeats.",
        "",
        f"Student `{card.version}` (its architecture and weights at each input size). Speed-up: "
        "the peer's time per image divided by this row's.",
    ]
    for size in args.sizes:
        lines += [
            "",
            f"**{size} px.** One training step of the full objective, batch of {BATCH}:",
            "",
            "| how | ms per image | speed-up |",
            "| --- | ---: | ---: |",
            *_rows(_training(size, args.repeats)),
            "",
            f"Scoring with Grad-CAM (eval mode), 64 images at {size} px:",
            "",
            "| how | ms per image | speed-up |",
            "| --- | ---: | ---: |",
            *_rows(_scoring(size, args.repeats)),
        ]
    text = "\n".join(lines)
    print(text)
    if not args.no_write:
        write_section("Training speed: micro-batches on the CPU", text)


if __name__ == "__main__":
    main()
