"""Training runs: the crop teacher and the full-image student (DESIGN.md "The method").

`train(config)` is one plain synchronous function (the caller picks the thread or process):
seeded, resumable from the last epoch's checkpoint, early-stopped on validation, calibrated
(temperature fitted on validation) and saved as a model folder with its config beside it.
Under `torchrun` it trains with DDP, rank 0 writing the files.
"""

from __future__ import annotations

import contextlib
import copy
import json
import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn, update_bn

from sos_core import __version__
from sos_core.cpu_heap import retained_heap
from sos_core.device import choose_device, prepare_for_scoring
from sos_core.distill.checkpoint import load_checkpoint, save_checkpoint
from sos_core.distill.config import TrainConfig, save_config
from sos_core.distill.dataset import (
    LoadedCases,
    SizedCases,
    crop_batch,
    crop_squares,
    load_cases,
    load_cases_sized,
    read_manifest,
    select,
)
from sos_core.distill.distributed import (
    DistContext,
    all_reduce_mean,
    init_distributed,
    shutdown_distributed,
    sync_buffers,
)
from sos_core.distill.losses import AttentionTransferLoss, DistillObjective
from sos_core.distill.rescale import random_factors, rescale_from_native
from sos_core.errors import ParameterError
from sos_core.explain.grad_cam import GradCam, class_activation_map
from sos_core.inference.zoom import ZoomSpec, combine, crop_reading, second_look
from sos_core.models.card import ModelCard
from sos_core.models.model_file import load_model, save_model
from sos_core.models.registry import create_model
from sos_core.preprocess import PREPROCESSING_ID
from sos_core.stages import get_scheme

logger = logging.getLogger(__name__)

Progress = Callable[[float], None]


@dataclass(frozen=True, slots=True)
class TrainResult:
    """What a finished run produced. history: one dict of metrics per epoch."""

    model_dir: Path
    card: ModelCard
    history: tuple[dict[str, float], ...]
    best_epoch: int
    stopped_early: bool
    state_sha256: str  # of the final weights on this rank (DDP ranks must agree)


@dataclass(frozen=True, slots=True)
class _Data:
    """Tensors of one split, ready for the model (N x 1 x S x S inputs)."""

    inputs: torch.Tensor
    labels: torch.Tensor
    boxes: torch.Tensor  # crop squares in model-input pixels (students)
    cases: LoadedCases


def seed_everything(seed: int) -> None:
    """Deterministic CPU runs: same seed, same weights (MONAI `set_determinism`).

    Deterministic algorithms would also fill every new tensor with NaN before use, a write of
    each activation buffer that no result reads: a student step at 384 px took 1.13x the time
    with it (RESULTS.md "Training speed"). Runs stay deterministic without it; only a kernel
    that read uninitialised memory, a bug, would differ between runs.
    """
    torch.manual_seed(seed)
    np.random.seed(seed)  # noqa: NPY002 - third-party code may read the global state
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.utils.deterministic.fill_uninitialized_memory = False


def _load_split(config: TrainConfig, split: str) -> LoadedCases:
    records = select(read_manifest(config.dataset), split, config.modalities)
    if split == "train" and config.max_train_cases:
        records = records[: config.max_train_cases]
    if not records:
        raise ParameterError(
            f"the dataset has no {split} cases of modality {', '.join(config.modalities)}."
        )
    return load_cases(records, config.input_size)


def _to_data(config: TrainConfig, cases: LoadedCases) -> _Data:
    boxes = crop_squares(torch.from_numpy(cases.boxes), config.crop_context)
    return _Data(
        inputs=torch.from_numpy(cases.inputs).unsqueeze(1),
        labels=torch.from_numpy(cases.labels),
        boxes=boxes,
        cases=cases,
    )


def _teacher_inputs(
    config: TrainConfig, cases: LoadedCases, rng: np.random.Generator | None
) -> torch.Tensor:
    crops = crop_batch(
        cases.natives,
        cases.native_boxes,
        config.crop_size,
        context=config.crop_context,
        rng=rng,
        jitter=config.box_jitter if rng is not None else 0.0,
    )
    return torch.from_numpy(crops).unsqueeze(1)


