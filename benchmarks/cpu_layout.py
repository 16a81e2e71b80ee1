"""Benchmark: memory layout and BatchNorm folding for the student on the CPU.

Why the Predictor and training run channels-last on the CPU, and why the Predictor folds
BatchNorm: for the embedded student at its input size, interleaved repeats of

* inference forward: NCHW (unfolded) vs NCHW with BatchNorm folded vs folded + channels-last;
* one training step (forward + backward, batch 16): NCHW vs channels-last;

each timed in wall-clock time at the thread count the Predictor and training use (all cores;
the layout changes how well oneDNN spreads the work over them), medians, with the ratio to the
NCHW baseline. Run it on a quiet machine: the load average is printed with the results. Writes
the section "CPU: memory layout and BatchNorm folding" of benchmarks/RESULTS.md.

    .venv/bin/python benchmarks/cpu_layout.py [--repeats 30] [--threads N] [--no-write]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
from torch.nn import functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._results import machine_line, write_section  # noqa: E402
from benchmarks._timing import interleaved_medians  # noqa: E402
from sos_core.device import configure_cpu_threads  # noqa: E402
from sos_core.inference.predictor import default_model_dir  # noqa: E402
from sos_core.models.inference_form import fold_batch_norm  # noqa: E402
from sos_core.models.model_file import load_model  # noqa: E402

CL = torch.channels_last


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=30)
    ap.add_argument("--train-repeats", type=int, default=6)
    ap.add_argument("--threads", type=int, help="default: as the Predictor (all cores)")
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()
    threads = configure_cpu_threads(args.threads)
    torch.manual_seed(0)

    plain, card = load_model(default_model_dir())
    folded, _ = load_model(default_model_dir())
    fold_batch_norm(folded)
    folded_cl, _ = load_model(default_model_dir())
    folded_cl = fold_batch_norm(folded_cl).to(memory_format=CL)
    plain.eval()
    size = int(card.input_size[0])
    x = torch.rand(1, 1, size, size)
    with torch.inference_mode():
        infer = interleaved_medians(
            {
                "NCHW": lambda: plain(x),
                "NCHW, BatchNorm folded": lambda: folded(x),
                "channels-last, BatchNorm folded (the Predictor)": lambda: folded_cl(
                    x.contiguous(memory_format=CL)
                ),
            },
            args.repeats,
        )
        diff = float((plain(x) - folded_cl(x.contiguous(memory_format=CL))).abs().max())

    train_nchw, _ = load_model(default_model_dir())
    train_cl, _ = load_model(default_model_dir())
    train_cl = train_cl.to(memory_format=CL)
    xb, yb = torch.rand(16, 1, size, size), torch.randint(0, 4, (16,))
    xb_cl = xb.contiguous(memory_format=CL)

    def step(model: torch.nn.Module, inputs: torch.Tensor) -> None:
        model.train()
        model.zero_grad(set_to_none=True)
        F.cross_entropy(model(inputs), yb).backward()

    train = interleaved_medians(
        {"NCHW": lambda: step(train_nchw, xb), "channels-last": lambda: step(train_cl, xb_cl)},
        args.train_repeats,
    )

    def rows(results: dict[str, float], unit: float, fmt: str) -> list[str]:
        base = next(iter(results.values()))
        return [f"| {k} | {v * unit:{fmt}} | {v / base:.2f}x |" for k, v in results.items()]

    lines = [
        f"Run: `{' '.join(sys.argv)}` — {machine_line()}; torch {torch.__version__}, {threads} "
        "thread(s), wall time, medians of interleaved repeats.",
        "",
        f"Embedded student `{card.version}` at {size} px. Inference, batch 1 "
        f"({args.repeats} repeats; largest output difference folded + channels-last vs plain: "
        f"{diff:.1e}):",
        "",
        "| layout | ms | vs NCHW |",
        "| --- | ---: | ---: |",
        *rows(infer, 1e3, ".1f"),
        "",
        f"One training step, forward + backward, batch 16 ({args.train_repeats} repeats):",
        "",
        "| layout | s | vs NCHW |",
        "| --- | ---: | ---: |",
        *rows(train, 1.0, ".2f"),
    ]
    text = "\n".join(lines)
    print(text)
    if not args.no_write:
        write_section("CPU: memory layout and BatchNorm folding", text)


if __name__ == "__main__":
    main()
