"""Mamba mixer: weight-for-weight parity with Hugging Face transformers' MambaMixer (outputs,
input and parameter gradients), and the paper's initialisation surviving the backbone's init."""
import os

import pytest
import torch

from core.mixers.mamba import Mamba
from core.models import BackboneConfig
from core.models.blocks import Stack

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def hf_mixer(d_model=32, d_state=8, d_conv=4, expand=2):
    transformers = pytest.importorskip("transformers")
    from transformers.models.mamba.modeling_mamba import MambaMixer

    cfg = transformers.MambaConfig(hidden_size=d_model, state_size=d_state, conv_kernel=d_conv, expand=expand,
                                   num_hidden_layers=1, use_bias=False, use_conv_bias=True, use_mambapy=False)
    return MambaMixer(cfg, layer_idx=0)


def ours(d_model=32, d_state=8, d_conv=4, expand=2, block=8):
    cfg = BackboneConfig(d_model=d_model, n_heads=4, mixer="mamba", bias=False,
                         mixer_options={"d_state": d_state, "d_conv": d_conv, "expand": expand, "block": block})
    return Mamba(cfg, causal=True)


def test_weights_map_one_to_one_and_outputs_and_gradients_match_hf():
    torch.manual_seed(0)
    hf = hf_mixer().double().eval()  # eval: HF's slow torch path (no fused kernels on CPU)
    with torch.no_grad():  # move every parameter off its structured init so a mix-up shows
        for p in hf.parameters():
            p.add_(0.1 * torch.randn_like(p))
    mine = ours().double()
    assert {k: v.shape for k, v in mine.state_dict().items()} == {k: v.shape for k, v in hf.state_dict().items()}
    mine.load_state_dict(hf.state_dict())

    x = torch.randn(2, 37, 32, dtype=torch.float64, requires_grad=True)  # 37: several scan blocks, ragged end
    y_hf = hf(x)
    y, state = mine(x)
    assert state is None
    # (HF casts A_log, D and the dt bias to float32 inside its forward: float64 agreement ends near 1e-8)
    torch.testing.assert_close(y, y_hf, rtol=1e-5, atol=1e-7)

    w = torch.randn_like(y)
    grads_hf = torch.autograd.grad((y_hf * w).sum(), [x, *hf.parameters()])
    grads = torch.autograd.grad((y * w).sum(), [x, *(dict(mine.named_parameters())[n] for n, _ in hf.named_parameters())])
    names = ["input"] + [n for n, _ in hf.named_parameters()]
    for name, a, r in zip(names, grads, grads_hf):
        torch.testing.assert_close(a, r, rtol=1e-5, atol=1e-7, msg=f"gradient of {name}")


def test_paper_init_survives_the_backbone_init():
    torch.manual_seed(0)
    cfg = BackboneConfig(d_model=32, n_layers=1, n_heads=4, mixer="mamba", mixer_options={"d_state": 8})
    mixer = Stack(cfg, causal=True).layers[0].mixer
    dt = torch.nn.functional.softplus(mixer.dt_proj.bias)
    assert dt.min() >= 1e-3 * (1 - 1e-5) and dt.max() <= 0.1 * (1 + 1e-5) and dt.std() > 0
    torch.testing.assert_close(-mixer.A_log.exp(), -torch.arange(1.0, 9.0).repeat(64, 1))
    assert (mixer.D == 1).all()
    assert mixer.dt_rank == 2 and mixer.d_inner == 64


def test_padding_steps_leave_the_state_untouched():
    """dt = 0 at padding: a padded decoding step returns the state it was given."""
    torch.manual_seed(0)
    mixer = ours().eval()
    state = mixer.init_state(2, torch.device("cpu"), torch.float32)
    with torch.no_grad():
        _, state = mixer(torch.randn(2, 5, 32), state=state)
        _, after = mixer(torch.randn(2, 1, 32), state=dict(state), mask=torch.tensor([[False], [True]]))
    torch.testing.assert_close(after["ssm"][0], state["ssm"][0])
    assert not torch.allclose(after["ssm"][1], state["ssm"][1])
