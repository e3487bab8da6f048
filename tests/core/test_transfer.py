"""A bidirectional encoder started from a causal decoder's weights (fine-tuning a pretrained LM)."""
from dataclasses import replace

import pytest
import torch

from core.models import BackboneConfig
from core.models.decoder import Decoder
from core.models.encoder import Encoder
from core.models.transfer import encoder_state_from_decoder, load_decoder_into_encoder


@pytest.mark.parametrize("mixer", ["attention", "mamba", "hyena", "gla"])
def test_every_encoder_weight_comes_from_the_decoder(mixer):
    cfg = BackboneConfig(d_model=32, n_layers=2, n_heads=2, dropout=0.0, max_len=64, mixer=mixer)
    torch.manual_seed(0)
    decoder, encoder = Decoder(cfg), Encoder(cfg)
    assert load_decoder_into_encoder(decoder, encoder) == len(encoder.state_dict())
    source = decoder.state_dict()
    for key, value in encoder.state_dict().items():
        origin = key.replace(".mixer.fwd.", ".mixer.").replace(".mixer.bwd.", ".mixer.")
        assert torch.equal(value, source[origin]), key
    if mixer == "attention":  # one position: causal and bidirectional attention are the same function
        x = torch.randn(3, 1, 32)
        assert torch.allclose(encoder.eval()(x), decoder.eval()(x)[0], atol=1e-6)


def test_a_different_stack_is_refused():
    small = BackboneConfig(d_model=32, n_layers=2, n_heads=2, max_len=64, mixer="mamba")
    with pytest.raises(RuntimeError, match="Missing key"):
        load_decoder_into_encoder(Decoder(small), Encoder(replace(small, n_layers=3)))
    with pytest.raises(RuntimeError):
        load_decoder_into_encoder(Decoder(small), Encoder(replace(small, mixer="hyena")))
    encoder = Encoder(small)
    assert set(encoder_state_from_decoder(Decoder(small).state_dict(), encoder)) == set(encoder.state_dict())
