"""The autoregressive loop for continuous outputs: fixed horizons, per-row stop flags, and a
stepped decoder that equals its teacher-forced full forward on its own outputs."""
import pytest
import torch

from core.generation import generate_continuous
from core.models import BackboneConfig, Decoder


def test_fixed_horizon_feeds_each_output_back():
    out = generate_continuous(lambda i, x, s: (x + 1, None, s + 1), torch.zeros(2, 1, 3), 0, max_steps=4,
                              stop_threshold=None)
    assert out.outputs.shape == (2, 4, 3) and out.stop_logits is None and out.state == 4
    torch.testing.assert_close(out.outputs[0, :, 0], torch.tensor([1.0, 2.0, 3.0, 4.0]))
    assert out.lengths.tolist() == [4, 4]


def test_rows_stop_on_their_own_flag_and_the_loop_on_the_last():
    stop_at = torch.tensor([1, 3, 2])  # step index at which each row's flag fires

    def step(i, x, s):
        return x, torch.where(stop_at == i, 10.0, -10.0), s

    out = generate_continuous(step, torch.zeros(3, 1, 2), None, max_steps=10)
    assert out.lengths.tolist() == [2, 4, 3]
    assert out.outputs.shape == (3, 4, 2) and out.stop_logits.shape == (3, 4)


@pytest.mark.parametrize("mixer", ["attention", "gla"])
def test_stepped_decoder_equals_full_forward_on_its_outputs(mixer):
    torch.manual_seed(0)
    decoder = Decoder(BackboneConfig(d_model=16, n_layers=2, n_heads=2, dropout=0.0, mixer=mixer)).eval()
    head = torch.nn.Linear(16, 16)

    def step(i, x, state):
        h, state = decoder(x, state=state)
        return torch.tanh(head(h)), None, state

    start = torch.randn(2, 1, 16)
    with torch.no_grad():
        out = generate_continuous(step, start, decoder.init_state(2, start.device, start.dtype), 6, stop_threshold=None)
        inputs = torch.cat([start, out.outputs[:, :-1]], 1)
        full = torch.tanh(head(decoder(inputs)[0]))
    torch.testing.assert_close(out.outputs, full, rtol=1e-4, atol=1e-5)
