"""Run configuration: TOML or JSON read with safe loaders into frozen dataclasses.

One `key` + `kwargs` per component (torchdistill style); nothing in a config can import code.
The resolved config is saved as `config.json` next to every run's result.
"""

from __future__ import annotations

import dataclasses
import json
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from sos_core.errors import ParameterError

RunKind = Literal["teacher", "student"]


ATTENTION_MAPS = ("gradcam", "activation")


@dataclass(frozen=True, slots=True)
class ComponentConfig:
    """A registered component by name, with its keyword arguments."""

    key: str
    kwargs: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class LossWeights:
    """Weights of the student objective (DESIGN.md "The method"); teacher runs use cls only."""

    cls: float = 1.0
    dist: float = 1.0
    attn: float = 1.0
    outside: float = 0.5
    temperature: float = 3.0
    # The maps the attention term matches: "gradcam" (the method) or "activation", the
    # attention-transfer baseline (Zagoruyko & Komodakis 2017: mean_k A_k², L2-normalised).
    attn_map: str = "gradcam"

    def __post_init__(self) -> None:
        if self.attn_map not in ATTENTION_MAPS:
            raise ParameterError(
                f"unknown attention map {self.attn_map!r}; use {' or '.join(ATTENTION_MAPS)}."
            )
        if self.attn_map == "activation" and self.outside > 0:
            raise ParameterError(
                "the outside penalty is part of the Grad-CAM method; set outside to 0 for "
                "the attention-transfer baseline."
            )


