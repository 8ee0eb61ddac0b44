import dataclasses

import pytest

from ldae_lite import paper
from ldae_lite.recipes import LDAE, PIXEL_DAE, TRAJECTORY, Recipe, get_step, pixel_sweep, tokenizer_sweep


def test_trajectory_is_the_papers_fig6():
    assert [s.key for s in TRAJECTORY] == [s.key for s in paper.TRAJECTORY]
    assert [s.paper_accuracy for s in TRAJECTORY] == [
        57.5, 62.5, 58.4, 59.0, 63.4, 64.9, 64.7, 65.1, 62.4, 63.6, 63.6, 63.9, 64.5]
    assert [s.legitimate for s in TRAJECTORY][:3] == [False, False, True]


def test_each_step_changes_the_one_before():
    for prev, step in zip(TRAJECTORY, TRAJECTORY[1:]):
        changes = step.recipe.changes_from(prev.recipe)
        assert 1 <= len(changes) <= 3, (step.key, changes)


def test_final_recipe_is_ldae():
    assert LDAE == dataclasses.replace(
        Recipe(), class_cond=False, tokenizer="patch_pca", schedule="linear_sigma", input_scaling=False,
        target="image", input_space="image", output_space="image", loss_weight="inv_1_plus_sigma2")
    assert PIXEL_DAE.tokenizer == "pixel"


def test_keys_are_stable_and_distinct():
    keys = {s.recipe.key() for s in TRAJECTORY}
    assert len(keys) == len(TRAJECTORY)
    assert Recipe().key() == Recipe().key()


@pytest.mark.parametrize("kwargs, field", [
    (dict(tokenizer="vqgan2"), "tokenizer"),
    (dict(schedule="cosine"), "schedule"),
    (dict(target="v"), "target"),
    (dict(input_space="pixels"), "input_space"),
    (dict(output_space="pixels"), "output_space"),
    (dict(loss_weight="snr"), "loss_weight"),
    (dict(noise_levels="two"), "noise_levels"),
    (dict(tokenizer="conv_vae", latent_dim=10), "latent_dim=10"),
    (dict(tokenizer="conv_vae", latent_dim=None), "latent_dim=None"),
    (dict(latent_dim=0), "latent_dim=0"),
    (dict(tokenizer="patch_ae", input_space="image"), "input_space='image'"),
    (dict(tokenizer="patch_ae", output_space="image", target="x0"), "output_space='image'"),
    (dict(tokenizer="patch_ae", target="image"), "target='image'"),
    (dict(tokenizer="patch_pca", target="eps", output_space="image"), "target='eps'"),
    (dict(tokenizer="patch_pca", target="image"), "output_space='image'"),
    (dict(schedule="linear_sigma"), "input_scaling=False"),
    (dict(loss_weight="gamma2", input_scaling=False), "loss_weight='gamma2'"),
    (dict(residual_weight=2.0), "residual_weight=2.0"),
    (dict(resolution_scale=3), "resolution_scale=3"),
    (dict(tokenizer="conv_vae", resolution_scale=2), "resolution_scale=2"),
    (dict(mask_ratio=1.0), "mask_ratio=1.0"),
    (dict(mask_ratio=0.5), "mask_ratio > 0"),
])
def test_invalid_recipes_name_the_field(kwargs, field):
    with pytest.raises(ValueError, match=field.replace("(", r"\(").replace(")", r"\)")):
        Recipe(**kwargs)


def test_sweeps():
    sweep = tokenizer_sweep("patch_pca", dims=(4, 8))
    assert set(sweep) == {4, 8} and sweep[4].tokenizer == "patch_pca" and sweep[4].schedule == "linear_gamma2"
    pix = pixel_sweep((1, 2))
    assert pix[2][0].resolution_scale == 2 and pix[2][1].tokenizer == "patch_pca"
    with pytest.raises(ValueError, match="trajectory step='nope' is not allowed; choose one of"):
        get_step("nope")


def test_each_field_takes_its_allowed_values_from_the_module_that_implements_them():
    """One tuple per field, no copy: the recipe's tuples are the concept modules' own objects."""
    from ldae_lite import noise, objectives, recipes, tokenizers

    assert recipes.TOKENIZERS is tokenizers.KINDS
    assert recipes.SCHEDULES is noise.SCHEDULES and recipes.LOSS_WEIGHTS is noise.LOSS_WEIGHTS
    assert recipes.NOISE_LEVELS is noise.NOISE_LEVELS and set(noise.SINGLE_SIGMAS) < set(noise.NOISE_LEVELS)
    assert recipes.TARGETS is objectives.TARGETS and recipes.SPACES is objectives.SPACES
    assert set(recipes.FITTED_WITHOUT_GRADIENT) | set(recipes.CONV_TOKENIZERS) <= set(recipes.TOKENIZERS)
