"""Controlled retraining: locked validation set, promotion gate, model registry (RG-4..RG-8).

Qt-free. Entry points: `retrain` (synchronous), `start_retrain_process` (a child process for
the app), `ModelRegistry` (versions, active pointer, rollback; `active_model_dir()` is what a
`Predictor` loads), `fix_locked_set` / `grow_locked_set` / `import_locked_set`, and the gate
configuration (`load_gate_config` / `save_gate_config`). torch is imported only when training
or evaluation runs.
"""

from __future__ import annotations

from sos_core.retrain.candidate import submit_candidate
from sos_core.retrain.dataset_import import import_labelled_dataset, import_locked_set
from sos_core.retrain.envelope import check_envelope, envelope_problems
from sos_core.retrain.gate import (
    GateCheck,
    GateConfig,
    GateDecision,
    decide,
    load_gate_config,
    save_gate_config,
)
from sos_core.retrain.locked_set import (
    LockedSet,
    check_training_dataset,
    fix_locked_set,
    grow_locked_set,
    load_locked_set,
)
from sos_core.retrain.process import RetrainEvent, RetrainProcess, start_retrain_process
from sos_core.retrain.records import RetrainOptions, RetrainReport, RetrainStatus
from sos_core.retrain.registry import ModelRegistry, ModelVersion, active_model_dir
from sos_core.retrain.run import guarded_train, retrain, training_items
from sos_core.retrain.training_data import manifest_hash, training_manifest, used_label_ids

__all__ = [
    "GateCheck",
    "GateConfig",
    "GateDecision",
    "LockedSet",
    "ModelRegistry",
    "ModelVersion",
    "RetrainEvent",
    "RetrainOptions",
    "RetrainProcess",
    "RetrainReport",
    "RetrainStatus",
    "active_model_dir",
    "check_envelope",
    "check_training_dataset",
    "decide",
    "envelope_problems",
    "fix_locked_set",
    "grow_locked_set",
    "guarded_train",
    "import_labelled_dataset",
    "import_locked_set",
    "load_gate_config",
    "load_locked_set",
    "manifest_hash",
    "retrain",
    "save_gate_config",
    "start_retrain_process",
    "submit_candidate",
    "training_items",
    "training_manifest",
    "used_label_ids",
]
