"""Benchmark: training and scoring throughput of the student on the CPU, by memory handling.

A batch of 32 student inputs at 256-384 px holds hundreds of MB of activations in buffers of
30-300 MB each. Three things decide how fast a step runs on the CPU, each a row below:

* micro-batches (`micro_batch`): smaller pieces, smaller buffers;
* the allocator (`sos_core.cpu_heap.retained_heap`): by default glibc maps every buffer above
  32 MB afresh and unmaps it when freed, so each step faults its pages in again;
* deterministic mode's NaN fill of every new tensor (`fill_uninitialized_memory`).

* Training: one step of the full distillation objective (L_cls + L_dist + L_attn + outside)
  through `training.accumulate_gradients`, the code `sos distill` runs, on a batch of 32,
  deterministic algorithms on as in training. The peer is the whole batch with malloc's
  defaults and the NaN fill: what training did before micro-batches. Rows with malloc's
  defaults are interleaved with each other, then the rows with the retained heap (it is
  process-wide, so the two groups cannot interleave).
* Scoring (validation, evaluation, the card's review statistics): eval-mode forward with
  Grad-CAM over 64 images, in the default layout in batches of 64 (the peer) or as
  `device.prepare_for_scoring` sets it up (channels-last, batches of 4).

Milliseconds per image, medians of interleaved repeats, ratio to the peer. Run it on a quiet
machine. Writes the section "Training speed: memory handling on the CPU" of RESULTS.md.

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
from sos_core.cpu_heap import retained_heap  # noqa: E402
from sos_core.device import configure_cpu_threads, prepare_for_scoring  # noqa: E402
from sos_core.distill.losses import DistillObjective  # noqa: E402
from sos_core.distill.training import _TrainForward, accumulate_gradients  # noqa: E402
from sos_core.explain import GradCam  # noqa: E402
from sos_core.inference.predictor import default_model_dir  # noqa: E402
from sos_core.models.model_file import load_model  # noqa: E402

CPU = torch.device("cpu")
BATCH = 32
# (micro-batch, NaN fill of new tensors); run with malloc's defaults, then in a retained heap.
DEFAULT_HEAP = ((None, True), (8, True), (8, False))
RETAINED_HEAP = ((None, False), (8, False), (4, False))
TRAINING_NOW = (8, False, True)  # what training.train does on the CPU: the row to compare


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

    def step(micro: int | None, fill: bool) -> None:
        torch.utils.deterministic.fill_uninitialized_memory = fill
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

    def fns(rows: tuple[tuple[int | None, bool], ...], heap: bool) -> dict[str, object]:
        return {_label(m, f, heap): (lambda m=m, f=f: step(m, f)) for m, f in rows}

    torch.use_deterministic_algorithms(True, warn_only=True)  # as training.seed_everything
    try:
        times = interleaved_medians(fns(DEFAULT_HEAP, False), repeats)  # type: ignore[arg-type]
        with retained_heap():
            times |= interleaved_medians(fns(RETAINED_HEAP, True), repeats)  # type: ignore[arg-type]
    finally:
        torch.use_deterministic_algorithms(False)
        torch.utils.deterministic.fill_uninitialized_memory = True
    return {k: v / BATCH for k, v in times.items()}


def _label(micro: int | None, fill: bool, heap: bool) -> str:
    how = f"whole batch of {BATCH}" if micro is None else f"micro-batches of {micro}"
    how += ", retained heap" if heap else ", malloc defaults"
    how += ", NaN fill" if fill else ", no fill"
    if (micro, fill, heap) == (None, True, False):
        how += " (peer)"
    if (micro, fill, heap) == TRAINING_NOW:
        how += " (training now)"
    return how


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
        write_section("Training speed: memory handling on the CPU", text)


if __name__ == "__main__":
    main()
