"""Multi-process training with torch's DDP (gloo on CPU) keeps every rank's weights equal."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.sos_core.training.conftest import teacher_config

ROOT = Path(__file__).resolve().parents[3]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _run_ddp(cfg: dict, tmp_path: Path, name: str) -> subprocess.CompletedProcess[str]:
    """Train `cfg` with torchrun on two gloo ranks; each rank writes rank<N>.sha to tmp_path."""
    cfg_path = tmp_path / f"{name}.json"
    cfg_path.write_text(json.dumps(cfg))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--nproc_per_node=2",
            "--master_addr=127.0.0.1",
            f"--master_port={_free_port()}",
            str(Path(__file__).with_name("ddp_worker.py")),
            str(cfg_path),
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        check=False,
    )


@pytest.mark.parametrize("micro_batch", [None, 3])
def test_two_gloo_ranks_end_with_identical_weights(
    tiny_dataset: Path, tmp_path: Path, micro_batch: int | None
) -> None:
    # With micro-batches, gradients are averaged across ranks after each batch's last piece.
    cfg = teacher_config(tiny_dataset, tmp_path / "run", epochs=2, micro_batch=micro_batch)
    proc = _run_ddp(cfg, tmp_path, "ddp")
    assert proc.returncode == 0, proc.stderr[-3000:]
    digests = [(tmp_path / f"rank{r}.sha").read_text() for r in (0, 1)]
    assert digests[0] == digests[1]
    # rank 0 alone wrote the model folder
    assert (tmp_path / "run" / "model" / "model.json").is_file()


def test_ddp_shards_differ_from_single_process(tiny_dataset: Path, tmp_path: Path) -> None:
    """Sanity: the DDP run really split the data (its weights differ from one process)."""
    from sos_core.distill.config import config_from_dict
    from sos_core.distill.training import train

    single = train(config_from_dict(teacher_config(tiny_dataset, tmp_path / "one", epochs=2)))
    proc = _run_ddp(teacher_config(tiny_dataset, tmp_path / "two", epochs=2), tmp_path, "ddp")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (tmp_path / "rank0.sha").read_text() != single.state_sha256
