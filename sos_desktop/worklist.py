"""`WorklistPanel`: the cases of a folder, filtered and ordered by `sos_core.worklist`.

The panel only shows what `order_worklist` returns; status transitions and priority are core
logic. Next / previous follow the order on screen. Thread affinity: GUI thread.
"""

from __future__ import annotations

import logging

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QColor
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from sos_core.worklist import WorklistEntry, order_worklist

logger = logging.getLogger(__name__)

COLUMNS = ("Case", "Modality", "Status", "Predicted", "Reviewer")
FILTERS: tuple[tuple[str, frozenset[str] | None], ...] = (
    ("All cases", None),
    ("To review", frozenset({"new", "predicted", "flagged"})),
    ("Flagged", frozenset({"flagged"})),
    ("Reviewed", frozenset({"confirmed", "corrected", "labelled"})),
    ("Corrected", frozenset({"corrected"})),
)
SORTS = (("Review priority", "priority"), ("Name", "name"), ("Status", "status"))
_STATUS_COLOURS = {
    "flagged": QColor(230, 81, 0),
    "confirmed": QColor(46, 125, 50),
    "corrected": QColor(21, 101, 192),
    "labelled": QColor(21, 101, 192),
}


class WorklistPanel(QWidget):
    """Signals: `case_activated(str)` with the case id the user picked, `predict_all_requested()`
    and `cancel_requested()` from the "Predict all" row."""

    case_activated = Signal(str)
    predict_all_requested = Signal()
    cancel_requested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._entries: dict[str, WorklistEntry] = {}
        self._order: list[str] = []
        self._current: str | None = None
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        self.title = QLabel("<b>Worklist</b>")
        layout.addWidget(self.title)
        row = QHBoxLayout()
        self.filter = QComboBox()
        for words, _ in FILTERS:
            self.filter.addItem(words)
        self.sort = QComboBox()
        for words, _ in SORTS:
            self.sort.addItem(words)
        row.addWidget(self.filter)
        row.addWidget(self.sort)
        layout.addLayout(row)
        self.search = QLineEdit()
        self.search.setPlaceholderText("Filter by name")
        self.search.setClearButtonEnabled(True)
        layout.addWidget(self.search)
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.verticalHeader().setVisible(False)
        header = self.table.horizontalHeader()
        # the case name takes the room left; long names lose their middle, not their ends
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        for col in range(1, len(COLUMNS)):
            header.setSectionResizeMode(col, QHeaderView.ResizeMode.ResizeToContents)
        self.table.setTextElideMode(Qt.TextElideMode.ElideMiddle)
        layout.addWidget(self.table, 1)
        layout.addLayout(self._build_batch_row())
        self.filter.currentIndexChanged.connect(self._rebuild)
        self.sort.currentIndexChanged.connect(self._rebuild)
        self.search.textChanged.connect(self._rebuild)
        self.table.cellActivated.connect(self._on_cell_activated)
        self.table.cellClicked.connect(self._on_cell_activated)

    def _build_batch_row(self) -> QHBoxLayout:
        row = QHBoxLayout()
        self.predict_button = QPushButton("Predict all")
        self.predict_button.setToolTip(
            "Predict every case of the worklist in the background; the order follows the results"
        )
        self.predict_button.clicked.connect(self.predict_all_requested)
        self.batch_progress = QProgressBar()
        self.batch_progress.setRange(0, 100)
        self.batch_cancel = QPushButton("Cancel")
        self.batch_cancel.setToolTip("Stop after the case being predicted now")
        self.batch_cancel.clicked.connect(self.cancel_requested)
        row.addWidget(self.predict_button)
        row.addWidget(self.batch_progress, 1)
        row.addWidget(self.batch_cancel)
        self.set_batch_progress(None)
        return row

    def set_batch_progress(self, fraction: float | None) -> None:
        """Show "Predict all" progress (None: not running)."""
        running = fraction is not None
        self.predict_button.setEnabled(not running)
        self.batch_progress.setVisible(running)
        self.batch_cancel.setVisible(running)
        if fraction is not None:
            self.batch_progress.setValue(round(fraction * 100))

    # --- content ------------------------------------------------------------------------------
    def set_entries(self, entries: list[WorklistEntry]) -> None:
        self._entries = {e.case_id: e for e in entries}
        self._current = None
        self._rebuild()

    def update_entry(self, entry: WorklistEntry) -> None:
        """Replace one entry; only its row is redrawn when the order on screen is unchanged."""
        if entry.case_id not in self._entries:
            return
        self._entries[entry.case_id] = entry
        shown = self._shown()
        if [e.case_id for e in shown] != self._order or entry.case_id not in self._order:
            self._rebuild()
            return
        self.table.blockSignals(True)
        try:
            self._fill_row(self._order.index(entry.case_id), entry)
        finally:
            self.table.blockSignals(False)
        self._update_title()

    def entry(self, case_id: str) -> WorklistEntry | None:
        return self._entries.get(case_id)

    def entries(self) -> list[WorklistEntry]:
        return list(self._entries.values())

    def visible_order(self) -> list[str]:
        """Case ids in the order shown (after filter and sort)."""
        return list(self._order)

    def set_current(self, case_id: str | None) -> None:
        self._current = case_id
        self._select_current()

    def next_case_id(self, step: int = 1) -> str | None:
        """The case `step` rows after (negative: before) the current one on screen."""
        if not self._order:
            return None
        if self._current not in self._order:
            return self._order[0] if step > 0 else self._order[-1]
        i = self._order.index(self._current) + step
        return self._order[i] if 0 <= i < len(self._order) else None

    # --- view ---------------------------------------------------------------------------------
    def _shown(self) -> list[WorklistEntry]:
        return order_worklist(
            self._entries.values(),
            sort=SORTS[self.sort.currentIndex()][1],  # type: ignore[arg-type]
            statuses=FILTERS[self.filter.currentIndex()][1],
            text=self.search.text(),
        )

    def _rebuild(self) -> None:
        shown = self._shown()
        self._order = [e.case_id for e in shown]
        self.table.blockSignals(True)  # a view syncing from the model blocks its own signals
        try:
            self.table.setRowCount(len(shown))
            for row, e in enumerate(shown):
                self._fill_row(row, e)
        finally:
            self.table.blockSignals(False)
        self._update_title()
        self._select_current()

    def _update_title(self) -> None:
        n_todo = sum(
            1 for e in self._entries.values() if e.status in ("new", "predicted", "flagged")
        )
        self.title.setText(f"<b>Worklist</b> \u2014 {len(self._entries)} cases, {n_todo} to review")

    def _fill_row(self, row: int, e: WorklistEntry) -> None:
        stage = "" if e.predicted_stage is None else str(e.predicted_stage)
        if e.probabilities and e.predicted_stage is not None:
            stage += f" ({max(e.probabilities) * 100:.0f}%)"
        values = (e.display_name, e.modality or "\u2014", e.status, stage, e.reviewer)
        for col, text in enumerate(values):
            item = QTableWidgetItem(text)
            item.setData(Qt.ItemDataRole.UserRole, e.case_id)
            if col == 2 and e.status in _STATUS_COLOURS:
                item.setForeground(_STATUS_COLOURS[e.status])
            if col == 2 and e.flags:
                item.setToolTip(", ".join(f.replace("_", " ") for f in e.flags))
            self.table.setItem(row, col, item)

    def _select_current(self) -> None:
        self.table.blockSignals(True)
        try:
            if self._current in self._order:
                self.table.selectRow(self._order.index(self._current))
            else:
                self.table.clearSelection()
        finally:
            self.table.blockSignals(False)

    def _on_cell_activated(self, row: int, _col: int) -> None:
        if 0 <= row < len(self._order) and self._order[row] != self._current:
            self.case_activated.emit(self._order[row])