@torch.no_grad()
def teacher_targets(
    teacher: nn.Module,
    crops: torch.Tensor,
    labels: torch.Tensor,
    batch: int = 128,
    attn_map: str = "gradcam",
) -> tuple[torch.Tensor, torch.Tensor]:
    """The frozen teacher's logits and attention maps (its own feature grid) on crops:
    the true-class Grad-CAM, or Q(A) for the attention-transfer baseline."""
    teacher.eval()
    logits, cams = [], []
    for i in range(0, len(crops), batch):
        feats, lg = teacher.forward_with_features(crops[i : i + batch])
        logits.append(lg.float())
        cams.append(
            attention_maps(feats, teacher.head_weight, labels[i : i + batch], attn_map).float()
        )
    return torch.cat(logits), torch.cat(cams)


def attention_maps(
    features: torch.Tensor, head_weight: torch.Tensor, labels: torch.Tensor, attn_map: str
) -> torch.Tensor:
    """The maps the attention term matches, for teacher and student alike: the true-class
    Grad-CAM, or Q(A) for the attention-transfer baseline."""
    if attn_map == "activation":
        return AttentionTransferLoss.activation_map(features)
    return class_activation_map(features, head_weight, labels)


def _batches(n: int, batch: int, rng: np.random.Generator, ctx: DistContext) -> list[np.ndarray]:
    order = rng.permutation(n)
    per_rank = len(order) // ctx.world_size if ctx.enabled else len(order)
    mine = order[ctx.rank :: ctx.world_size][:per_rank] if ctx.enabled else order
    return [mine[i : i + batch] for i in range(0, len(mine), batch) if len(mine[i : i + batch])]


def learning_rate(
    base: float,
    epoch: int,
    epochs: int,
    step: int = 0,
    steps_per_epoch: int = 1,
    warmup_epochs: float = 0.0,
) -> float:
    """Cosine decay per epoch, times a linear ramp over the first `warmup_epochs` (per step).

    The ramp is for fine-tuning: AdamW's first updates are about `base` in size for every
    weight whatever its gradient, and at 3e-3 they can wipe out what the warm-up on crops
    taught the student before the new loss has a direction (RESULTS.md "an lr warm-up for
    the 448 px student").
    """
    lr = base * 0.5 * (1 + np.cos(np.pi * epoch / epochs))
    if warmup_epochs > 0:
        done = epoch + (step + 1) / max(steps_per_epoch, 1)
        lr *= min(1.0, done / warmup_epochs)
    return float(lr)


def accumulate_gradients(
    net: nn.Module,
    objective: DistillObjective | None,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    boxes: torch.Tensor,
    teacher_logits: torch.Tensor | None,
    teacher_cams: torch.Tensor | None,
    input_size: int,
    micro_batch: int | None,
    device: torch.device,
    channels_last: bool,
    amp_dtype: torch.dtype | None,
    scaler: torch.amp.GradScaler,
    ddp: bool,
    zoom: ZoomCrops | None = None,
) -> float:
    """Backward of one batch's loss, in pieces of at most `micro_batch`; returns the loss.

    `net` is `_TrainForward` (or DDP around it): logits and the true-class maps. Without an
    objective (teachers) the loss is cross-entropy. Every term is a per-image mean, so pieces
    weighted by their share of the batch add up to the whole batch's gradient; only BatchNorm
    in training mode sees each piece on its own.
    """
    pieces = _pieces(len(y), micro_batch)
    total = 0.0
    for k, part in enumerate(pieces):
        share = len(part) / len(y)
        # DDP averages gradients across ranks once per batch, after its last piece.
        last = k == len(pieces) - 1
        with contextlib.nullcontext() if last or not ddp else net.no_sync():  # type: ignore[operator]
            xp = x[part].to(device)
            if channels_last:
                xp = xp.contiguous(memory_format=torch.channels_last)
            yp = y[part].to(device)
            with torch.autocast(
                device_type=device.type,
                dtype=amp_dtype or torch.float32,
                enabled=amp_dtype is not None,
            ):
                zp = zoom.piece(part) if zoom is not None else None
                logits, cams, crop_logits = net(xp, yp, zp)
                if objective is None:
                    loss = F.cross_entropy(logits, yp)
                else:
                    t_logits = _piece(teacher_logits, part, device)
                    loss = objective(
                        logits,
                        yp,
                        teacher_logits=t_logits,
                        student_cam=cams,
                        teacher_cam=_piece(teacher_cams, part, device),
                        boxes=boxes[part].to(device),
                        input_size=(input_size, input_size),
                    ).total
                    if crop_logits is not None and zp is not None:
                        loss = loss + zp.weight * objective.label_terms(crop_logits, yp, t_logits)
            scaler.scale(loss * share).backward()
        total += float(loss.detach()) * share
    return total


