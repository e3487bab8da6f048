"""Data helpers every app shares: skip reports for bad records, deterministic splits, the cache
folder for built corpora, and real text from Debian's SWORD Bible modules."""
from core.data.reports import DataWarning, SkipReport, read_lines, text_lines
from core.data.splits import SPLITS, default_cache_dir, split_of
from core.data.sword import SWORD_PATH, clean_osis, installed_module, installed_modules, read_sword_verses

__all__ = [
    "SPLITS", "SWORD_PATH", "DataWarning", "SkipReport", "clean_osis", "default_cache_dir", "installed_module",
    "installed_modules", "read_lines", "read_sword_verses", "split_of", "text_lines",
]
