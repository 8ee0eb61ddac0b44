"""The check of notebook 02's exercise (label dropout) accepts the right answer and names mistakes."""

import torch

from ldae_lite.exercises import conditioning


def run(fn, capsys):
    ok = conditioning.check_drop_labels(fn)
    return ok, capsys.readouterr().out


def test_accepts_reference(capsys):
    ok, out = run(conditioning.drop_labels_reference, capsys)
    assert ok and out.startswith("correct")


def test_unsolved(capsys):
    def stub(y, num_classes, p, generator):
        raise NotImplementedError

    ok, out = run(stub, capsys)
    assert not ok and out.startswith("not solved yet")


def test_names_mistakes(capsys):
    def null_zero(y, k, p, g):
        return torch.where(torch.rand(y.shape, generator=g) < p, torch.zeros_like(y), y)

    def inverted(y, k, p, g):
        return torch.where(torch.rand(y.shape, generator=g) > p, torch.full_like(y, k), y)

    def in_place(y, k, p, g):
        y[torch.rand(y.shape, generator=g) < p] = k
        return y

    def no_generator(y, k, p, g):
        return torch.where(torch.rand(y.shape) < p, torch.full_like(y, k), y)

    cases = ((null_zero, "T-shirt"), (inverted, "inverted"), (in_place, "in place"), (no_generator, "generator"))
    for fn, expected in cases:
        ok, out = run(fn, capsys)
        assert not ok and out.startswith("not quite") and expected in out, (fn.__name__, out)
