"""Test-session setup.

Triton kernels are optional GPU accelerations; on a machine without CUDA their correctness tests
run them through Triton's interpreter (numpy on CPU). ``triton.jit`` reads TRITON_INTERPRET when a
kernel is decorated, so it must be set before any kernel module is imported: here, first thing.
"""
import os

import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")
