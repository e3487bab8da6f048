"""Backbones: Encoder, Decoder (optionally cross-attending), EncoderDecoder, DecoderLM."""
from core.models.config import BackboneConfig, LMConfig, Seq2SeqConfig
from core.models.decoder import Decoder, DecoderLM
from core.models.encoder import Encoder
from core.models.encoder_decoder import EncoderDecoder
from core.models.state import DecoderState

__all__ = ["BackboneConfig", "Decoder", "DecoderLM", "DecoderState", "Encoder", "EncoderDecoder", "LMConfig", "Seq2SeqConfig"]
