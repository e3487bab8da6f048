"""Token mixers, chosen by name: ``build_mixer("attention", cfg, causal=True)``.

Importing this package registers every mixer family it holds.
"""
from core.mixers import attention  # noqa: F401  (registers "attention")
from core.mixers.attention import Attention, CrossAttention
from core.mixers.base import MIXERS, Mixer, State, build_mixer, register_mixer

__all__ = ["MIXERS", "Attention", "CrossAttention", "Mixer", "State", "build_mixer", "register_mixer"]
