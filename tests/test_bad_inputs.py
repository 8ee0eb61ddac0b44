"""Bad input, through the API and the command line: each is refused where it enters, and the error names the
value it got and what is allowed (today's silent cases first: class_cond='no' read as True, label 10 of 10
classes read as the null label, a negative probe_train probing all rows but a few, a repeated seed
reporting a spread of zero, one NaN feature turning a 100% probe into 9%)."""

import dataclasses
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from _tiny import TINY

from ldae_lite import __main__ as cli
from ldae_lite import budgets, experiment, probe, recipes, supervised, tokenizers, trajectory
from ldae_lite.budgets import Budget
from ldae_lite.models import DiT
from ldae_lite.recipes import LDAE, Recipe
from ldae_lite.train import TrainConfig

ROOT = Path(__file__).resolve().parents[1]


def says(value: str, allowed: str) -> str:
    """A regex for a message that holds both ``value`` and ``allowed`` (literally, in any order)."""
    return f"(?s)(?=.*{re.escape(value)})(?=.*{re.escape(allowed)})"


def features(n=40, dim=6, classes=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, dim, generator=g), torch.arange(n) % classes


def linear(**changes):
    """linear_probe on small clean features, with one thing changed."""
    x, y = features()
    args = dict(train_x=x, train_y=y, test_x=x[:10], test_y=y[:10], epochs=1, verbose=False) | changes
    return probe.linear_probe(**args)


def knn(**changes):
    x, y = features()
    return probe.knn_probe(**(dict(train_x=x, train_y=y, test_x=x[:10], test_y=y[:10]) | changes))


def with_value(x: torch.Tensor, index, value) -> torch.Tensor:
    x = x.clone()
    x[index] = value
    return x


def dit_forward(y):
    model = DiT(in_dim=4, num_tokens=4, width=8, depth=2, heads=2, num_classes=10).eval()
    return model(torch.zeros(len(y), 4, 4), 10.0, y)


def nan_tokenizer_prepare():
    from ldae_lite.experiment import build

    tok = tokenizers.make_tokenizer("patch_pca", 4)
    tok.fit(torch.rand(32, 1, 32, 32) * 2 - 1)
    obj, _ = build(LDAE, tok, TINY)
    return obj.prepare(with_value(torch.zeros(2, 1, 32, 32), (0, 0, 3, 3), float("nan")))


def saved_with_nan(kind: str, tmp_path: Path):
    """A saved tokenizer (or CNN) whose weights hold one NaN, loaded back."""
    path = tmp_path / f"{kind}.pt"
    if kind == "cnn":
        cnn = supervised.SmallCNN(1, 10, width=8)
        with torch.no_grad():
            cnn.head.weight[0, 0] = float("nan")
        supervised.save_cnn(cnn, path)
        return supervised.load_cnn(path)
    tok = tokenizers.make_tokenizer("patch_ae", 4)
    with torch.no_grad():
        tok.decoder.weight[0, 0] = float("inf")
    tok.save(path)
    return tokenizers.load_tokenizer(path)


