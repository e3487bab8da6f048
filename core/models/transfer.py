"""Start a bidirectional encoder from a causal decoder's weights (HyenaDNA-style fine-tuning of a
pretrained language model for per-token or per-sequence labels).

The two stacks have the same blocks; they differ where a causal-only mixer (Mamba, Hyena, GLA ...)
runs in both directions in the encoder (:class:`core.mixers.base.Bidirectional`): both directions
start from the causal mixer's weights (as Caduceus ties them), and attention needs nothing but
dropping its causal mask. Cross-attention, if the decoder has it, has no place in an encoder.
"""
from __future__ import annotations

import torch

from core.mixers.base import Bidirectional
from core.models.decoder import Decoder
from core.models.encoder import Encoder


def encoder_state_from_decoder(decoder_state: dict[str, torch.Tensor], encoder: Encoder) -> dict[str, torch.Tensor]:
    """A :class:`~core.models.decoder.Decoder` ``state_dict`` -> one ``encoder.load_state_dict``
    takes (``strict``: the stacks must have the same layers, mixers and widths)."""
    doubled = {f"stack.layers.{i}.mixer." for i, block in enumerate(encoder.stack.layers)
               if isinstance(block.mixer, Bidirectional)}
    out = {}
    for key, value in decoder_state.items():
        prefix = next((p for p in doubled if key.startswith(p)), None)
        if prefix is None:
            out[key] = value
        else:
            rest = key[len(prefix):]
            out[prefix + "fwd." + rest] = value
            out[prefix + "bwd." + rest] = value.clone()
    return out


def load_decoder_into_encoder(decoder: Decoder | dict[str, torch.Tensor], encoder: Encoder) -> int:
    """Copy a decoder's (or its ``state_dict``'s) weights into ``encoder``; the number of tensors
    copied. Raises ``RuntimeError`` naming what does not match."""
    state = decoder.state_dict() if isinstance(decoder, Decoder) else decoder
    mapped = encoder_state_from_decoder(state, encoder)
    encoder.load_state_dict(mapped, strict=True)
    return len(mapped)
