"""Token mixers, chosen by name: ``build_mixer("attention", cfg, causal=True)``.

Importing this package registers every mixer family it holds.
"""
from core.mixers import attention, linear_attention, retnet  # noqa: F401  (registers them by name)
from core.mixers.attention import Attention, CrossAttention
from core.mixers.base import MIXERS, Mixer, State, build_mixer, register_mixer
from core.mixers.linear_attention import LinearAttention
from core.mixers.retnet import MultiScaleRetention

__all__ = ["MIXERS", "Attention", "CrossAttention", "LinearAttention", "Mixer", "MultiScaleRetention", "State", "build_mixer", "register_mixer"]