# (name, call, expected exception, (what the message must say of the value, of what is allowed))
API = [
    # Recipe: one source of allowed values (recipes.py), types checked, numbers in range
    ("class_cond 'no'", lambda: Recipe(class_cond="no"), TypeError, ("'no' (str)", "True or False")),
    ("pca_whiten 1", lambda: Recipe(pca_whiten=1), TypeError, ("1 (int)", "True or False")),
    ("input_scaling None", lambda: Recipe(input_scaling=None), TypeError, ("None", "True or False")),
    ("latent_dim '16'", lambda: Recipe(latent_dim="16"), TypeError, ("'16' (str)", "an integer >= 1")),
    ("latent_dim 16.5", lambda: Recipe(latent_dim=16.5), TypeError, ("16.5 (float)", "an integer >= 1")),
    ("latent_dim True", lambda: Recipe(latent_dim=True), TypeError, ("True (bool)", "an integer >= 1")),
    ("latent_dim 0", lambda: Recipe(latent_dim=0), ValueError, ("latent_dim=0", "an integer >= 1")),
    ("tokenizer vqgan2", lambda: Recipe(tokenizer="vqgan2"), ValueError, ("'vqgan2'", str(recipes.TOKENIZERS))),
    ("schedule cosine", lambda: Recipe(schedule="cosine"), ValueError, ("'cosine'", str(recipes.SCHEDULES))),
    ("noise_levels two", lambda: Recipe(noise_levels="two"), ValueError, ("'two'", str(recipes.NOISE_LEVELS))),
    ("resolution_scale 3", lambda: Recipe(resolution_scale=3), ValueError, ("=3", "(1, 2, 4)")),
    ("mask_ratio NaN", lambda: Recipe(mask_ratio=float("nan")), ValueError, ("mask_ratio=nan", "[0.0, 1.0)")),
    ("residual_weight -0.1", lambda: Recipe(residual_weight=-0.1), ValueError, ("=-0.1", "[0.0, 1.0]")),
    ("conv VAE d=10", lambda: Recipe(tokenizer="conv_vae", latent_dim=10), ValueError, ("latent_dim=10",
                                                                                        "multiple of 4")),
    # Budget
    ("steps '16'", lambda: Budget(steps="16"), TypeError, ("'16' (str)", "an integer >= 1")),
    ("steps 16.5", lambda: Budget(steps=16.5), TypeError, ("16.5 (float)", "an integer >= 1")),
    ("steps True", lambda: Budget(steps=True), TypeError, ("True (bool)", "an integer >= 1")),
    ("probe_train -5", lambda: Budget(probe_train=-5), ValueError, ("probe_train=-5", "an integer >= 1")),
    ("batch_size 0", lambda: Budget(batch_size=0), ValueError, ("batch_size=0", "an integer >= 1")),
    ("train_subset 0", lambda: Budget(train_subset=0), ValueError, ("train_subset=0", "an integer >= 1")),
    ("lr 0", lambda: Budget(lr=0), ValueError, ("lr=0.0", "(0.0, inf)")),
    ("lr '1e-3'", lambda: Budget(lr="1e-3"), TypeError, ("'1e-3' (str)", "a number")),
    ("warmup_frac 1", lambda: Budget(warmup_frac=1.0), ValueError, ("warmup_frac=1.0", "[0.0, 1.0)")),
    ("width 100 heads 3", lambda: Budget(width=100, heads=3), ValueError, ("width=100", "divisible by")),
    ("budget 'huge'", lambda: budgets.get_budget("huge"), ValueError, ("'huge'", "('smoke', 'lecture', 'full')")),
    ("TrainConfig steps '10'", lambda: TrainConfig(steps="10", batch_size=2, lr=0.1), TypeError,
     ("'10' (str)", "an integer >= 1")),
    # experiment and the trajectory: seeds, flags, the recipe itself
    ("run seed -1", lambda: experiment.run(LDAE, TINY, "digits", seed=-1), ValueError,
     ("seed=-1", "[0, 4294967295]")),
    ("run seed '0'", lambda: experiment.run(LDAE, TINY, "digits", seed="0"), TypeError,
     ("'0' (str)", "[0, 4294967295]")),
    ("run seed 2^32", lambda: experiment.run(LDAE, TINY, "digits", seed=2**32), ValueError,
     ("seed=4294967296", "[0, 4294967295]")),
    ("run recipe 'ldae'", lambda: experiment.run("ldae", TINY, "digits"), TypeError, ("'ldae' (str)", "a Recipe")),
    ("run generate 'yes'", lambda: experiment.run(LDAE, TINY, "digits", generate="yes"), TypeError,
     ("'yes' (str)", "True or False")),
    ("run fresh 1", lambda: experiment.run(LDAE, TINY, "digits", fresh=1), TypeError, ("1 (int)", "True or False")),
    ("load_model seed 1.5", lambda: experiment.load_model(LDAE, TINY, "digits", seed=1.5), TypeError,
     ("1.5 (float)", "[0, 4294967295]")),
    ("pixel_baseline seed -3", lambda: experiment.pixel_baseline("digits", TINY, seed=-3), ValueError,
     ("seed=-3", "[0, 4294967295]")),
    ("trajectory seeds (0, 0)", lambda: trajectory.run(TINY, "digits", seeds=(0, 0)), ValueError,
     ("[0, 0] repeats [0]", "each seed must appear once")),
    ("trajectory seeds ()", lambda: trajectory.run(TINY, "digits", seeds=()), ValueError,
     ("seeds is empty", "at least one seed")),
    ("trajectory seeds [0, '1']", lambda: trajectory.run(TINY, "digits", seeds=[0, "1"]), TypeError,
     ("seeds[1]", "'1' (str)")),
    ("step 'nope'", lambda: recipes.get_step("nope"), ValueError, ("'nope'", "'patch_pca'")),
    # the probes: features finite, labels in range, sizes >= 1
    ("probe NaN feature", lambda: linear(train_x=with_value(features()[0], (3, 2), float("nan"))), ValueError,
     ("1 of 240 values are not finite (1 NaN, 0 inf)", "every value must be a finite number")),
    ("probe label 10 of 10", lambda: linear(train_y=with_value(features()[1], 0, 10), num_classes=10), ValueError,
     ("(e.g. 10)", "integers in [0, 10)")),
    ("probe label -1", lambda: linear(test_y=with_value(features()[1][:10], 2, -1)), ValueError,
     ("(e.g. -1)", "labels must be integers >= 0")),
    ("probe float labels", lambda: linear(train_y=features()[1].float()), TypeError,
     ("dtype torch.float32", "integers >= 0")),
    ("probe no rows", lambda: linear(train_x=torch.zeros(0, 6), train_y=torch.zeros(0, dtype=torch.long)),
     ValueError, ("(0, 6)", "N >= 1")),
    ("probe epochs 0", lambda: linear(epochs=0), ValueError, ("epochs=0", "an integer >= 1")),
    ("probe lr -1", lambda: linear(lr=-1.0), ValueError, ("lr=-1.0", "(0.0, inf)")),
    ("probe base_lrs ()", lambda: linear(base_lrs=()), ValueError, ("base_lrs=()", "non-empty tuple of positive")),
    ("probe num_classes 0", lambda: linear(num_classes=0), ValueError, ("num_classes=0", "an integer >= 1")),
    ("knn inf feature", lambda: knn(test_x=with_value(features()[0][:10], (1, 1), float("inf"))), ValueError,
     ("(0 NaN, 1 inf)", "finite number")),
    ("knn k 0", lambda: knn(k=0), ValueError, ("k=0", "[1, 40]")),
    ("knn temperature 0", lambda: knn(temperature=0.0), ValueError, ("temperature=0.0", "(0.0, inf)")),
    ("knn center 'yes'", lambda: knn(center="yes"), TypeError, ("'yes' (str)", "True or False")),
    ("subset limit -5", lambda: probe.subset_indices(100, -5), ValueError, ("limit=-5", "an integer >= 1")),
    # tokenizers: the kind, and d within the tokenizer's range as soon as the patch is known
    ("tokenizer 'vae'", lambda: tokenizers.make_tokenizer("vae"), ValueError, ("'vae'", "'patch_pca'")),
    ("patch PCA d 65", lambda: tokenizers.make_tokenizer("patch_pca", 65), ValueError, ("latent_dim=65", "1..64")),
    ("patch AE d '16'", lambda: tokenizers.make_tokenizer("patch_ae", "16"), TypeError, ("'16' (str)", ">= 1")),
    ("pixel d 16", lambda: tokenizers.make_tokenizer("pixel", 16), ValueError, ("latent_dim=16", "64 or None")),
    ("image_size 32.0", lambda: tokenizers.make_tokenizer("patch_pca", 8, image_size=32.0), TypeError,
     ("32.0 (float)", "an integer >= 1")),
    ("channels 0", lambda: tokenizers.make_tokenizer("patch_pca", 8, channels=0), ValueError,
     ("channels=0", "an integer >= 1")),
    # the DiT's labels: label num_classes is no longer the null label in disguise
    ("DiT label 10 of 10", lambda: dit_forward(torch.tensor([0, 10])), ValueError, ("(e.g. 10)", "[0, 10)")),
    ("DiT label -1", lambda: dit_forward(torch.tensor([-1, 3])), ValueError, ("(e.g. -1)", "[0, 10)")),
    ("DiT float labels", lambda: dit_forward(torch.tensor([1.0, 2.0])), TypeError, ("torch.float32", "[0, 10)")),
    # non-finite latents
    ("NaN latents", nan_tokenizer_prepare, ValueError, ("latents (Objective.prepare)", "values are not finite")),
]


