"""Pinned numbers: every trajectory step trained at a tiny budget on Fashion-MNIST gives the same probe
accuracy and the same parameters as when the pins were written.

A refactor that keeps what a run trains keeps these numbers; a change that moves them on purpose
regenerates the pins and says why in its commit:

    LDAE_BUDGET=smoke .venv/bin/python tests/test_pinned.py --regenerate

A parameter checksum looks at what training changed, the trained parameters minus the same seed's fresh
initialisation: its norm, and its projection on a fixed random direction divided by that norm. Another
objective, batch order or optimizer moves the projection by about 1; rounding (another CPU's bf16 kernels)
by far less than the tolerance.
"""

import dataclasses
import json
import math
import os
import sys
import tempfile
from pathlib import Path

import pytest
import torch

from ldae_lite import budgets, data, experiment, tokenizers
from ldae_lite import device as device_mod
from ldae_lite.recipes import TRAJECTORY

PINS = Path(__file__).with_name("pinned_smoke.json")
DATASET = "fashion-mnist"
BUDGET = dataclasses.replace(budgets.get_budget("smoke"), name="pinned", steps=20, train_subset=1024,
                             probe_train=1024, probe_test=500, tokenizer_steps=10, cnn_steps=10, probe_epochs=5)
ACCURACY_TOL = 1.0  # points: 5 of the 500 test images
CHECKSUM_TOL = 0.02  # in units of the parameter norm
NORM_RTOL = 0.01
LOSS_RTOL = 0.02


def _flat(module: torch.nn.Module) -> torch.Tensor:
    return torch.cat([p.detach().double().flatten().cpu() for p in module.state_dict().values()
                      if p.is_floating_point()])


def checksum(module: torch.nn.Module, init: torch.nn.Module | None = None) -> dict:
    """{norm, projection} of ``module``'s parameters minus ``init``'s: the norm, and the projection on a
    fixed random direction divided by the norm (about N(0, 1) for unrelated parameters)."""
    flat = _flat(module) - (_flat(init) if init is not None else 0.0)
    direction = torch.randn(len(flat), generator=torch.Generator().manual_seed(1234), dtype=torch.float64)
    norm = flat.norm().item()
    return {"norm": norm, "projection": (flat @ direction).item() / max(norm, 1e-12)}


def fresh_model(recipe, tok) -> torch.nn.Module:
    """The denoiser as ``run`` initialises it, before training."""
    device_mod.seed_everything(0)
    return experiment.build(recipe, tok, BUDGET)[1]


def fresh_tokenizer(recipe, tok) -> torch.nn.Module:
    """A tokenizer trained by gradient as ``get_tokenizer`` initialises it, before fitting."""
    device_mod.seed_everything(0)
    return tokenizers.make_tokenizer(recipe.tokenizer, recipe.latent_dim, image_size=32, channels=1, patch_size=8)


def measure() -> dict:
    """{step key: {accuracy, model, tokenizer}} for every trajectory step, trained from an empty cache."""
    out = {}
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for step in TRAJECTORY:
            result = experiment.run(step.recipe, BUDGET, DATASET, seed=0, progress=False)
            tok, _, model = experiment.load_model(step.recipe, BUDGET, DATASET, seed=0, device="cpu")
            out[step.key] = {"accuracy": result.probe_accuracy, "final_loss": result.final_loss,
                             "model": checksum(model, fresh_model(step.recipe, tok)),
                             "tokenizer": (checksum(tok, fresh_tokenizer(step.recipe, tok))
                                           if experiment.trains_tokenizer(step.recipe) else None)}
    finally:
        torch.set_num_threads(before)
    return out


def _has_dataset() -> bool:
    try:
        data.load(DATASET, "test")
        return True
    except Exception:  # noqa: BLE001 - any failure to find the data skips the test
        return False


@pytest.fixture(scope="module")
def measured(tmp_path_factory):
    if not _has_dataset():
        pytest.skip(f"{DATASET} is not available here")
    old = os.environ.get("LDAE_RUNS")
    os.environ["LDAE_RUNS"] = str(tmp_path_factory.mktemp("runs"))
    try:
        yield measure()
    finally:
        if old is None:
            os.environ.pop("LDAE_RUNS")
        else:
            os.environ["LDAE_RUNS"] = old


@pytest.mark.parametrize("key", [s.key for s in TRAJECTORY])
def test_step_numbers_are_pinned(measured, key):
    pins = json.loads(PINS.read_text())
    pin, now = pins[key], measured[key]
    assert now["accuracy"] == pytest.approx(pin["accuracy"], abs=ACCURACY_TOL), key
    assert now["final_loss"] == pytest.approx(pin["final_loss"], rel=LOSS_RTOL), key
    for part in ("model", "tokenizer"):
        if pin[part] is None:
            assert now[part] is None
            continue
        assert now[part]["norm"] == pytest.approx(pin[part]["norm"], rel=NORM_RTOL), (key, part)
        assert math.isclose(now[part]["projection"], pin[part]["projection"], abs_tol=CHECKSUM_TOL), (key, part)


def test_checksum_tells_two_initialisations_apart():
    a, b = torch.nn.Linear(64, 64), torch.nn.Linear(64, 64)
    assert abs(checksum(a)["projection"] - checksum(b)["projection"]) > CHECKSUM_TOL
    assert checksum(a) == checksum(a)


if __name__ == "__main__":
    if "--regenerate" not in sys.argv:
        sys.exit("usage: python tests/test_pinned.py --regenerate")
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["LDAE_RUNS"] = tmp
        pins = measure()
    PINS.write_text(json.dumps(pins, indent=1) + "\n")
    print(f"wrote {PINS}")
