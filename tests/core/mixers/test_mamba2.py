"""Mamba-2 on the shared gated-linear kernel: parity with Hugging Face transformers' Mamba2Mixer
(weights copied 1:1, outputs and every gradient through HF's torch CPU path), against a per-token
SSM recurrence written here in float64, prefill + steps, and padding with dt = 0."""
import math
import os

import pytest
import torch
import torch.nn.functional as F

from core.mixers.mamba2 import Mamba2
from core.models import BackboneConfig

os.environ.setdefault("HF_HUB_OFFLINE", "1")
transformers = pytest.importorskip("transformers")
from transformers import Mamba2Config  # noqa: E402
from transformers.models.mamba2.modeling_mamba2 import Mamba2Mixer  # noqa: E402
from tests.core.mixers.gradients import assert_same_gradients, parameters_and

D_MODEL = 32


def ours(chunk=16, d_state=8, headdim=16, ngroups=2, dtype=torch.float32, seed=0, **extra):
    torch.manual_seed(seed)
    opts = {"d_state": d_state, "headdim": headdim, "ngroups": ngroups, "chunk": chunk, "expand": 2, "d_conv": 4, **extra}
    return Mamba2(BackboneConfig(d_model=D_MODEL, n_heads=4, mixer_options=opts), causal=True).to(dtype)


def hf_peer(chunk_size=256, d_state=8, headdim=16, ngroups=2, seed=1, **extra):
    """A tiny HF Mamba2Mixer built from a config (no download), every parameter randomised so that
    a wrong mapping cannot hide behind HF's structured init (A = 1..H, D = 1, norm = 1)."""
    cfg = Mamba2Config(hidden_size=D_MODEL, expand=2, num_heads=2 * D_MODEL // headdim, head_dim=headdim,
                       state_size=d_state, n_groups=ngroups, conv_kernel=4, chunk_size=chunk_size,
                       num_hidden_layers=1, use_bias=False, use_conv_bias=True, layer_norm_epsilon=1e-5, **extra)
    torch.manual_seed(seed)
    m = Mamba2Mixer(cfg, layer_idx=0)
    with torch.no_grad():
        m.A_log.copy_(torch.empty_like(m.A_log).uniform_(1, 16).log())
        m.D.normal_()
        m.dt_bias.normal_(-2.0, 1.0)
        m.norm.weight.normal_(1.0, 0.2)
        m.conv1d.bias.normal_(0.0, 0.2)
    return m


def test_hf_defaults_mean_the_same_semantics():
    cfg = Mamba2Config()
    mine = ours()
    assert tuple(cfg.time_step_limit) == mine.dt_limit == (0.0, math.inf)  # both: no clamp
    assert (cfg.time_step_min, cfg.time_step_max) == (1e-3, 0.1) and cfg.layer_norm_epsilon == 1e-5
    assert cfg.hidden_act == "silu" and cfg.use_conv_bias and not cfg.use_bias
    # HF's default chunk is 256, ours 64: the chunk size only reorders sums (checked below)
    assert cfg.chunk_size == 256 and Mamba2(BackboneConfig(d_model=32, n_heads=4), True).chunk == 64
    # parameter names and shapes map 1:1
    hf = hf_peer()
    assert {k: v.shape for k, v in hf.state_dict().items()} == {k: v.shape for k, v in mine.state_dict().items()}


@pytest.mark.parametrize("t,chunk,hf_chunk", [(37, 16, 256), (64, 8, 16), (5, 4, 4)])
@pytest.mark.parametrize("ngroups", [1, 2])
def test_matches_hf_mamba2_mixer_outputs_and_gradients(t, chunk, hf_chunk, ngroups):
    hf = hf_peer(chunk_size=hf_chunk, ngroups=ngroups)
    mine = ours(chunk=chunk, ngroups=ngroups)
    mine.load_state_dict(hf.state_dict())
    x = torch.randn(2, t, D_MODEL, requires_grad=True)
    ref = hf(x)
    y, state = mine(x)
    assert state is None
    torch.testing.assert_close(y, ref, rtol=1e-4, atol=1e-5)
    w = torch.randn_like(y)
    gx_ref, *gp_ref = torch.autograd.grad((ref * w).sum(), [x, *hf.parameters()])
    gx, *gp = torch.autograd.grad((y * w).sum(), [x, *mine.parameters()])
    torch.testing.assert_close(gx, gx_ref, rtol=1e-4, atol=1e-5)
    hf_grads = dict(zip([n for n, _ in hf.named_parameters()], gp_ref))
    for (name, _), g in zip(mine.named_parameters(), gp):
        torch.testing.assert_close(g, hf_grads[name], rtol=1e-4, atol=1e-4, msg=f"gradient of {name}")