@pytest.mark.parametrize("name, call, exc, said", API, ids=[a[0] for a in API])
def test_api_refuses_and_says_what_is_allowed(name, call, exc, said, tmp_path, monkeypatch):
    monkeypatch.setenv("LDAE_RUNS", str(tmp_path))
    with pytest.raises(exc, match=says(*said)):
        call()


@pytest.mark.parametrize("kind, tensor", [("cnn", "CNN {}/cnn.pt['head.weight']: 1 of 320 values"),
                                          ("patch_ae", "tokenizer {}/patch_ae.pt['decoder.weight']: 1 of 256")])
def test_weights_that_are_not_finite_are_refused_naming_the_tensor(kind, tensor, tmp_path):
    with pytest.raises(ValueError, match=says(tensor.format(tmp_path), "every value must be a finite number")):
        saved_with_nan(kind, tmp_path)


def test_bad_environment_values(monkeypatch, tmp_path):
    monkeypatch.setenv("LDAE_RUNS", str(tmp_path))
    monkeypatch.setenv("LDAE_BUDGET", "tiny")
    with pytest.raises(ValueError, match=says("'tiny' (from $LDAE_BUDGET)", "('smoke', 'lecture', 'full')")):
        budgets.get_budget()
    monkeypatch.setenv("LDAE_FRESH", "yes")
    with pytest.raises(ValueError, match=says("$LDAE_FRESH='yes'", "('0', '1')")):
        experiment.run(LDAE, TINY, "digits")


