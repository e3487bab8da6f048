"""Kernels behind the mixers, one folder per recurrence: ``naive.py`` (the reference, tests only),
``chunk.py`` (parallel/chunked PyTorch for training and prefill), ``step.py`` (one token, decoding)."""