@dataclass(frozen=True, slots=True)
class TrainConfig:
    """Everything a training run depends on. Paths are strings so the config is JSON-able."""

    kind: RunKind
    dataset: str
    out: str
    model: ComponentConfig
    teacher: str | None = None  # model folder of the frozen teacher (students only)
    modalities: tuple[str, ...] = ("slice", "ceph")
    input_size: int = 256
    # Students: modality → the input size the saved model reads that modality at, where it is
    # not the size it trained at (the card's `modality_input_sizes`). The last validation, the
    # calibration and the review statistics are made at the reading sizes. The 3.0 students,
    # trained at 384 px, read fresh cephalograms better at 448 px and slices worse
    # (benchmarks/scale_tta.py; RESULTS.md "reading the student at a larger size").
    # Empty: every modality at `input_size`.
    read_sizes: dict[str, int] = field(default_factory=dict)
    crop_size: int = 64
    crop_context: float = 1.5
    box_jitter: float = 0.12
    shift: float = 0.08  # students: random shift by whole pixels, up to ± this of the size
    # Students: rescale each training image by a random factor within 1/(1 + a) .. 1 + a,
    # sampled once from the native image (sos_core.distill.rescale); 0: no rescaling.
    scale_jitter: float = 0.0
    gamma_sd: float = 0.15  # exposure jitter: gamma = exp(N(0, gamma_sd)) per image
    noise_sd: float = 0.02  # added Gaussian noise, of the 0..1 intensity range
    epochs: int = 40
    batch_size: int = 32
    # Split each batch into pieces of at most this many images and accumulate their gradients:
    # the same update (every loss term is a per-image mean) in smaller buffers, for a device
    # short of memory. On the CPU it no longer buys speed since training retains its heap
    # (benchmarks/train_speed.py: whole batch and pieces of 8 equally fast).
    # BatchNorm then normalises each piece with its own statistics. None: the whole batch.
    micro_batch: int | None = None
    lr: float = 3e-3
    # Linear lr ramp over this many epochs (fractions allowed), per step; 0: none.
    warmup_epochs: float = 0.0
    # Validation, early stopping and the saved weights read an exponential moving average of
    # the weights, updated after every step with this decay (torch's AveragedModel); 0: the
    # weights as they are. Its BatchNorm statistics are recomputed as for the plain weights.
    ema_decay: float = 0.0
    weight_decay: float = 1e-4
    patience: int = 8
    # Training inputs whose batch statistics replace BatchNorm's running averages before each
    # validation (training.refresh_batchnorm_stats); 0 keeps the running averages.
    bn_stats_images: int = 512
    seed: int = 0
    loss: LossWeights = field(default_factory=LossWeights)
    device: str = "auto"
    amp: bool = True  # mixed precision, CUDA only
    max_train_cases: int | None = None
    version: str = ""
    init_from: str | None = None  # model folder whose weights start the run (fine-tuning)
    # Students: the second look (sos_core.inference.zoom). zoom_weight > 0 trains the crop
    # reading with that weight on its loss (L_cls + L_dist on the crop) and stores the zoom in
    # the card, so that inference reads every image twice. Crops during training centre on the
    # true box, shifted by up to ± zoom_jitter of its side (where the Grad-CAM peak falls).
    zoom_weight: float = 0.0
    zoom_context: float = 2.0
    zoom_size: int = 96
    zoom_jitter: float = 0.35
    zoom_mix: float = 0.5

    def __post_init__(self) -> None:
        if self.kind not in ("teacher", "student"):
            raise ParameterError(f"run kind must be 'teacher' or 'student', not {self.kind!r}.")
        if self.kind == "student" and not self.teacher:
            raise ParameterError("a student run needs `teacher`, the folder of a trained teacher.")
        for name in ("input_size", "crop_size", "epochs", "batch_size"):
            if getattr(self, name) <= 0:
                raise ParameterError(f"{name} must be a positive number.")
        if not 0 <= self.box_jitter < 0.5:
            raise ParameterError("box_jitter must be between 0 and 0.5 of the box size.")
        if not (0 <= self.gamma_sd <= 1 and 0 <= self.noise_sd <= 0.5):
            raise ParameterError("gamma_sd must be within 0..1 and noise_sd within 0..0.5.")
        if self.micro_batch is not None and self.micro_batch <= 0:
            raise ParameterError("micro_batch must be a positive number of images, or left out.")
        if self.bn_stats_images < 0:
            raise ParameterError("bn_stats_images must be 0 (off) or a positive number.")
        if self.zoom_weight < 0 or not 0 <= self.zoom_mix <= 1 or not 0 <= self.zoom_jitter < 1:
            raise ParameterError(
                "zoom_weight must be ≥ 0, zoom_mix within 0..1 and zoom_jitter within 0..1."
            )
        if self.zoom_weight > 0 and (self.kind != "student" or self.zoom_size <= 0):
            raise ParameterError("the zoomed second look is for students, with a positive size.")
        if not 0 <= self.warmup_epochs <= self.epochs:
            raise ParameterError("warmup_epochs must be between 0 and the number of epochs.")
        if not 0 <= self.scale_jitter <= 0.5:
            raise ParameterError("scale_jitter must be between 0 (off) and 0.5.")
        if self.scale_jitter > 0 and self.kind != "student":
            raise ParameterError("scale_jitter is for students; teachers jitter their crops.")
        object.__setattr__(self, "read_sizes", dict(self.read_sizes))
        if self.read_sizes and self.kind != "student":
            raise ParameterError("read_sizes is for students; teachers read crops at crop_size.")
        for modality, size in self.read_sizes.items():
            if modality not in self.modalities:
                raise ParameterError(
                    f"read_sizes names {modality!r}, which is not one of the run's modalities."
                )
            if not isinstance(size, int) or isinstance(size, bool) or not 8 <= size <= 4096:
                raise ParameterError("read_sizes must give whole numbers of pixels, 8 to 4096.")
        if self.reads_at_other_sizes and self.zoom_weight > 0:
            raise ParameterError("a student with the second look reads at its training size.")
        if not 0 <= self.ema_decay < 1:
            raise ParameterError("ema_decay must be 0 (off) or a decay below 1, such as 0.99.")
        if self.lr <= 0 or self.patience < 1:
            raise ParameterError("lr must be positive and patience at least 1.")

    @property
    def reads_at_other_sizes(self) -> bool:
        """Whether the saved student reads some modality at another size than it trained at."""
        return any(s != self.input_size for s in self.read_sizes.values())

    def read_size_for(self, modality: str) -> int:
        """The input size the saved model reads `modality` at."""
        return int(self.read_sizes.get(modality, self.input_size))

    def replace(self, **changes: Any) -> TrainConfig:
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def config_from_dict(data: dict[str, Any]) -> TrainConfig:
    """Build a TrainConfig, refusing unknown keys with a sentence that names them."""
    data = dict(data)
    known = {f.name for f in dataclasses.fields(TrainConfig)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ParameterError(f"unknown configuration keys: {', '.join(unknown)}.")
    try:
        model = data.pop("model")
        data["model"] = ComponentConfig(key=str(model["key"]), kwargs=dict(model.get("kwargs", {})))
        if "loss" in data:
            data["loss"] = LossWeights(**data["loss"])
        if "modalities" in data:
            data["modalities"] = tuple(data["modalities"])
        return TrainConfig(**data)
    except (KeyError, TypeError) as exc:
        raise ParameterError(f"the configuration is incomplete or malformed: {exc}.") from exc


def load_config(path: str | Path) -> TrainConfig:
    """Read a `.toml` or `.json` run configuration."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ParameterError(f"the configuration file {p.name} cannot be read.") from exc
    try:
        data = json.loads(text) if p.suffix == ".json" else tomllib.loads(text)
    except (tomllib.TOMLDecodeError, json.JSONDecodeError) as exc:
        raise ParameterError(f"{p.name} is not valid TOML/JSON: {exc}.") from exc
    return config_from_dict(data)


def save_config(config: TrainConfig, folder: str | Path) -> Path:
    """Write the resolved config as `config.json` beside the run's result."""
    out = Path(folder) / "config.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(config.to_dict(), indent=2, sort_keys=True), encoding="utf-8")
    return out