def _piece(
    value: torch.Tensor | None, part: torch.Tensor, device: torch.device
) -> torch.Tensor | None:
    return None if value is None else value[part].to(device)


def _pieces(n: int, micro_batch: int | None) -> list[torch.Tensor]:
    """Index pieces of one batch of n images: at most `micro_batch` each, sizes within one."""
    count = 1 if not micro_batch else -(-n // micro_batch)
    return list(torch.arange(n).tensor_split(count))


def _augment(
    x: torch.Tensor, gen: torch.Generator, gamma_sd: float, noise_sd: float
) -> torch.Tensor:
    """Exposure and noise jitter; geometry is left alone so the boxes stay exact."""
    gamma = torch.exp(torch.randn(x.shape[0], 1, 1, 1, generator=gen) * gamma_sd)
    noise = torch.randn(x.shape, generator=gen) * noise_sd
    return (x.clamp_min(0).pow(gamma) + noise).clamp(0, 1)


def shift_whole_pixels(
    x: torch.Tensor, boxes: torch.Tensor, gen: torch.Generator, amount: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Random translation by whole pixels (up to ± amount of the size), boxes moved along.

    Full images only: without it a student can memorise where things are in a few hundred
    training images instead of learning what the synchondrosis looks like. Whole pixels and no
    zoom because the stage is told by a gap one or two pixels wide: a sub-pixel resampling
    blurs it in every training image but in no validation image, and the student never
    learns it. Uncovered borders are zero (the image's black).
    """
    b, _, h, w = x.shape
    limit = torch.tensor([w, h]) * amount
    shifts = ((torch.rand(b, 2, generator=gen) * 2 - 1) * limit).round().long()  # (dx, dy)
    out = torch.zeros_like(x)
    for i, (dx, dy) in enumerate(shifts.tolist()):
        src_x, dst_x = slice(max(0, -dx), min(w, w - dx)), slice(max(0, dx), min(w, w + dx))
        src_y, dst_y = slice(max(0, -dy), min(h, h - dy)), slice(max(0, dy), min(h, h + dy))
        out[i, :, dst_y, dst_x] = x[i, :, src_y, src_x]
    return out, boxes + shifts.repeat(1, 2).to(boxes.dtype)


def train(
    config: TrainConfig,
    *,
    progress: Progress | None = None,
    cancel: threading.Event | None = None,
    resume: bool = True,
) -> TrainResult:
    """Train a teacher (on crops) or a student (distilled on full images) and save it."""
    device = choose_device(config.device)
    ctx = init_distributed(device)
    # On the CPU, freed activations stay in the heap for the next step (sos_core.cpu_heap).
    heap = retained_heap() if device.type == "cpu" else contextlib.nullcontext()
    try:
        with heap:
            return _train(config, device, ctx, progress, cancel, resume)
    finally:
        shutdown_distributed(ctx)


def _train(
    config: TrainConfig,
    device: torch.device,
    ctx: DistContext,
    progress: Progress | None,
    cancel: threading.Event | None,
    resume: bool,
) -> TrainResult:
    seed_everything(config.seed)
    out = Path(config.out)
    is_student = config.kind == "student"
    train_cases, val_cases = _load_split(config, "train"), _load_split(config, "val")
    train_data, val_data = _to_data(config, train_cases), _to_data(config, val_cases)

    model = create_model(config.model.key, **config.model.kwargs)
    if config.init_from:  # fine-tuning: start from saved weights of the very same architecture
        init, init_card = load_model(config.init_from, device="cpu")
        if not _same_model(init_card, config):
            raise ParameterError("init_from holds a model of another architecture than `model`.")
        model.load_state_dict(init.state_dict(), strict=True)
    model = model.to(device)
    cuda = device.type == "cuda"
    # Channels-last on the CPU too: a student step (forward + backward, 256 px) takes 0.62x the
    # time of NCHW on this machine (benchmarks/cpu_layout.py).
    channels_last = device.type in ("cpu", "cuda")
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    net: nn.Module = _TrainForward(model, config.loss.attn_map if is_student else "gradcam")
    if ctx.enabled:
        net = nn.parallel.DistributedDataParallel(
            net, device_ids=[device.index] if cuda and device.index is not None else None
        )
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=config.lr, weight_decay=config.weight_decay
    )
    # With ema_decay, validation and the saved weights read the moving average, not `model`.
    averaged = (
        AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(config.ema_decay))
        if config.ema_decay > 0
        else None
    )
    if averaged is not None:  # the average starts at the starting weights, not after step 1
        averaged.update_parameters(model)
    evaluated = averaged.module if averaged is not None else model
    amp_dtype = mixed_precision_dtype(device) if config.amp else None
    scaler = torch.amp.GradScaler("cuda", enabled=amp_dtype == torch.float16)
    logger.info("training on %s, mixed precision %s", device, amp_dtype or "off")

    teacher_card = None
    objective: DistillObjective | None = None
    if is_student:
        teacher, teacher_card = load_model(config.teacher or "", device="cpu")
        t_logits, t_cams = teacher_targets(
            teacher,
            _teacher_inputs(config, train_cases, None),
            train_data.labels,
            attn_map=config.loss.attn_map,
        )
        w = config.loss
        objective = DistillObjective(
            alpha_cls=w.cls,
            beta_dist=w.dist,
            gamma_attn=w.attn,
            delta_outside=w.outside,
            temperature=w.temperature,
            attn_map=w.attn_map,  # type: ignore[arg-type] - checked by LossWeights
        )

    zoom = zoom_spec(config, train_cases)

    start_epoch, best, history, stale, best_epoch = 0, None, [], 0, 0
    best_state: dict[str, torch.Tensor] | None = None
    ckpt_dir = out / "checkpoint"
    if resume:
        restored = load_checkpoint(ckpt_dir, model, optimizer, averaged)
        if restored is not None:
            saved, best_state = restored
            start_epoch, history, stale = saved["epoch"] + 1, saved["history"], saved["stale"]
            best = tuple(saved["best"]) if saved["best"] else None
            best_epoch = saved["best_epoch"]
            logger.info("resumed from epoch %d", start_epoch)

    total_steps = config.epochs
    stopped_early = False
    for epoch in range(start_epoch, config.epochs):
        if cancel is not None and cancel.is_set():
            break
        lr = learning_rate(config.lr, epoch, config.epochs)
        rng = np.random.default_rng([config.seed, epoch])
        gen = torch.Generator().manual_seed(config.seed * 1000 + epoch)
        net.train()
        x_all = _teacher_inputs(config, train_cases, rng) if not is_student else train_data.inputs
        losses: list[float] = []
        batches = _batches(len(x_all), config.batch_size, rng, ctx)
        for step, idx_np in enumerate(batches):
            for group in optimizer.param_groups:
                group["lr"] = learning_rate(
                    config.lr, epoch, config.epochs, step, len(batches), config.warmup_epochs
                )
            idx = torch.from_numpy(idx_np)
            x, boxes = x_all[idx], train_data.boxes[idx]
            if is_student and config.scale_jitter > 0:
                factors = random_factors(len(idx_np), config.scale_jitter, gen)
                x, boxes = rescale_from_native(train_data.cases, idx_np, boxes, factors)
            x = _augment(x, gen, config.gamma_sd, config.noise_sd)
            if is_student and config.shift > 0:
                x, boxes = shift_whole_pixels(x, boxes, gen, config.shift)
            crops = None
            if zoom is not None:
                crops = ZoomCrops(
                    training_zoom_centres(boxes, config.crop_context, config.zoom_jitter, rng),
                    zoom.crop_side(config.input_size),
                    zoom.size,
                    config.zoom_weight,
                )
            optimizer.zero_grad(set_to_none=True)
            loss = accumulate_gradients(
                net,
                objective,
                x,
                train_data.labels[idx],
                boxes=boxes,
                teacher_logits=t_logits[idx] if objective is not None else None,
                teacher_cams=t_cams[idx] if objective is not None else None,
                input_size=config.input_size,
                micro_batch=config.micro_batch,
                device=device,
                channels_last=channels_last,
                amp_dtype=amp_dtype,
                scaler=scaler,
                ddp=ctx.enabled,
                zoom=crops,
            )
            scaler.step(optimizer)
            scaler.update()
            if averaged is not None:
                averaged.update_parameters(model)
            losses.append(loss)
        refresh_batchnorm_stats(evaluated, x_all, config, epoch, device, channels_last)
        sync_buffers(evaluated, ctx)
        val_x = _teacher_inputs(config, val_cases, None) if not is_student else val_data.inputs
        val_logits = predict_logits(evaluated, val_x, device, zoom)
        acc = all_reduce_mean(float((val_logits.argmax(1) == val_data.labels).float().mean()), ctx)
        nll = all_reduce_mean(float(F.cross_entropy(val_logits, val_data.labels)), ctx)
        row = {
            "epoch": epoch,
            "lr": lr,
            "train_loss": float(np.mean(losses)),
            "val_acc": acc,
            "val_nll": nll,
        }
        history.append(row)
        logger.info("epoch %d %s", epoch, row)
        score = (round(acc, 6), -nll)
        if best is None or score > best:
            best, stale, best_epoch = score, 0, epoch
            best_state = copy.deepcopy(evaluated.state_dict())
        else:
            stale += 1
        if ctx.is_main:
            save_checkpoint(
                ckpt_dir,
                model,
                optimizer,
                {
                    "epoch": epoch,
                    "history": history,
                    "stale": stale,
                    "best": list(best) if best else None,
                    "best_epoch": best_epoch,
                },
                best_state,
                averaged,
            )
        if progress is not None:
            progress((epoch + 1) / total_steps)
        if stale >= config.patience:
            stopped_early = True
            break

    if best_state is not None:
        model.load_state_dict(best_state)
    card = _finish(config, model, train_cases, val_cases, teacher_card, history, ctx)
    return TrainResult(
        out / "model", card, tuple(history), best_epoch, stopped_early, state_digest(model)
    )


def _same_model(card: ModelCard, config: TrainConfig) -> bool:
    """Whether a saved model is the architecture `config.model` builds. Compared as JSON: the
    card freezes lists into tuples, the config keeps lists."""
    return json.dumps([card.architecture, dict(card.kwargs)], sort_keys=True) == json.dumps(
        [config.model.key, config.model.kwargs], sort_keys=True
    )


def describe_trained(config: TrainConfig, model_dir: str | Path) -> TrainResult:
    """What `train(config)` gives after its last epoch, for a model already trained: the card
    remade for `config` (validation, calibration, review statistics, reading sizes) and saved
    with the very same weights to `config.out`/model. Nothing is trained.

    For a student trained without `read_sizes` that should read a modality at another size:
    the preset's recipe with `read_sizes` added describes the weights it already made.

    Raises
    ------
    ParameterError
        The folder holds another architecture than `config.model`.
    """
    model, card = load_model(model_dir, device="cpu")
    if not _same_model(card, config):
        raise ParameterError(f"{Path(model_dir).name} holds another model than the config's.")
    history_file = Path(model_dir).parent / "history.json"
    history = json.loads(history_file.read_text()) if history_file.is_file() else []
    teacher_card = load_model(config.teacher, device="cpu")[1] if config.teacher else None
    train_cases, val_cases = _load_split(config, "train"), _load_split(config, "val")
    ctx = DistContext()
    with retained_heap():
        new_card = _finish(config, model, train_cases, val_cases, teacher_card, history, ctx)
    # best_epoch -1: nothing was trained here.
    return TrainResult(
        Path(config.out) / "model", new_card, tuple(history), -1, False, state_digest(model)
    )


def refresh_batchnorm_stats(
    model: nn.Module,
    x_all: torch.Tensor,
    config: TrainConfig,
    epoch: int,
    device: torch.device,
    channels_last: bool,
) -> None:
    """BatchNorm statistics of the weights as they are, from un-augmented training inputs.

    BatchNorm's running averages follow the last ~10 steps, each taken with other weights; at
    lr 3e-3 the weights move faster than that, and validation in eval mode read a network that
    no longer existed: chance for 3 to 9 epochs while the training loss fell
    (benchmarks/bn_stats.py; RESULTS.md "BatchNorm statistics"). Validation, early stopping
    and the saved weights all read them, so they are recomputed before each validation from
    `config.bn_stats_images` inputs ("precise BN", Wu & Johnson 2021) with torch's `update_bn`.
    The sample depends on the seed and epoch only, so every DDP rank computes the same one.
    Un-augmented: validation and inference see images without the training noise.
    """
    n = min(config.bn_stats_images, len(x_all))
    if n == 0:
        return
    gen = torch.Generator().manual_seed(config.seed * 1000 + epoch + 500)
    idx = torch.randperm(len(x_all), generator=gen)[:n]

    step = config.micro_batch or config.batch_size  # the batches BatchNorm saw in training

    def batches() -> Iterator[torch.Tensor]:
        for i in range(0, n, step):
            x = x_all[idx[i : i + step]].to(device)
            yield x.contiguous(memory_format=torch.channels_last) if channels_last else x

    update_bn(batches(), model)


def mixed_precision_dtype(device: torch.device) -> torch.dtype | None:
    """bfloat16 on GPUs that have it, else float16 (with loss scaling); None off CUDA.

    bfloat16 first: it has float32's range, so the large gradient of a nearly dead Grad-CAM
    (the attention terms divide by its sum) stays finite, where float16 overflows and the
    scaler skips step after step — seen on an H200, where a student from scratch never learned.
    """
    if device.type != "cuda":
        return None
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


def state_digest(model: nn.Module) -> str:
    """SHA-256 over every tensor of the state dict, in key order."""
    import hashlib

    h = hashlib.sha256()
    for key, value in sorted(model.state_dict().items()):
        h.update(key.encode())
        h.update(value.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


class _TrainForward(nn.Module):
    """Logits and the true-class Grad-CAM in one forward, so DDP sees every parameter use.

    With `attn_map` "activation" (the attention-transfer baseline) the map is Q(A) instead.
    """

    def __init__(self, model: nn.Module, attn_map: str = "gradcam") -> None:
        super().__init__()
        self.model = model
        self.attn_map = attn_map

    def forward(
        self, x: torch.Tensor, labels: torch.Tensor, zoom: ZoomCrops | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        feats, logits = self.model.forward_with_features(x)
        cams = attention_maps(feats, self.model.head_weight, labels, self.attn_map)
        if zoom is None:
            return logits, cams, None
        # BatchNorm on running statistics, as at inference (sos_core.inference.zoom)
        crop_logits = crop_reading(self.model, x, zoom.centres.to(x.device), zoom.side, zoom.size)
        return logits, cams, crop_logits


@dataclass(frozen=True, slots=True)
class ZoomCrops:
    """Where one batch's (or piece's) second-look crops are taken, and their loss weight."""

    centres: torch.Tensor  # (N, 2) x, y in input pixels
    side: float  # crop square side, input pixels
    size: int
    weight: float

    def piece(self, part: torch.Tensor) -> ZoomCrops:
        return ZoomCrops(self.centres[part], self.side, self.size, self.weight)


def training_zoom_centres(
    boxes: torch.Tensor, context: float, jitter: float, rng: np.random.Generator
) -> torch.Tensor:
    """Centres of the training crops: each box's centre shifted by up to ± `jitter` of its side.

    `boxes` are the crop squares (`crop_squares`, side = box side x `context`). The shift
    stands in for where the student's Grad-CAM peak falls at inference: 0.12-0.16 of the box
    side from its centre (median), 0.3-0.37 (90th percentile), for the 3.0 students on test
    cephalograms (benchmarks/zoom_probe.py).
    """
    side = (boxes[:, 2] - boxes[:, 0]) / context
    centre = torch.stack([(boxes[:, 0] + boxes[:, 2]) / 2, (boxes[:, 1] + boxes[:, 3]) / 2], 1)
    shift = torch.from_numpy(rng.uniform(-jitter, jitter, (len(boxes), 2))).float()
    return centre + shift * side[:, None]


def zoom_spec(config: TrainConfig, cases: LoadedCases) -> ZoomSpec | None:
    """The card's zoom for a student trained with the second look: the median box side."""
    if config.kind != "student" or config.zoom_weight <= 0:
        return None
    b = cases.boxes
    side = float(np.median(np.maximum(b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]))) / config.input_size
    return ZoomSpec(
        side=round(side, 5), context=config.zoom_context, size=config.zoom_size, mix=config.zoom_mix
    )


@torch.no_grad()
def predict_logits(
    model: nn.Module, x: torch.Tensor, device: torch.device, zoom: ZoomSpec | None = None
) -> torch.Tensor:
    """Eval-mode logits for a whole tensor of inputs, on the CPU, float32; with `zoom`, the
    combined logits of both readings, as inference makes them."""
    batch = prepare_for_scoring(model)
    was = model.training
    model.eval()
    try:
        out = []
        for i in range(0, len(x), batch):
            xb = x[i : i + batch].to(device)
            if zoom is None:
                out.append(model(xb).float().cpu())
                continue
            r = GradCam(model)(xb)
            crop = second_look(model, xb, r.cam, zoom)
            out.append(combine(r.logits, crop, zoom.mix).cpu())
        return torch.cat(out)
    finally:
        model.train(was)


def _finish(
    config: TrainConfig,
    model: nn.Module,
    train_cases: LoadedCases,
    val_cases: LoadedCases,
    teacher_card: ModelCard | None,
    history: list[dict[str, float]],
    ctx: DistContext,
) -> ModelCard:
    from sos_core.distill.evaluation import evaluate_loaded

    out = Path(config.out)
    model = model.cpu()  # run_model sets the layout; save_model writes contiguous tensors
    zoom = zoom_spec(config, train_cases)
    size = config.crop_size if config.kind == "teacher" else config.input_size
    # The card describes the model as it will read: everything below with each modality at
    # its reading size.
    train_sized, val_sized = SizedCases.single(train_cases), SizedCases.single(val_cases)
    if config.kind == "student" and config.reads_at_other_sizes:
        train_sized = load_cases_sized(train_cases.records, config.read_size_for)
        val_sized = load_cases_sized(val_cases.records, config.read_size_for)
    other_sizes = {
        m: (config.read_size_for(m),) * 2
        for m in config.modalities
        if config.kind == "student" and config.read_size_for(m) != size
    }
    report = evaluate_loaded(
        model, config, val_sized, temperature=None, fit_temperature=True, zoom=zoom
    )
    scheme = get_scheme()
    card = ModelCard(
        name=f"sos-{config.kind}",
        architecture=config.model.key,
        kwargs=dict(config.model.kwargs),
        input_size=(size, size),
        modality_input_sizes=other_sizes,
        stage_scheme=scheme.id,
        stage_names=scheme.names,
        version=config.version or f"{config.kind}-{time.strftime('%Y%m%d-%H%M%S')}",
        preprocessing={
            "id": PREPROCESSING_ID,
            "input": "crop" if config.kind == "teacher" else "full",
            "crop_context": config.crop_context,
            **({"zoom": zoom.to_card()} if zoom is not None else {}),
        },
        temperature=report["temperature"],
        training_data={
            "dataset": Path(config.dataset).name,
            "generator": _dataset_generator(config.dataset),
            # One phantom case can give a slice and a cephalogram: count subjects and images.
            "train_cases": len({r.case_id for r in train_cases.records}),
            "train_images": len(train_cases.records),
            "modalities": list(config.modalities),
            "synthetic": True,
            **_input_detail(train_sized, size if config.kind == "teacher" else None),
        },
        metrics={
            "validation": report["metrics"],
            **_review_section(model, config, train_sized, val_sized),
        },
        parent_version=None,
        modalities=config.modalities,
        intended_use=(
            "Research and demonstration only. Trained on synthetic phantoms (sos_core.phantom), "
            "not on patient images; not a clinical device. Every prediction needs an expert's "
            "review."
        ),
        licence="MIT",
        origin=(
            f"sos_core {__version__} train ({config.kind}); teacher "
            f"{teacher_card.version if teacher_card else 'none'}"
        ),
    )
    if not ctx.is_main:
        return card
    saved = save_model(out / "model", model, card, overwrite=True)
    save_config(config, out)
    (out / "history.json").write_text(json.dumps(history, indent=1))
    return saved


@torch.no_grad()
def pooled_features(model: nn.Module, x: torch.Tensor) -> np.ndarray:
    """Global-average-pooled target-layer features (N x K), eval mode, on the CPU."""
    batch = prepare_for_scoring(model)
    was = model.training
    model.eval()
    try:
        out = [
            model.forward_with_features(x[i : i + batch])[0].float().mean(dim=(2, 3))
            for i in range(0, len(x), batch)
        ]
    finally:
        model.train(was)
    return torch.cat(out).numpy()


def _review_section(
    model: nn.Module,
    config: TrainConfig,
    train_cases: SizedCases,
    val_cases: SizedCases,
) -> dict[str, Any]:
    """Students only: the reference statistics behind the review flags (inference.flags),
    each case read at its modality's size (boxes as fractions of the input)."""
    if config.kind != "student":
        return {}
    from sos_core.inference.review_stats import attention_thresholds, fit_review_stats

    def inputs(group: LoadedCases) -> torch.Tensor:
        return torch.from_numpy(group.inputs).unsqueeze(1)

    train, val = train_cases.groups, val_cases.groups
    review = fit_review_stats(
        np.concatenate([pooled_features(model, inputs(g)) for g in train]),
        np.concatenate([g.labels for g in train]),
        np.concatenate([pooled_features(model, inputs(g)) for g in val]),
        np.concatenate([g.boxes / g.inputs.shape[-1] for g in (*train, *val)]),
        1,
        model.head_weight.shape[0],
        np.array([r.modality for g in train for r in g.records]),
    )
    maps = [m for g in val for m in predicted_class_maps(model, inputs(g))]
    review.update(attention_thresholds(maps, review))
    return {"review": review}


@torch.no_grad()
def predicted_class_maps(model: nn.Module, x: torch.Tensor) -> np.ndarray:
    """Input-resolution [0, 1] Grad-CAM maps of the predicted class, as the Predictor makes."""
    batch = prepare_for_scoring(model)
    model.eval()
    cam = GradCam(model)
    return np.concatenate(
        [cam(x[i : i + batch]).cam.float().numpy() for i in range(0, len(x), batch)]
    )


def _input_detail(cases: SizedCases, size: int | None) -> dict[str, Any]:
    """Median mm of anatomy per model-input pixel in training, at `size` or else each case at
    its reading size (see preprocess.input_detail_mm)."""
    from sos_core.preprocess import input_detail_mm

    values = [
        input_detail_mm(r.pixel_spacing, n.shape, size or g.inputs.shape[-1])
        for g in cases.groups
        for r, n in zip(g.records, g.natives, strict=True)
    ]
    known = [v for v in values if v is not None]
    return {"input_mm_per_pixel": round(float(np.median(known)), 4)} if known else {}


def _dataset_generator(dataset: str) -> dict[str, Any]:
    path = Path(dataset) / "dataset.json"
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return {k: info[k] for k in ("generator", "version", "seed") if k in info}