def test_dt_limit_clamps_like_hf_time_step_limit():
    hf = hf_peer(time_step_limit=(0.02, 0.08))
    mine = ours(dt_limit=(0.02, 0.08))
    mine.load_state_dict(hf.state_dict())
    x = torch.randn(2, 20, D_MODEL)
    with torch.no_grad():
        torch.testing.assert_close(mine(x)[0], hf(x), rtol=1e-4, atol=1e-5)
        unclamped = ours()
        unclamped.load_state_dict(hf.state_dict())
        assert not torch.allclose(unclamped(x)[0], hf(x), rtol=1e-3, atol=1e-4)


def recurrence(m: Mamba2, x, s0=None):
    """Token-by-token Mamba-2 written from the equations (float64 reference)."""
    b, t, _ = x.shape
    h, p, n, g = m.n_heads, m.headdim, m.d_state, m.ngroups
    z, xbc, dt = m.in_proj(x).split([m.d_inner, m.conv_dim, h], -1)
    xbc = F.conv1d(F.pad(xbc.transpose(1, 2), (m.conv1d.kernel - 1, 0)), m.conv1d.weight, m.conv1d.bias,
                   groups=m.conv_dim).transpose(1, 2)
    xs, B, C = F.silu(xbc).split([m.d_inner, g * n, g * n], -1)
    dt = F.softplus(dt + m.dt_bias)
    A = -torch.exp(m.A_log)
    group = torch.arange(h) // (h // g)
    B, C, xs = B.view(b, t, g, n)[:, :, group], C.view(b, t, g, n)[:, :, group], xs.view(b, t, h, p)
    s = x.new_zeros(b, h, n, p) if s0 is None else s0  # [B, H, N, P]
    ys = []
    for i in range(t):
        s = torch.exp(dt[:, i] * A)[..., None, None] * s + dt[:, i, :, None, None] * B[:, i, :, :, None] * xs[:, i, :, None, :]
        ys.append(torch.einsum("bhn,bhnp->bhp", C[:, i], s) + m.D[:, None] * xs[:, i])
    y = torch.stack(ys, 1).reshape(b, t, m.d_inner)
    y = y * F.silu(z)
    yg = y.unflatten(-1, (g, -1))
    y = (yg * torch.rsqrt(yg.square().mean(-1, keepdim=True) + m.norm.eps)).flatten(-2) * m.norm.weight
    return m.out_proj(y), s


@pytest.mark.parametrize("t", [1, 7, 23])
def test_chunked_matches_recurrence_float64_outputs_and_parameter_gradients(t):
    m = ours(chunk=4, dtype=torch.float64, seed=3)
    x = torch.randn(2, t, D_MODEL, dtype=torch.float64, requires_grad=True)
    y, _ = m(x)
    ref, _ = recurrence(m, x)
    torch.testing.assert_close(y, ref, rtol=1e-9, atol=1e-10)
    assert_same_gradients(y, ref, parameters_and(m, x=x), rtol=1e-8, atol=1e-10)


def test_prefill_then_steps_equal_full_pass_and_recurrence_state():
    m = ours(chunk=4, dtype=torch.float64, seed=4)
    x = torch.randn(2, 19, D_MODEL, dtype=torch.float64)
    with torch.no_grad():
        full, _ = m(x)
        _, ref_state = recurrence(m, x)
        y, state = m(x[:, :9], state=m.init_state(2, x.device, x.dtype))
        outs = [y]
        for i in range(9, 19):
            y, state = m(x[:, i:i + 1], state=state)
            outs.append(y)
    torch.testing.assert_close(torch.cat(outs, 1), full, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(state["ssm"], ref_state, rtol=1e-10, atol=1e-10)
    assert state["ssm"].shape == (2, 4, 8, 16) and state["conv"].shape == (2, m.conv_dim, 3)


def test_padding_sets_dt_to_zero_mid_sequence():
    """A selective SSM can skip padding anywhere: with dt = 0 it neither writes nor decays."""
    m = ours(chunk=4, dtype=torch.float64, seed=5)
    x = torch.randn(1, 6, D_MODEL, dtype=torch.float64)
    padded = torch.cat([x, torch.randn(1, 3, D_MODEL, dtype=torch.float64)], 1)
    mask = torch.tensor([[True] * 6 + [False] * 3])
    with torch.no_grad():
        _, s_ref = m(x, state=m.init_state(1, x.device, x.dtype))
        _, s_pad = m(padded, state=m.init_state(1, x.device, x.dtype), mask=mask)
        _, s_nomask = m(padded, state=m.init_state(1, x.device, x.dtype))
    torch.testing.assert_close(s_pad["ssm"], s_ref["ssm"], rtol=1e-10, atol=1e-12)
    assert not torch.allclose(s_nomask["ssm"], s_ref["ssm"])
