"""People's decisions: one decision a transaction with undo and an audit trail (`decisions`),
what to review next (`queue`), and review spreadsheets out and back in (`sheets`). The terminal
(`coder.tui`) and the web page (`coder.web`) are faces over these same functions."""

from coder.review.context import Seen, independence, independence_line, seen, seen_on
from coder.review.decisions import (
    DECISIONS,
    POSITIVE,
    BulkReport,
    Undone,
    bulk_accept,
    codings_list,
    decide,
    memo,
    memos,
    undo,
    undo_bulk,
)
from coder.review.queue import (
    ORDERS,
    QueueItem,
    Suggestion,
    code_filter,
    progress,
    queue,
    queue_ids,
)
from coder.review.sheets import SheetImport, export_sheet, fingerprint, import_sheet

__all__ = ["DECISIONS", "ORDERS", "POSITIVE", "BulkReport", "QueueItem", "Seen", "SheetImport",
           "Suggestion", "Undone", "bulk_accept", "code_filter", "codings_list", "decide",
           "export_sheet", "fingerprint", "import_sheet", "independence", "independence_line",
           "memo", "memos", "progress", "queue", "queue_ids", "seen", "seen_on", "undo", "undo_bulk"]
