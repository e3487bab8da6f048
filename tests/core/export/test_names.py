"""Every exported step graph names its state with one scheme (core/export/names.py): growing state
(attention's KV cache, and forgetting attention's keys, values and decays although it is no
Attention subclass) as past_key_values.{i}.decoder.* -> present.{i}.decoder.*, a recurrent mixer's
fixed state as past_state.{i}.* -> present_state.{i}.*; the kind comes from the mixer's fixed_state."""
import pytest
import torch

from core.export import (
    LayerState, cross_names, decoder_input_names, decoder_output_names, is_present, lm_input_names, lm_output_names,
    past_name, stack_layer_states, state_io_names,
)
from core.mixers import Attention
from core.models import BackboneConfig
from core.models.blocks import Stack


def hybrid_layers() -> list[LayerState]:
    cfg = BackboneConfig(d_model=16, n_layers=3, n_heads=2, dropout=0.0,
                         mixer=["attention", "gla", "forgetting_attention"])
    stack = Stack(cfg, causal=True)
    assert not isinstance(stack.layers[2].mixer, Attention)  # the case a class check got wrong
    return stack_layer_states(stack)


def test_layer_kinds_come_from_fixed_state():
    attention, gla, forgetting = hybrid_layers()
    assert (attention.growing, gla.growing, forgetting.growing) == (True, False, True)
    assert attention.shapes == {"key": [2, 0, 8], "value": [2, 0, 8]}
    assert forgetting.names == ["key", "logf", "value"] and forgetting.length_axis("logf") == 2
    assert gla.length_axis("state") is None
    assert LayerState.from_json(forgetting.to_json()) == forgetting


def test_state_names_are_exactly_the_scheme():
    layers = hybrid_layers()
    assert state_io_names(layers, "past") == [
        "past_key_values.0.decoder.key", "past_key_values.0.decoder.value",
        "past_state.1.state",
        "past_key_values.2.decoder.key", "past_key_values.2.decoder.logf", "past_key_values.2.decoder.value",
    ]
    assert state_io_names(layers, "present") == [
        "present.0.decoder.key", "present.0.decoder.value",
        "present_state.1.state",
        "present.2.decoder.key", "present.2.decoder.logf", "present.2.decoder.value",
    ]
    assert cross_names(1, "past") == ["past_key_values.1.encoder.key", "past_key_values.1.encoder.value"]
    assert cross_names(1, "present") == ["present.1.encoder.key", "present.1.encoder.value"]


def test_graph_io_names_use_the_scheme():
    layers = hybrid_layers()
    assert lm_input_names(layers) == ["input_ids", "offset", *state_io_names(layers, "past")]
    assert lm_output_names(layers) == ["logits", *state_io_names(layers, "present")]
    dec_in = decoder_input_names(layers)
    assert dec_in[:3] == ["input_ids", "offset", "memory_mask"]
    assert dec_in[3:6] == ["past_key_values.0.decoder.key", "past_key_values.0.decoder.value",
                           "past_key_values.0.encoder.key"]
    assert dec_in.index("past_state.1.state") == dec_in.index("past_key_values.0.encoder.value") + 1
    assert decoder_output_names(layers) == lm_output_names(layers)


def test_present_feeds_past():
    layers = hybrid_layers()
    present, past = state_io_names(layers, "present"), state_io_names(layers, "past")
    assert all(is_present(n) for n in present) and not any(is_present(n) for n in past)
    assert [past_name(n) for n in present] == past
    assert past_name("present.3.encoder.key") == "past_key_values.3.encoder.key"
    for bad in ("logits", "past_state.0.h", "presently"):
        with pytest.raises(ValueError, match="not a present"):
            past_name(bad)


class OddState(torch.nn.Module):
    def __init__(self, fixed_state: bool, init: torch.Tensor):
        super().__init__()
        self.fixed_state, self.init = fixed_state, init

    def init_state(self, batch, device, dtype):
        return {"key": self.init.expand(batch, *self.init.shape[1:])}


@pytest.mark.parametrize("mixer,error", [
    (OddState(False, torch.zeros(1, 2, 3)), "length axis"),  # a growing state must have one axis of size 0
    (OddState(True, torch.ones(1, 3)), "zero init_state"),  # runners start from zeros
])
def test_states_an_export_cannot_carry_are_refused(mixer, error):
    stack = Stack(BackboneConfig(d_model=16, n_layers=1, n_heads=2, dropout=0.0), causal=True)
    stack.layers[0].mixer = mixer
    with pytest.raises(ValueError, match=error):
        stack_layer_states(stack)
