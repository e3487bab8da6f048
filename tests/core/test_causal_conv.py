"""The short causal convolution: steps from its state equal the full pass, padding enters as zeros."""
import torch

from core.nn import CausalConv1d


def test_steps_equal_full_pass_and_state_is_fixed_size():
    torch.manual_seed(0)
    conv = CausalConv1d(6, kernel=4)
    x = torch.randn(2, 9, 6)
    full, _ = conv(x)
    ref = torch.nn.functional.conv1d(torch.nn.functional.pad(x.transpose(1, 2), (3, 0)), conv.weight, conv.bias,
                                     groups=6).transpose(1, 2)
    torch.testing.assert_close(full, ref)
    state = conv.init_state(2, x.device, x.dtype)
    y, state = conv(x[:, :5], state)
    outs = [y]
    for i in range(5, 9):
        y, state = conv(x[:, i:i + 1], state)
        outs.append(y)
        assert state.shape == (2, 6, 3)
    torch.testing.assert_close(torch.cat(outs, 1), full)


def test_left_padding_is_invisible():
    torch.manual_seed(0)
    conv = CausalConv1d(4, kernel=3)
    x = torch.randn(1, 5, 4)
    padded = torch.cat([torch.randn(1, 2, 4), x], 1)
    mask = torch.tensor([[False, False] + [True] * 5])
    y_a, s_a = conv(x, conv.init_state(1, x.device, x.dtype))
    y_b, s_b = conv(padded, conv.init_state(1, x.device, x.dtype), mask=mask)
    torch.testing.assert_close(y_b[:, 2:], y_a)
    torch.testing.assert_close(s_b, s_a)
