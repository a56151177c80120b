"""The study file: one SQLite database (`db`), its recorded migrations (`migrations`), the
codebook as stored (`codebook`) and the queries every stage shares (`store`)."""

from coder.store.codebook import Code, Codebook
from coder.store.db import Database, is_sqlite_file, now, text_hash
from coder.store.store import POSITIVE, Store, StudyStatus, check_coder_name

__all__ = ["Code", "Codebook", "Database", "POSITIVE", "Store", "StudyStatus", "check_coder_name",
           "is_sqlite_file", "now", "text_hash"]
