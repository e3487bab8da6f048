"""mLSTM: the kernel-based cell against the paper's stabilised per-token equations and HF
transformers' native recurrence; the whole block against a per-token loop written from the paper;
chunked prefill followed by steps."""
import pytest
import torch
import torch.nn.functional as F

from core.mixers.xlstm import MLSTM, mlstm_recurrence, soft_cap
from core.models import BackboneConfig
from tests.core.mixers.gradients import assert_same_gradients, parameters_and


def paper_cell(q, k, v, i_pre, f_pre, c0=None, n0=None, cap=15.0):
    """The paper's stabilised mLSTM, one token at a time (m_t = max(log f_t + m_{t-1}, log i_t)).
    c0 [B,H,Dv,Dk] and n0 [B,H,Dk] are unscaled (m_0 = 0). Returns h and the unscaled C, n."""
    b, h, t, dk = q.shape
    c = q.new_zeros(b, h, v.shape[-1], dk) if c0 is None else c0
    n = q.new_zeros(b, h, dk) if n0 is None else n0
    m = q.new_zeros(b, h)
    k = k / dk**0.5
    out = []
    for s in range(t):
        log_i, log_f = soft_cap(i_pre[:, :, s], cap), F.logsigmoid(f_pre[:, :, s])
        m_new = torch.maximum(log_f + m, log_i)
        f, i = (log_f + m - m_new).exp(), (log_i - m_new).exp()
        c = f[..., None, None] * c + i[..., None, None] * v[:, :, s, :, None] * k[:, :, s, None, :]
        n = f[..., None] * n + i[..., None] * k[:, :, s]
        m = m_new
        num = torch.einsum("bhvk,bhk->bhv", c, q[:, :, s])
        den = torch.maximum(torch.einsum("bhk,bhk->bh", n, q[:, :, s]).abs(), (-m).exp())
        out.append(num / den[..., None])
    return torch.stack(out, 2), c * m.exp()[..., None, None], n * m.exp()[..., None]


