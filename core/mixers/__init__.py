"""Token mixers, chosen by name: ``build_mixer("attention", cfg, causal=True)``.

Importing this package imports every module in it, and each module registers its mixers with
``@register_mixer``: a new family is one new file, with no list to keep in step.
"""
import importlib
import pkgutil

from core.mixers.base import MIXERS, Mixer, State, build_mixer, register_mixer

for _module in pkgutil.iter_modules(__path__):
    if _module.name != "base":
        importlib.import_module(f"{__name__}.{_module.name}")

from core.mixers.attention import Attention, CrossAttention  # noqa: E402
from core.mixers.linear_attention import LinearAttention  # noqa: E402
from core.mixers.retnet import MultiScaleRetention  # noqa: E402

__all__ = ["MIXERS", "Attention", "CrossAttention", "LinearAttention", "Mixer", "MultiScaleRetention", "State", "build_mixer", "register_mixer"]