# (argv, what the usage error must say of the value, of what is allowed)
CLI = [
    ("trajectory --seeds 0 0", ("--seeds=[0, 0] repeats [0]", "each seed must appear once")),
    ("trajectory --seeds 0 1 0", ("repeats [0]", "each seed must appear once")),
    ("trajectory --seeds -1", ("--seeds[0]=-1", "[0, 4294967295]")),
    ("trajectory --seeds 4294967296", ("=4294967296", "[0, 4294967295]")),
    ("trajectory --seeds x", ("'x'", "int")),
    ("trajectory --budget nope", ("'nope'", "'smoke', 'lecture', 'full'")),
    ("trajectory --train-steps 0", ("--train-steps 0", ">= 1")),
    ("trajectory --train-steps 1.5", ("'1.5'", "int")),
    ("trajectory --set steps=x", ("'steps=x'", "must be an int")),
    ("trajectory --set foo=1", ("'foo'", "allowed: ['width'")),
    ("trajectory --set steps", ("'steps'", "FIELD=VALUE")),
    ("trajectory --set batch_size=0", ("batch_size=0", "integer >= 1")),
    ("trajectory --set width=190", ("width=190", "divisible by")),
    ("trajectory --steps nope", ("'nope'", "'patch_pca'")),
    ("trajectory --steps patch_pca patch_pca", ("['patch_pca', 'patch_pca'] repeats", "each step must appear once")),
    ("trajectory --workers 0", ("--workers=0", "an integer >= 1")),
    ("run patch_pca --seed -2", ("--seed=-2", "[0, 4294967295]")),
    ("run nope", ("'nope'", "'predict_image'")),
    ("pixels --budget huge", ("'huge'", "'smoke', 'lecture', 'full'")),
]


@pytest.mark.parametrize("argv, said", CLI, ids=[c[0] for c in CLI])
def test_command_line_refuses_with_a_usage_error(argv, said, capsys, monkeypatch):
    monkeypatch.delenv("LDAE_BUDGET", raising=False)
    with pytest.raises(SystemExit) as exit_info:
        cli.main(argv.split())
    assert exit_info.value.code == 2  # argparse's usage error: no traceback, nothing trained
    assert re.search(says(*said), capsys.readouterr().err), argv


def test_command_line_refuses_a_bad_budget_from_the_environment(capsys, monkeypatch):
    monkeypatch.setenv("LDAE_BUDGET", "nope")
    with pytest.raises(SystemExit):
        cli.main(["trajectory"])
    assert re.search(says("'nope' (from $LDAE_BUDGET)", "('smoke', 'lecture', 'full')"), capsys.readouterr().err)


def test_the_real_command_line(tmp_path):
    """`python -m ldae_lite trajectory --seeds 0 0` as a student types it: exit status 2, one line saying why."""
    out = subprocess.run([sys.executable, "-m", "ldae_lite", "trajectory", "--seeds", "0", "0"], cwd=ROOT,
                         capture_output=True, text=True, timeout=120,
                         env={**os.environ, "LDAE_RUNS": str(tmp_path), "PYTHONPATH": str(ROOT)})
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert "--seeds=[0, 0] repeats [0]: each seed must appear once" in out.stderr


def test_there_are_forty_distinct_bad_inputs():
    names = [a[0] for a in API] + [c[0] for c in CLI]
    assert len(names) == len(set(names)) >= 40


def test_a_good_recipe_and_budget_are_stored_as_python_numbers():
    """numpy numbers pass (an integer is an integer) and are stored as Python's, so equal recipes hash alike."""
    import numpy as np

    r = dataclasses.replace(LDAE, latent_dim=np.int64(16), residual_weight=np.float32(0.25))
    assert type(r.latent_dim) is int and type(r.residual_weight) is float
    assert r.key() == dataclasses.replace(LDAE, latent_dim=16, residual_weight=0.25).key()
    assert Budget(lr=1).lr == 1.0 and type(Budget(lr=1).lr) is float
