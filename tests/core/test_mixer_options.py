"""mixer_options: flat for one family, keyed by family for hybrids; typos are errors that list the
valid names (they used to be ignored silently)."""
import pytest

from core.errors import UserError
from core.mixers import MIXERS
from core.models import BackboneConfig
from core.models.blocks import Stack


def test_per_mixer_options_reach_their_own_layers():
    cfg = BackboneConfig(d_model=32, n_layers=4, n_heads=4, mixer=["mamba", "gla"],
                         mixer_options={"mamba": {"d_state": 8}, "gla": {"chunk": 4}})
    layers = [layer.mixer for layer in Stack(cfg, causal=True).layers]
    assert [m.d_state for m in layers[0::2]] == [8, 8]
    assert [m.chunk for m in layers[1::2]] == [4, 4]


def test_flat_options_still_work_for_one_family():
    stack = Stack(BackboneConfig(d_model=32, n_layers=2, n_heads=4, mixer="mamba", mixer_options={"d_state": 4}), causal=True)
    assert all(layer.mixer.d_state == 4 for layer in stack.layers)


def test_unknown_option_names_the_mixer_and_lists_valid_ones():
    cfg = BackboneConfig(d_model=32, n_layers=1, n_heads=4, mixer="mamba", mixer_options={"d_stat": 8})
    with pytest.raises(UserError, match=r"mixer 'mamba' has no option 'd_stat'; valid options: block, d_conv, d_state"):
        Stack(cfg, causal=True)


def test_attention_takes_no_options():
    cfg = BackboneConfig(d_model=32, n_layers=2, n_heads=4, mixer=["gla", "attention"],
                         mixer_options={"gla": {}, "attention": {"chunk": 4}})
    with pytest.raises(UserError, match="mixer 'attention' has no option 'chunk'; valid options: none"):
        Stack(cfg, causal=True)


@pytest.mark.parametrize("kw, message", [
    (dict(mixer=["mamba", "attention"], mixer_options={"d_state": 8}), "must be keyed by mixer"),
    (dict(mixer="mamba", mixer_options={"gla": {"chunk": 4}}), r"options for \['gla'\]"),
    (dict(mixer="mamba", mixer_options={"mamab": {"d_state": 4}}), r"options for \['mamab'\]"),
])
def test_badly_shaped_options_fail_when_the_config_is_made(kw, message):
    with pytest.raises(UserError, match=message):
        BackboneConfig(d_model=32, n_layers=2, n_heads=4, **kw)


def test_every_mixer_declares_its_options():
    for name, cls in MIXERS.items():
        assert cls.name == name
        assert isinstance(cls.options, dict)


def test_docstrings_list_every_declared_option():
    """The option lists in the mixers' docstrings stay true: every declared name is documented."""
    import inspect

    for name, cls in MIXERS.items():
        doc = (inspect.getmodule(cls).__doc__ or "") + "".join(c.__doc__ or "" for c in cls.__mro__)
        missing = [opt for opt in cls.options if f"``{opt}``" not in doc]
        assert not missing, f"{name}: options {missing} are not in its docstring"
