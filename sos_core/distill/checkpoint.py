"""Resumable training checkpoints without pickle (MW-1).

Model and optimizer tensors go to safetensors files; everything else (epoch, best score, RNG
states, optimizer hyper-parameters) to JSON. Writes are atomic: a checkpoint folder is written
beside the old one and swapped in with `os.replace`.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

from safetensors.torch import load_file, save_file

if TYPE_CHECKING:
    import torch


def _flatten_optimizer(state: dict[str, Any]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    import torch

    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for idx, per_param in state["state"].items():
        for name, value in per_param.items():
            if isinstance(value, torch.Tensor):
                tensors[f"{idx}.{name}"] = value.detach().cpu().contiguous()
            else:
                scalars.setdefault(str(idx), {})[name] = value
    return tensors, {"param_groups": state["param_groups"], "scalars": scalars}


def _unflatten_optimizer(tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> dict[str, Any]:
    state: dict[int, dict[str, Any]] = {}
    for key, value in tensors.items():
        idx, name = key.split(".", 1)
        state.setdefault(int(idx), {})[name] = value
    for idx, values in meta["scalars"].items():
        state.setdefault(int(idx), {}).update(values)
    return {"state": state, "param_groups": meta["param_groups"]}


def save_checkpoint(
    folder: Path,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    state: dict[str, Any],
    best_state: dict[str, torch.Tensor] | None = None,
    averaged: torch.nn.Module | None = None,
) -> None:
    """Write model, optimizer, `state` (JSON-able), the best weights so far and the averaged
    model (an EMA of the weights, when the run keeps one) to `folder`.

    The folder is replaced atomically, so a crash leaves the previous checkpoint intact.
    """
    import torch

    tmp = folder.with_name(folder.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    save_file(
        {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()},
        str(tmp / "model.safetensors"),
    )
    if best_state is not None:
        save_file(
            {k: v.detach().cpu().contiguous() for k, v in best_state.items()},
            str(tmp / "best.safetensors"),
        )
    if averaged is not None:
        save_file(
            {k: v.detach().cpu().contiguous() for k, v in averaged.state_dict().items()},
            str(tmp / "averaged.safetensors"),
        )
    opt_tensors, opt_meta = _flatten_optimizer(optimizer.state_dict())
    opt_tensors["__torch_rng__"] = torch.get_rng_state()
    save_file(opt_tensors, str(tmp / "optimizer.safetensors"))
    (tmp / "state.json").write_text(json.dumps({"state": state, "optimizer": opt_meta}))
    old = folder.with_name(folder.name + ".old")
    if folder.exists():
        os.replace(folder, old)
    os.replace(tmp, folder)
    shutil.rmtree(old, ignore_errors=True)


def load_checkpoint(
    folder: Path,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    averaged: torch.nn.Module | None = None,
) -> tuple[dict[str, Any], dict[str, torch.Tensor] | None] | None:
    """Restore model, optimizer and the averaged model (if the run keeps one) from `folder`.

    Returns (saved state, best weights or None), or None when there is no checkpoint.
    """
    import torch

    if not (folder / "state.json").is_file():
        return None
    meta = json.loads((folder / "state.json").read_text())
    model.load_state_dict(load_file(str(folder / "model.safetensors")), strict=True)
    tensors = load_file(str(folder / "optimizer.safetensors"))
    torch.set_rng_state(tensors.pop("__torch_rng__"))
    optimizer.load_state_dict(_unflatten_optimizer(tensors, meta["optimizer"]))
    if averaged is not None:
        averaged.load_state_dict(load_file(str(folder / "averaged.safetensors")), strict=True)
    best = folder / "best.safetensors"
    return meta["state"], (load_file(str(best)) if best.is_file() else None)
