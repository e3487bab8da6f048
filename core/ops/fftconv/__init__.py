"""Causal long convolution, one filter per channel (S4/S4D kernels, Hyena's implicit filters).

    y[b, t, c] = sum_{j=0..t} k[c, j] * u[b, t - j, c]  +  D[c] * u[b, t, c]

``fft.py`` computes it in O(T log T) with real FFTs (training, prefill); ``naive.py`` is the direct
O(T^2) sum used as the reference in tests. Decoding steps never call either: a recurrent mixer
steps its own state (S4D), a convolutional one keeps a window of past inputs (Hyena).
"""
from core.ops.fftconv.fft import fftconv, next_fast_len
from core.ops.fftconv.naive import fftconv_naive

__all__ = ["fftconv", "fftconv_naive", "next_fast_len"]
