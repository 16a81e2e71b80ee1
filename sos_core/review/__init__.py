"""Review store: de-identified cases, predictions, append-only expert labels, audit, queue.

Qt-free. See `store.ReviewStore` for the entry point and REQUIREMENTS.md DB-*, DI-*, RG-1/RG-2
for what it guarantees.
"""

from __future__ import annotations

from sos_core.review.audit import AuditEntry, AuditReport
from sos_core.review.export import ExportSummary, export_queue
from sos_core.review.layout import default_location
from sos_core.review.records import (
    Box,
    CaseRecord,
    IngestResult,
    Label,
    PredictionRecord,
    QueueItem,
    Retraction,
    RetrainQueue,
)
from sos_core.review.schema import REASON_CODES, SCHEMA_VERSION
from sos_core.review.store import ReviewStore

__all__ = [
    "REASON_CODES",
    "SCHEMA_VERSION",
    "AuditEntry",
    "AuditReport",
    "Box",
    "CaseRecord",
    "ExportSummary",
    "IngestResult",
    "Label",
    "PredictionRecord",
    "QueueItem",
    "RetrainQueue",
    "Retraction",
    "ReviewStore",
    "default_location",
    "export_queue",
]
