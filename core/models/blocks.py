"""The pre-norm residual block and the stack of blocks both Encoder and Decoder are made of."""
from __future__ import annotations

import torch
from torch import nn

from core.mixers import CrossAttention, State, build_mixer
from core.models.config import BackboneConfig
from core.nn import Dropout, build_positions, make_mlp, make_norm


class Block(nn.Module):
    def __init__(self, cfg: BackboneConfig, mixer: str, causal: bool, cross: bool):
        super().__init__()
        self.norm_mix = make_norm(cfg.norm, cfg.d_model, cfg.norm_eps)
        self.mixer = build_mixer(mixer, cfg, causal=causal)
        self.norm_cross = make_norm(cfg.norm, cfg.d_model, cfg.norm_eps) if cross else None
        self.cross = CrossAttention(cfg) if cross else None
        self.norm_mlp = make_norm(cfg.norm, cfg.d_model, cfg.norm_eps)
        self.mlp = make_mlp(cfg.mlp, cfg.d_model, cfg.d_ff, cfg.bias, cfg.activation_dropout)
        self.drop = Dropout(cfg.dropout)

    def forward(self, x, state: State | None = None, mask=None, offset=0, memory: State | None = None,
                real: torch.Tensor | None = None):
        """``real``: flat indices of non-padding positions; when given, the position-wise MLP (half
        of a block's FLOPs) runs on those rows only. Padding rows then keep stale values, which is
        harmless: no real position attends to them (masked keys, or after the end in causal order)."""
        h, state = self.mixer(self.norm_mix(x), state=state, mask=mask, offset=offset)
        x = x + self.drop(h)
        if self.cross is not None:
            x = x + self.drop(self.cross(self.norm_cross(x), memory))
        if real is None:
            return x + self.drop(self.mlp(self.norm_mlp(x))), state
        flat = x.reshape(-1, x.shape[-1])
        y = self.drop(self.mlp(self.norm_mlp(flat.index_select(0, real))))
        return flat.index_add(0, real, y.to(flat.dtype)).view_as(x), state  # (autocast: y may be bf16)


class Stack(nn.Module):
    """Features in, features out: [B, T, D] -> [B, T, D]. Token embeddings live outside so apps
    can feed audio frames or patches instead."""

    def __init__(self, cfg: BackboneConfig, causal: bool, cross: bool = False):
        super().__init__()
        self.cfg, self.causal = cfg, causal
        self.positions = build_positions(cfg.position, cfg.max_len, cfg.d_model)
        self.drop = Dropout(cfg.dropout)
        self.layers = nn.ModuleList(Block(cfg, name, causal, cross) for name in cfg.mixer_pattern())
        self.norm = make_norm(cfg.norm, cfg.d_model, cfg.norm_eps)
        self.apply(_init_weights)

    def init_state(self, batch: int, device, dtype) -> list[State]:
        return [layer.mixer.init_state(batch, device, dtype) for layer in self.layers]

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None, states: list[State] | None = None,
                offset: int | torch.Tensor = 0, memory: list[State] | None = None,
                real: torch.Tensor | None = None):
        """``mask``: [B, T] key padding for the mixers. ``real``: [B, T] bool of positions whose
        outputs matter; padding rows skip the MLP (see :class:`Block`)."""
        if x.dtype in (torch.bfloat16, torch.float16) and torch.is_autocast_enabled(x.device.type):
            # mixed precision: the residual stream stays float32, as the weights are (features from an
            # autocast conv arrive in bf16); the norms then take their fused kernels (fp32 weight and input)
            x = x.float()
        if self.positions is not None:
            x = self.positions(x, offset)
        x = self.drop(x)
        index = None
        # (data-dependent, so left out of exported graphs, which run one sequence per row anyway)
        if real is not None and states is None and not torch.compiler.is_exporting() and not bool(real.all()):
            index = real.reshape(-1).nonzero().squeeze(1)
        new_states = [] if states is not None else None
        for i, layer in enumerate(self.layers):
            x, s = layer(x, None if states is None else states[i], mask, offset,
                         None if memory is None else memory[i], index)
            if new_states is not None:
                new_states.append(s)
        return self.norm(x), new_states


def _init_weights(module: nn.Module) -> None:
    """GPT-2 style init: small normal weights, zero biases (PyTorch's default uniform init trains
    noticeably slower for deep pre-norm stacks)."""
    if isinstance(module, nn.Linear) and not getattr(module, "keep_init", False):
        nn.init.normal_(module.weight, std=0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