def cell_inputs(t, b=2, h=2, dk=5, dv=4, with_state=True, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    q, k = (torch.randn(b, h, t, dk, generator=g) for _ in range(2))
    v = torch.randn(b, h, t, dv, generator=g)
    i_pre = torch.randn(b, h, t, generator=g) * 3  # up to exp(9): the stabiliser would matter
    f_pre = torch.randn(b, h, t, generator=g) * 3 + 2
    c0 = torch.randn(b, h, dv, dk, generator=g) if with_state else None
    n0 = torch.randn(b, h, dk, generator=g) if with_state else None
    return [x.to(dtype).requires_grad_() if x is not None else None for x in (q, k, v, i_pre, f_pre, c0, n0)]


def as_kernel_state(c0, n0):
    return None if c0 is None else torch.cat([c0.transpose(-1, -2), n0[..., None]], -1)


@pytest.mark.parametrize("t,chunk", [(1, 4), (7, 4), (16, 4), (37, 8)])
@pytest.mark.parametrize("with_state", [False, True])
def test_cell_matches_stabilised_paper_equations(t, chunk, with_state):
    q, k, v, i_pre, f_pre, c0, n0 = args = cell_inputs(t, with_state=with_state)
    ref_h, ref_c, ref_n = paper_cell(*args)
    h, s = mlstm_recurrence(q, k, v, i_pre, f_pre, as_kernel_state(c0, n0), chunk=chunk)
    torch.testing.assert_close(h, ref_h, rtol=1e-7, atol=1e-9)
    torch.testing.assert_close(s, as_kernel_state(ref_c, ref_n), rtol=1e-7, atol=1e-9)
    w = torch.randn_like(h)
    leaves = [x for x in args if x is not None]
    ref_grads = torch.autograd.grad((ref_h * w).sum() + ref_c.sum() + ref_n.sum(), leaves)
    grads = torch.autograd.grad((h * w).sum() + s.sum(), leaves)
    for name, a, r in zip(["q", "k", "v", "i", "f", "c0", "n0"], grads, ref_grads):
        torch.testing.assert_close(a, r, rtol=1e-7, atol=1e-9, msg=f"gradient of {name}")


def test_cell_float32_within_1e4_relative():
    q, k, v, i_pre, f_pre, c0, n0 = (x.detach() for x in cell_inputs(150, seed=3))
    ref, _, _ = paper_cell(q, k, v, i_pre, f_pre, c0, n0)
    h, _ = mlstm_recurrence(*(x.float() for x in (q, k, v, i_pre, f_pre)), as_kernel_state(c0, n0).float(), chunk=32)
    assert (h.double() - ref).norm() / ref.norm() < 1e-4


def test_cell_matches_hf_transformers_native_recurrence():
    hf = pytest.importorskip("transformers.models.xlstm.modeling_xlstm")
    if not hasattr(hf, "mlstm_recurrent_sequence_native"):
        pytest.skip("transformers uses the external xlstm package here")
    q, k, v, i_pre, f_pre = (x.detach() for x in cell_inputs(20, with_state=False, seed=1)[:5])
    ref = hf.mlstm_recurrent_sequence_native(q, k, v, soft_cap(i_pre, 15.0), f_pre, eps=0.0,
                                             dtype_state=torch.float64)
    h, _ = mlstm_recurrence(q, k, v, i_pre, f_pre, chunk=8)
    torch.testing.assert_close(h, ref, rtol=1e-9, atol=1e-11)


def test_soft_capped_input_gate_keeps_float32_finite():
    q, k, v, i_pre, f_pre = (x.detach().float() for x in cell_inputs(30, with_state=False)[:5])
    h, s = mlstm_recurrence(q, k, v, i_pre + 500.0, f_pre + 20.0, chunk=8)  # exp(500) would overflow
    assert torch.isfinite(h).all() and torch.isfinite(s).all()


def test_prefill_then_steps_equals_full():
    q, k, v, i_pre, f_pre, c0, n0 = (x.detach() for x in cell_inputs(23, seed=4))
    s0 = as_kernel_state(c0, n0)
    full, final = mlstm_recurrence(q, k, v, i_pre, f_pre, s0, chunk=4)
    out, s = mlstm_recurrence(*(x[:, :, :10] for x in (q, k, v, i_pre, f_pre)), s0, chunk=4)
    outs = [out]
    for i in range(10, 23):
        o, s = mlstm_recurrence(*(x[:, :, i:i + 1] for x in (q, k, v, i_pre, f_pre)), s)
        outs.append(o)
    torch.testing.assert_close(torch.cat(outs, 2), full, rtol=1e-9, atol=1e-11)
    torch.testing.assert_close(s, final, rtol=1e-9, atol=1e-11)


def naive_block(m: MLSTM, x: torch.Tensor) -> torch.Tensor:
    """The mLSTM block written token by token from the paper, reusing only m's parameters."""
    b, t, _ = x.shape
    h, dh, inner = m.n_heads, m.head_dim, m.inner
    kernel = m.conv.kernel
    xm_all, z_all = (x @ m.up.weight.T).split(inner, dim=-1)
    c = x.new_zeros(b, h, dh, dh)
    n = x.new_zeros(b, h, dh)
    ys = []
    for s in range(t):
        window = [xm_all[:, j] if j >= 0 else torch.zeros_like(xm_all[:, 0]) for j in range(s - kernel + 1, s + 1)]
        xc = F.silu(sum(w * m.conv.weight[:, 0, i] for i, w in enumerate(window)) + m.conv.bias)

        def headwise(y, weight):
            return torch.einsum("bni,nio->bno", y.view(b, -1, weight.shape[1]), weight).reshape(b, inner)

        q, k, v = headwise(xc, m.q.weight), headwise(xc, m.k.weight), headwise(xm_all[:, s], m.v.weight)
        gates = torch.cat([q, k, v], -1) @ m.gate_weight.T + m.gate_bias
        i = soft_cap(gates[:, :h], 15.0).exp()
        f = torch.sigmoid(gates[:, h:])
        q, k, v = (y.view(b, h, dh) for y in (q, k, v))
        k = k / dh**0.5
        c = f[..., None, None] * c + i[..., None, None] * v[..., :, None] * k[..., None, :]
        n = f[..., None] * n + i[..., None] * k
        hh = torch.einsum("bhvk,bhk->bhv", c, q) / torch.einsum("bhk,bhk->bh", n, q).abs().clamp_min(1)[..., None]
        mu, var = hh.mean(-1, keepdim=True), hh.var(-1, unbiased=False, keepdim=True)
        hh = ((hh - mu) / (var + 1e-5).sqrt()).reshape(b, inner) * m.norm_weight
        ys.append(((hh + m.skip * xc) * F.silu(z_all[:, s])) @ m.down.weight.T)
    return torch.stack(ys, 1)


def test_block_matches_per_token_paper_block_outputs_and_parameter_gradients():
    torch.manual_seed(0)
    cfg = BackboneConfig(d_model=16, n_heads=2, mixer_options={"chunk": 4, "expand": 2, "qkv_block": 4})
    m = MLSTM(cfg, causal=True).double()
    with torch.no_grad():  # non-trivial gates so every path matters
        m.gate_weight.normal_(0, 0.3)
        m.skip.normal_()
        m.norm_weight.normal_()
    x = torch.randn(2, 11, 16, dtype=torch.float64, requires_grad=True)
    y, _ = m(x)
    ref = naive_block(m, x)
    torch.testing.assert_close(y, ref, rtol=1e-8, atol=1e-10)
    assert_same_gradients(y, ref, parameters_and(m, x=x), rtol=1e-7, atol=1e-9)


def test_block_keeps_paper_gate_init_inside_a_backbone():
    from core.models.blocks import Stack

    stack = Stack(BackboneConfig(d_model=32, n_heads=4, n_layers=1, mixer="mlstm"), causal=True)
    m = stack.layers[0].mixer
    assert torch.all(m.gate_weight == 0)
    torch.testing.assert_close(m.gate_bias[4:], torch.linspace(3.0, 6.0, 4))


# --- sLSTM -------------------------------------------------------------------------------------


def make_slstm(seed=0, dtype=torch.float64):
    from core.mixers.xlstm import SLSTM

    torch.manual_seed(seed)
    m = SLSTM(BackboneConfig(d_model=16, n_heads=2), causal=True)
    with torch.no_grad():  # recurrent weights on, norm weights off one
        m.recurrent.normal_(0, 0.4)
        m.norm_weight.normal_(1, 0.3)
        m.bias.add_(torch.randn_like(m.bias))
    return m.to(dtype)


def naive_slstm(m, x, c=None, n=None, h=None, conv=None):
    """The paper's sLSTM without the stabiliser (exact in float64 for moderate gates), one token at
    a time: c_t = f c + i z, n_t = f n + i, h_t = o c / n, i = exp(i~), f = sigmoid(f~).
    c, n are the true (unscaled) memories; conv: [B, D, kernel-1] past inputs."""
    b, t, d = x.shape
    nh, dh = m.n_heads, m.head_dim
    kernel = m.conv.kernel
    past = x.new_zeros(b, d, kernel - 1) if conv is None else conv
    seq = torch.cat([past.transpose(1, 2), x], 1)
    c = x.new_zeros(b, nh, dh) if c is None else c.view(b, nh, dh)
    n = x.new_zeros(b, nh, dh) if n is None else n.view(b, nh, dh)
    h = x.new_zeros(b, nh, dh) if h is None else h.view(b, nh, dh)
    ys = []
    for s in range(t):
        window = seq[:, s:s + kernel]  # [B, kernel, D]
        xc = F.silu((window * m.conv.weight[:, 0].T).sum(1) + m.conv.bias)
        pre_if = torch.einsum("bhi,hio->bho", xc.view(b, nh, dh), m.in_if.weight)
        pre_zo = torch.einsum("bhi,hio->bho", x[:, s].view(b, nh, dh), m.in_zo.weight)
        gates = torch.cat([pre_if, pre_zo], -1) + torch.einsum("bhi,hio->bho", h, m.recurrent) + m.bias
        i_pre, f_pre, z_pre, o_pre = gates.chunk(4, -1)
        i, f = i_pre.exp(), torch.sigmoid(f_pre)
        c = f * c + i * torch.tanh(z_pre)
        n = f * n + i
        h = torch.sigmoid(o_pre) * c / n
        ys.append(F.layer_norm(h, (dh,)).reshape(b, d) * m.norm_weight)
    return torch.stack(ys, 1), c.reshape(b, d), n.reshape(b, d), h.reshape(b, d)


@pytest.mark.parametrize("with_state", [False, True])
def test_slstm_matches_unstabilised_paper_loop_outputs_and_gradients(with_state):
    m = make_slstm()
    x = torch.randn(2, 9, 16, dtype=torch.float64, requires_grad=True)
    if with_state:
        g = torch.Generator().manual_seed(1)
        mm = torch.randn(2, 16, generator=g, dtype=torch.float64)
        c_s = torch.randn(2, 16, generator=g, dtype=torch.float64)
        n_s = torch.rand(2, 16, generator=g, dtype=torch.float64) + 0.5
        h0 = torch.randn(2, 16, generator=g, dtype=torch.float64) * 0.3
        conv = torch.randn(2, 16, 3, generator=g, dtype=torch.float64)
        state = {"c": c_s, "n": n_s, "m": mm, "h": h0, "conv": conv}
        ref, c_ref, n_ref, h_ref = naive_slstm(m, x, c_s * mm.exp(), n_s * mm.exp(), h0, conv)
    else:
        state = None
        ref, c_ref, n_ref, h_ref = naive_slstm(m, x)
    y, new = m(x, state=state)
    torch.testing.assert_close(y, ref, rtol=1e-9, atol=1e-11)
    if with_state:
        torch.testing.assert_close(new["c"] * new["m"].exp(), c_ref, rtol=1e-9, atol=1e-11)
        torch.testing.assert_close(new["n"] * new["m"].exp(), n_ref, rtol=1e-9, atol=1e-11)
        torch.testing.assert_close(new["h"], h_ref, rtol=1e-9, atol=1e-11)
    assert_same_gradients(y, ref, parameters_and(m, x=x), rtol=1e-8, atol=1e-10)


def test_slstm_stabiliser_keeps_float32_exact_where_exp_overflows():
    m = make_slstm(seed=2)
    with torch.no_grad():
        m.bias.view(2, 4, 8)[:, 0] += 120.0  # i = exp(~120): inf in float32, fine in float64
    x = torch.randn(1, 12, 16, dtype=torch.float64)
    with torch.no_grad():
        ref, _, _, _ = naive_slstm(m, x)
        y, _ = m.float()(x.float())
    assert torch.isfinite(y).all()
    assert (y.double() - ref).norm() / ref.norm() < 1e-4


def test_slstm_padding_anywhere_and_prefill_then_steps():
    m = make_slstm(seed=3).eval()
    x = torch.randn(2, 12, 16, dtype=torch.float64)
    keep = torch.ones(2, 12, dtype=torch.bool)
    keep[0, :2] = False  # left padding (the causal convolution sees padding as its implicit zeros)
    keep[1, 7] = False  # a padded token inside the decoding steps
    with torch.no_grad():
        full, final = m(x, state=m.init_state(2, x.device, x.dtype), mask=keep)
        alone, c_ref, n_ref, _ = naive_slstm(m, x[:1, 2:])
        torch.testing.assert_close(full[0, 2:], alone[0], rtol=1e-9, atol=1e-11)
        torch.testing.assert_close((final["c"] * final["m"].exp())[0], c_ref[0], rtol=1e-9, atol=1e-11)
        y, state = m(x[:, :5], state=m.init_state(2, x.device, x.dtype), mask=keep[:, :5])
        outs = [y]
        for i in range(5, 12):
            y, state = m(x[:, i:i + 1], state=state, mask=keep[:, i:i + 1])
            outs.append(y)
    torch.testing.assert_close(torch.cat(outs, 1)[keep], full[keep], rtol=1e-9, atol=1e-11)
    for key in final:
        torch.testing.assert_close(state[key], final[key], rtol=1e-9, atol=1e-11)
