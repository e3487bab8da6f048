"""Diagonal (elementwise) linear recurrence

    h_t = a_t * h_{t-1} + b_t          a, b: [B, T, *rest], h_0 given or zero

the state update behind minGRU / minLSTM, Griffin's RG-LRU, LRU, HGRN and Mamba-1's selective
scan once its input is expanded to [B, T, D, N]. ``scan.py`` is the training/prefill form (a
blocked two-level scan with a hand-written backward), ``step.py`` one decoding step, ``naive.py``
the per-token reference the tests compare against.
"""
from core.ops.linear_scan.naive import linear_scan_naive
from core.ops.linear_scan.scan import linear_scan
from core.ops.linear_scan.step import linear_scan_step

__all__ = ["linear_scan", "linear_scan_naive", "linear_scan_step"]
