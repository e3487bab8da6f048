"""Data helpers every app shares: readers of the record files users bring (JSONL, TSV/CSV, FASTA)
with skip reports for bad records, cost-bucketed batches with a resumable seeded order, padding,
deterministic splits, the cache folder for built corpora, data files out of package wheels, and real
text from Debian's SWORD Bible modules."""
from core.data.batching import BatchDataset, BatchOrder, ResumableLoader, batch_loader, cost_batches
from core.data.collate import lengths, pad
from core.data.module import SplitDataModule
from core.data.readers import (FastaRecord, delimited_rows, describe_keys, fasta_records, jsonl_rows, read_delimited,
                               read_fasta, read_jsonl)
from core.data.reports import DataWarning, SkipReport, read_lines, text_lines
from core.data.splits import SPLITS, default_cache_dir, split_of
from core.data.sword import SWORD_PATH, clean_osis, installed_module, installed_modules, read_sword_verses
from core.data.wheels import wheel_members

__all__ = [
    "SPLITS", "SWORD_PATH", "BatchDataset", "BatchOrder", "DataWarning", "FastaRecord", "ResumableLoader",
    "SkipReport", "SplitDataModule", "batch_loader", "clean_osis", "cost_batches", "default_cache_dir", "delimited_rows",
    "describe_keys", "fasta_records", "installed_module", "installed_modules", "jsonl_rows", "lengths", "pad",
    "read_delimited", "read_fasta", "read_jsonl", "read_lines", "read_sword_verses", "split_of", "text_lines",
    "wheel_members",
]
