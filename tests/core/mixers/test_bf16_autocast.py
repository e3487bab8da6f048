"""Every mixer under bf16 autocast (``precision: bf16-mixed``) against the same layer in fp32.

bf16 keeps 8 bits of mantissa (relative rounding ~0.4 %), so the stated tolerances are on the
relative norm of the difference: 2 % for outputs, 5 % for input gradients (a scan's backward adds
up the rounding of every later step: minGRU's is the largest, ~3.6 % at T = 130). A layer that
computes something in bf16 that bf16 cannot hold (sin of a large argument in Hyena's filter, a
cancelling stabiliser) is off by 10-100 % and fails here.
"""
import pytest
import torch

from core.mixers import MIXERS, build_mixer
from core.models import BackboneConfig


def relative(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.float() - b).norm() / b.norm())


@pytest.mark.parametrize("name", sorted(MIXERS))
def test_bf16_autocast_agrees_with_fp32(name):
    torch.manual_seed(0)
    mixer = build_mixer(name, BackboneConfig(d_model=64, n_heads=4, n_layers=1, max_len=256), causal=True)
    x = torch.randn(2, 130, 64, requires_grad=True)  # (over two chunks of 64 for the chunked forms)
    cotangent = torch.randn(2, 130, 64)  # (not y.sum(): a layer that ends in a norm has ~0 gradient for it)

    def run(bf16: bool):
        x.grad = None
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            y, _ = mixer(x)
        (y.float() * cotangent).sum().backward()
        return y.detach(), x.grad.clone()

    y32, g32 = run(False)
    y16, g16 = run(True)
    assert relative(y16, y32) < 0.02
    assert relative(g16, g32) < 0.05


def test_short_attention_trains_through_float32_sdpa_on_cpu(monkeypatch):
    """CPU bf16 training: SDPA gets float32 below CPU_LOW_PRECISION_BACKWARD_MAX_KEYS keys (its bf16
    backward is the slow one there), bf16 above it and whenever no gradient is taken; the layer's
    output stays bf16 and agrees with fp32 as every mixer's does."""
    import torch.nn.functional as F

    from core.mixers import attention

    seen = []
    real = F.scaled_dot_product_attention
    monkeypatch.setattr(F, "scaled_dot_product_attention", lambda q, *a, **k: seen.append(q.dtype) or real(q, *a, **k))
    torch.manual_seed(0)
    mixer = build_mixer("attention", BackboneConfig(d_model=64, n_heads=4, n_layers=1, max_len=1024), causal=False)
    short, long = attention.CPU_LOW_PRECISION_BACKWARD_MAX_KEYS - 1, attention.CPU_LOW_PRECISION_BACKWARD_MAX_KEYS
    for t, grad, expected in ((short, True, torch.float32), (long, True, torch.bfloat16), (short, False, torch.bfloat16)):
        seen.clear()
        x = torch.randn(2, t, 64, requires_grad=grad)
        mask = torch.arange(t)[None] < torch.tensor([[t], [t - 9]])  # a padding mask: SDPA's attn_mask path
        with torch.set_grad_enabled(grad), torch.autocast("cpu", dtype=torch.bfloat16):
            y, _ = mixer(x, mask=mask)
        assert seen == [expected] and y.dtype == torch.bfloat16, (t, grad, seen)
        y32, _ = mixer(x, mask=mask)
        assert relative(y.detach(), y32.detach()) < 0.02


def test_stack_keeps_a_float32_residual_stream_under_autocast():
    """Features that arrive in bf16 (an autocast conv front end) are summed in float32 from the first
    block on: the stack's output is float32 and as close to the fp32 run as a single mixer's."""
    from core.models.blocks import Stack

    torch.manual_seed(0)
    stack = Stack(BackboneConfig(d_model=64, n_heads=4, n_layers=3, max_len=256, dropout=0.0), causal=False)
    x = torch.randn(2, 40, 64)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y16, _ = stack(x.bfloat16())
    y32, _ = stack(x)
    assert y16.dtype == torch.float32
    assert relative(y16.detach(), y32.detach()) < 0.02
