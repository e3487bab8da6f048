"""Typed configs for every backbone. LightningCLI/jsonargparse reads these dataclasses directly,
so every field is a config line (``model.encoder.mixer: mamba``)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from core.errors import UserError
from core.mixers.base import is_per_mixer
from core.nn.positions import position_scheme

#: named hybrids: ``mixer: griffin`` is Griffin's pattern (De et al. 2024) of two recurrent
#: (RG-LRU) blocks per local-attention block; set ``window`` for the local attention span
#: (Griffin uses 1024; without it the attention layers are global).
HYBRIDS: dict[str, list[str]] = {"griffin": ["rglru", "rglru", "attention"]}


@dataclass
class BackboneConfig:
    """One stack of pre-norm blocks: mixer -> (cross-attention) -> MLP."""

    d_model: int = 256
    n_layers: int = 3
    n_heads: int = 4
    #: fewer key/value heads than query heads = grouped-query (1 = multi-query) attention
    n_kv_heads: int | None = None
    #: MLP width; None = 4*d for gelu, 8/3*d for swiglu
    d_ff: int | None = None
    mlp: str = "swiglu"
    norm: str = "rmsnorm"
    norm_eps: float = 1e-5
    position: str = "rope"
    max_len: int = 1024
    #: on embeddings and on every residual branch
    dropout: float = 0.1
    #: on attention weights
    attn_dropout: float = 0.0
    #: inside the MLP, after the activation (fairseq's activation_dropout; costly on CPU, off by default)
    activation_dropout: float = 0.0
    #: one mixer name for every layer, or a per-layer pattern repeated to n_layers (hybrids)
    mixer: str | list[str] = "attention"
    #: options of the mixer family (state size, expansion, chunk size ...; each mixer's docstring
    #: lists its own): flat (``{d_state: 16}``) for one family, or keyed by family for hybrids
    #: (``{mamba: {d_state: 16}, gla: {chunk: 32}}``). Unknown names are errors.
    mixer_options: dict[str, Any] = field(default_factory=dict)
    #: sliding-window attention span (keys within `window` positions); None = full attention
    window: int | None = None
    bias: bool = False

    def __post_init__(self):
        position_scheme(self.position)  # a registered 1-D scheme, or a UserError listing them
        if self.window is not None and self.window < 2:
            raise ValueError(f"window={self.window} must be at least 2 (or None)")
        if self.d_model % self.n_heads:
            raise ValueError(f"d_model={self.d_model} is not divisible by n_heads={self.n_heads}")
        if self.position == "rope" and (self.d_model // self.n_heads) % 2:
            raise ValueError("rope needs an even head dimension")
        families = sorted(set(self.mixer_pattern()))  # (validates the pattern length early)
        if is_per_mixer(self.mixer_options):
            stray = sorted(set(self.mixer_options) - set(families))
            if stray:
                raise UserError(f"mixer_options has options for {stray}, which the mixer pattern {families} does not use")
        elif self.mixer_options and len(families) > 1:
            raise UserError(f"mixer_options for the hybrid {families} must be keyed by mixer, e.g. "
                            f"{{{families[0]}: {{...}}, {families[1]}: {{...}}}}")

    def mixer_pattern(self) -> list[str]:
        """Mixer name of each layer: ``[gla, attention]`` over 4 layers -> gla, attention, gla, attention."""
        names = [self.mixer] if isinstance(self.mixer, str) else list(self.mixer)
        names = [layer for name in names for layer in HYBRIDS.get(name, [name])]
        if not names or self.n_layers % len(names):
            raise ValueError(f"mixer pattern {names} does not tile n_layers={self.n_layers}")
        return names * (self.n_layers // len(names))


@dataclass
class Seq2SeqConfig:
    """Token-to-token encoder-decoder (NMT, G2P, transliteration)."""

    #: vocabulary sizes (apps link them from their datamodule's tokenizers)
    src_vocab_size: int = 0
    tgt_vocab_size: int = 0
    encoder: BackboneConfig = field(default_factory=BackboneConfig)
    decoder: BackboneConfig = field(default_factory=BackboneConfig)
    #: output projection shares the target embedding matrix (Press & Wolf 2017)
    tie_output: bool = True
    #: source and target share one embedding matrix (only with a shared vocabulary)
    share_embeddings: bool = False

    def __post_init__(self):
        if self.encoder.d_model != self.decoder.d_model:
            raise ValueError("encoder and decoder d_model must match (cross-attention reads encoder output)")
        if self.share_embeddings and self.src_vocab_size != self.tgt_vocab_size:
            raise ValueError("share_embeddings needs equal source and target vocabularies")


@dataclass
class LMConfig:
    """Decoder-only causal language model."""

    #: (apps link it from their datamodule's tokenizer)
    vocab_size: int = 0
    decoder: BackboneConfig = field(default_factory=BackboneConfig)
    tie_output: bool = True
