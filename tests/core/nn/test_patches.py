"""Patch embeddings: the strided convolution equals a linear layer on the flattened patches
(fast path vs reference, outputs and gradients), shapes and grids, and patchify round trips."""
import pytest
import torch

from core.errors import UserError
from core.nn import PatchEmbed1d, PatchEmbed2d, patchify1d, patchify2d, unpatchify1d, unpatchify2d


@pytest.mark.parametrize("patch, stride, pad_end", [(4, None, False), (4, 2, False), (4, 2, True)])
def test_patch_embed_1d_is_a_linear_layer_on_patches(patch, stride, pad_end):
    torch.manual_seed(0)
    embed = PatchEmbed1d(3, 8, patch, stride, pad_end)
    x = torch.randn(2, 13, 3, requires_grad=True)
    y = embed(x)
    assert y.shape == (2, embed.num_patches(13), 8)
    source = torch.cat([x, x[:, -1:].expand(-1, embed.stride, -1)], 1) if pad_end else x
    weight = embed.proj.weight.permute(0, 2, 1).reshape(8, -1)  # [D, C, P] -> [D, P * C]
    ref = patchify1d(source, patch, stride) @ weight.T + embed.proj.bias
    torch.testing.assert_close(y, ref, rtol=1e-5, atol=1e-6)
    conv = embed.proj(source.transpose(1, 2)).transpose(1, 2)  # the weights are the strided convolution's
    torch.testing.assert_close(y, conv, rtol=1e-5, atol=1e-6)
    g = torch.randn_like(y)
    (gy,) = torch.autograd.grad(y, x, g, retain_graph=True)
    (gr,) = torch.autograd.grad(ref, x, g)
    torch.testing.assert_close(gy, gr, rtol=1e-5, atol=1e-6)


def test_patch_embed_1d_stride_sets_the_patch_count():
    x = torch.randn(1, 16, 2)
    assert PatchEmbed1d(2, 4, 4)(x).shape[1] == 4
    assert PatchEmbed1d(2, 4, 4, stride=2)(x).shape[1] == 7
    assert PatchEmbed1d(2, 4, 4, stride=2, pad_end=True)(x).shape[1] == 8  # PatchTST: L=16, P=4, S=2 -> 8
    with pytest.raises(UserError, match="shorter than one patch"):
        PatchEmbed1d(2, 4, 4)(torch.randn(1, 3, 2))


def test_patchify_1d_round_trips():
    x = torch.randn(2, 12, 3)
    patches = patchify1d(x, 4)
    assert patches.shape == (2, 3, 12)
    torch.testing.assert_close(patches[0, 1], x[0, 4:8].reshape(-1))  # step-major within a patch
    torch.testing.assert_close(unpatchify1d(patches, 3), x)


def test_patch_embed_2d_returns_the_grid_and_is_a_linear_layer_on_patches():
    torch.manual_seed(0)
    embed = PatchEmbed2d(3, 8, 4)
    x = torch.randn(2, 3, 8, 12, requires_grad=True)
    y, grid = embed(x)
    assert grid == (2, 3) and y.shape == (2, 6, 8)
    weight = embed.proj.weight.permute(0, 2, 3, 1).reshape(8, -1)  # [D, C, P, P] -> [D, P * P * C]
    ref = patchify2d(x, 4) @ weight.T + embed.proj.bias
    torch.testing.assert_close(y, ref, rtol=1e-5, atol=1e-6)
    g = torch.randn_like(y)
    (gy,) = torch.autograd.grad(y, x, g, retain_graph=True)
    (gr,) = torch.autograd.grad(ref, x, g)
    torch.testing.assert_close(gy, gr, rtol=1e-5, atol=1e-6)


def test_patchify_2d_round_trips_in_row_major_order():
    x = torch.randn(2, 3, 8, 12)
    patches = patchify2d(x, 4)
    torch.testing.assert_close(patches[0, 1], x[0, :, 0:4, 4:8].permute(1, 2, 0).reshape(-1))  # row 0, column 1
    torch.testing.assert_close(patches[0, 3], x[0, :, 4:8, 0:4].permute(1, 2, 0).reshape(-1))  # row 1, column 0
    torch.testing.assert_close(unpatchify2d(patches, (2, 3), 4, 3), x)


def test_patch_embed_2d_pads_or_refuses_ragged_images():
    x = torch.randn(1, 1, 10, 7)
    with pytest.raises(UserError, match="10x7 pixels"):
        PatchEmbed2d(1, 4, 4)(x)
    y, grid = PatchEmbed2d(1, 4, 4, pad=True)(x)
    assert grid == (3, 2) and y.shape == (1, 6, 4)
