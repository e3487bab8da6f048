"""The gradient half of "fast form vs reference": both outputs are projected on the same random
weights, and the gradients of that scalar with respect to every named leaf must agree."""
import torch


def parameters_and(module: torch.nn.Module, **leaves: torch.Tensor | None) -> dict[str, torch.Tensor]:
    """``{"x": x, <parameter names>: ...}``-style leaf dicts: the given leaves first (None skipped),
    then the module's parameters."""
    return {**{k: v for k, v in leaves.items() if v is not None}, **dict(module.named_parameters())}


def assert_same_gradients(y: torch.Tensor, ref: torch.Tensor, leaves: dict[str, torch.Tensor],
                          rtol: float, atol: float) -> None:
    w = torch.randn_like(y)
    names, tensors = zip(*leaves.items())
    grads = torch.autograd.grad((y * w).sum(), tensors)
    ref_grads = torch.autograd.grad((ref * w).sum(), tensors)
    for name, a, r in zip(names, grads, ref_grads):
        torch.testing.assert_close(a, r, rtol=rtol, atol=atol, msg=f"gradient of {name}")
