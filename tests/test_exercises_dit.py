"""The checks of notebook 01's exercises accept the right answer and name the typical mistakes."""

import torch
from _exercises import accepts, run

from ldae_lite.exercises import dit
from ldae_lite.models import modulate


def test_modulate_accepts_the_package_version(capsys):
    accepts(dit.check_modulate, modulate, capsys)


def test_modulate_unsolved_does_not_raise(capsys):
    def stub(x, shift, scale):
        raise NotImplementedError

    ok, out = run(dit.check_modulate, stub, capsys)
    assert not ok and out.startswith("not solved yet")


def test_modulate_names_the_mistake(capsys):
    cases = {
        "swapped": lambda x, shift, scale: x * (1 + shift[:, None]) + scale[:, None],
        "'1 +' is missing": lambda x, shift, scale: x * scale[:, None] + shift[:, None],
        "unsqueeze(1)": lambda x, shift, scale: x * (1 + scale) + shift,
        "before scaling": lambda x, shift, scale: (x + shift[:, None]) * (1 + scale[:, None]),
        "sample 0": lambda x, shift, scale: x * (1 + scale[:1, None]) + shift[:1, None],
    }
    for expected, fn in cases.items():
        ok, out = run(dit.check_modulate, fn, capsys)
        assert not ok and out.startswith("not quite") and expected in out, (expected, out)


def test_zero_init_accepts_the_reference(capsys):
    accepts(dit.check_zero_init, dit.zero_init_reference, capsys)


def test_zero_init_names_the_mistake(capsys):
    def weight_only(block):
        torch.nn.init.zeros_(block.adaLN_modulation[-1].weight)

    def everything(block):
        for p in block.parameters():
            torch.nn.init.zeros_(p)

    def nothing(block):
        pass

    def stub(block):
        raise NotImplementedError

    for fn, expected in ((weight_only, "bias is not"), (everything, "also changed"), (nothing, "zero both"),
                         (stub, "not solved yet")):
        ok, out = run(dit.check_zero_init, fn, capsys)
        assert not ok and expected in out, (fn.__name__, out)
