"""Budgets: the presets, the LDAE_BUDGET switch, and the errors for unknown names."""

import dataclasses

import pytest

from ldae_lite import budgets, validate
from ldae_lite.budgets import BUDGETS, Budget, get_budget


def test_presets_exist_and_grow():
    assert set(BUDGETS) == {"smoke", "lecture", "full"}
    smoke, lecture, full = BUDGETS["smoke"], BUDGETS["lecture"], BUDGETS["full"]
    for name, b in BUDGETS.items():
        assert b.name == name and b.width % b.heads == 0 and b.weight_decay == 0.0
    for field in ("width", "depth", "steps", "sample_steps", "fid_samples"):
        assert getattr(smoke, field) < getattr(lecture, field) < getattr(full, field), field
    assert smoke.probe_epochs < lecture.probe_epochs == full.probe_epochs == 90  # MAE's probe, as the paper
    assert smoke.train_subset == 2048 and lecture.train_subset is None and full.probe_train is None


def test_pinned_values():
    smoke, lecture, full = BUDGETS["smoke"], BUDGETS["lecture"], BUDGETS["full"]
    assert (smoke.width, smoke.depth, smoke.heads, smoke.steps, smoke.batch_size) == (64, 2, 2, 30, 64)
    assert (smoke.probe_train, smoke.probe_test, smoke.probe_epochs) == (2048, 1000, 10)
    assert (lecture.width, lecture.depth, lecture.heads, lecture.steps, lecture.batch_size) == (192, 6, 3, 1200, 128)
    assert (full.width, full.depth, full.heads, full.steps, full.batch_size, full.lr) == (384, 12, 6, 3000, 512, 5e-4)
    assert lecture.warmup_frac == full.warmup_frac == 0.05


def test_frozen_and_replace():
    b = get_budget("smoke")
    with pytest.raises(dataclasses.FrozenInstanceError):
        b.steps = 1
    longer = dataclasses.replace(b, steps=60)
    assert longer.steps == 60 and b.steps == 30


@pytest.mark.parametrize("env, expected", [(None, "lecture"), ("smoke", "smoke"), ("full", "full"),
                                           ("Lecture", "lecture"), ("", "lecture")])
def test_environment_selects_budget(monkeypatch, env, expected):
    if env is None:
        monkeypatch.delenv("LDAE_BUDGET", raising=False)
    else:
        monkeypatch.setenv("LDAE_BUDGET", env)
    assert get_budget().name == expected
    assert get_budget(None) is BUDGETS[expected]


def test_explicit_name_and_passthrough(monkeypatch):
    monkeypatch.setenv("LDAE_BUDGET", "full")
    assert get_budget("smoke").name == "smoke"
    custom = Budget(name="mine", width=32, heads=2)
    assert get_budget(custom) is custom


def test_unknown_budget(monkeypatch):
    with pytest.raises(ValueError, match=r"'huge'.*smoke.*lecture.*full"):
        get_budget("huge")
    monkeypatch.setenv("LDAE_BUDGET", "tiny")
    with pytest.raises(ValueError, match=r"'tiny'.*LDAE_BUDGET"):
        get_budget()


def test_invalid_fields():
    with pytest.raises(ValueError, match="heads"):
        Budget(width=100, heads=3)
    with pytest.raises(ValueError, match="steps"):
        Budget(steps=0)


def test_overrides_label_and_slug_name_what_differs_from_the_preset():
    from ldae_lite import budgets

    lecture = get_budget("lecture")
    assert budgets.overrides(lecture) == {}
    assert budgets.label(lecture) == "lecture" and budgets.slug(lecture) == "lecture"
    longer = dataclasses.replace(lecture, steps=4800, lr=5e-4)
    assert budgets.overrides(longer) == {"steps": 4800, "lr": 5e-4}
    assert budgets.label(longer) == "lecture, steps=4800, lr=0.0005"
    assert budgets.slug(longer) == "lecture_steps4800_lr0.0005"
    assert budgets.overrides(Budget(name="mine", steps=7)) == {}  # no preset of that name to differ from


def test_with_settings_reads_each_field_as_its_type_and_names_the_change():
    lecture = BUDGETS["lecture"]
    b = budgets.with_settings(lecture, ["steps=300", "batch_size=256", "lr=2e-3", "probe_train=none"])
    assert (b.steps, b.batch_size, b.lr, b.probe_train) == (300, 256, 2e-3, None)
    assert budgets.overrides(b) == {"steps": 300, "batch_size": 256, "lr": 2e-3}
    assert budgets.slug(b) == "lecture_steps300_batch_size256_lr0.002"
    assert budgets.with_settings(lecture, "steps=1200") == lecture  # the preset's own value: no override
    for bad, words in (("steps=1.5", "must be an int"), ("lr=fast", "must be a number"), ("name=x", "unknown"),
                       ("=3", "FIELD=VALUE"), ("probe_epochs=0", ">= 1")):
        with pytest.raises(validate.BadInput, match=words):
            budgets.with_settings(lecture, [bad])
