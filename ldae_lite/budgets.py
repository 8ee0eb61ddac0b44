"""Budgets: one switch (``LDAE_BUDGET``) that sizes every run in the series.

A budget fixes the model size, the number of optimizer steps, how much data is used and how the probe
is run. The recipe (what the paper changes step by step) is separate: any recipe runs at any budget.

| budget  | where                    | purpose                                                    |
|---------|--------------------------|------------------------------------------------------------|
| smoke   | CI, tests (2 CPU cores)  | every cell runs in seconds; nothing is claimed             |
| lecture | a laptop CPU (default)   | trends visible in a few minutes per notebook               |
| full    | one GPU (sized for H100) | the trajectory with enough signal to compare to the paper  |

Override single fields with ``dataclasses.replace(get_budget("lecture"), steps=800)``, or on the command line
with ``--set steps=800 batch_size=256`` (:func:`with_settings`); reports and their files name the change.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace

from . import validate

ENV_VAR = "LDAE_BUDGET"
DEFAULT = "lecture"


@dataclass(frozen=True)
class Budget:
    """How big and how long. Defaults are the lecture budget; the presets are in :data:`BUDGETS`."""

    name: str = "lecture"
    # Denoiser (DiT/ViT). The paper uses DiT-L (width 1024, 24 blocks, 16 heads); the lecture size is a
    # ViT-Tiny-like 192 x 6 (2.7M parameters); results/lecture/trajectory_*.json record its training speed
    # (images_per_s) on the reference machine.
    width: int = 192
    depth: int = 6  # total blocks; the encoder is the first depth // 2 (the paper's symmetric 12/12 split)
    heads: int = 3  # head dim 64, as in ViT/DiT
    mlp_ratio: float = 4.0  # ViT standard
    # Denoiser optimisation. The paper: batch 2048, blr 1e-4 (lr 8e-4), 400 epochs, no weight decay.
    # At small batch and few steps a higher lr converges faster; 1e-3 was stable at width 192.
    # 1200 steps of 128 (~2.6 epochs): of the budgets measured, the cheapest whose 3-seed trajectory shows the
    # paper's changes beyond seed noise (results/search/budget_search.md; `make search` regenerates it).
    # For the same images, more and smaller steps train a model this size further: the probes at 300 steps
    # of 256 moved by less than their seed noise. A 128-image step costs half a 256-image one on a CPU.
    steps: int = 1200  # train_seconds and images_per_s: the trajectory reports
    batch_size: int = 128
    lr: float = 1e-3
    warmup_frac: float = 0.05  # linear warmup over 5% of steps, then half-cycle cosine (paper: 100 of 400 ep)
    weight_decay: float = 0.0  # the paper uses none (docs/paper.md §4, pre-training hyper-parameters)
    # Tokenizers that need gradient training (conv VAE, patch VAE/AE; PCA needs none).
    tokenizer_steps: int = 300
    tokenizer_batch: int = 128
    # Label-trained CNN standing in for the supervised VGG of the perceptual loss (and for FID features).
    cnn_steps: int = 300
    # Data. None = the whole training split.
    train_subset: int | None = None
    # Linear / kNN probe. None = the whole split. 90 epochs, as MAE's probe that the paper follows;
    # results/lecture/levers.md, group 'probe', compares it with 30 on raw pixels and on l-DAE.
    # The probe fields are not part of a run's key: changing them probes cached runs again, no retraining.
    probe_train: int | None = None
    probe_test: int | None = None
    probe_epochs: int = 90
    # Generation (only for the Frechet-distance column of the five generative steps). 25 DDIM steps x
    # 1000 samples are 25k forward passes, the images of about 100 training steps; enough to rank the
    # steps, not a real FID.
    sample_steps: int = 25
    fid_samples: int = 1000

    def __post_init__(self):
        if not isinstance(self.name, str) or not self.name.strip():
            raise validate.BadType(f"Budget.name must be a non-empty string, got {self.name!r}")
        checked = {name: validate.integer(f"Budget.{name}", getattr(self, name), low=low)
                   for name, low in _INTEGERS.items()}
        checked.update({name: validate.optional_integer(f"Budget.{name}", getattr(self, name), low=1)
                        for name in _SUBSETS})
        checked.update({name: validate.real(f"Budget.{name}", getattr(self, name), low=0.0, low_open=True)
                        for name in ("mlp_ratio", "lr")})
        checked["weight_decay"] = validate.real("Budget.weight_decay", self.weight_decay, low=0.0)
        checked["warmup_frac"] = validate.real("Budget.warmup_frac", self.warmup_frac, low=0.0, high=1.0,
                                               high_open=True)
        for name, value in checked.items():  # stored as Python numbers, so that equal budgets hash alike
            object.__setattr__(self, name, value)  # frozen: set once, here
        if self.width % self.heads:
            raise validate.BadValue(f"Budget.width={self.width} must be divisible by Budget.heads={self.heads}")
        if self.width % 4:
            raise validate.BadValue(f"Budget.width={self.width} must be a multiple of 4 (the 2D sin-cos position "
                                    "embedding splits it in four)")


# The integer fields of Budget and the smallest value each allows (depth: an encoder of depth // 2 >= 1
# blocks and a decoder); the subsets may also be None (the whole split). A size below 1 would train
# nothing or, as a slice limit, count from the end: a probe_train of -5 would probe all rows but 5.
_INTEGERS = {"width": 4, "depth": 2, "heads": 1, "steps": 1, "batch_size": 1, "tokenizer_steps": 1,
             "tokenizer_batch": 1, "cnn_steps": 1, "probe_epochs": 1, "sample_steps": 1, "fid_samples": 1}
_SUBSETS = ("train_subset", "probe_train", "probe_test")


BUDGETS: dict[str, Budget] = {
    # Seconds on 2 CPU cores: a 64-wide, 2-block model sees 30 batches. Checks that everything runs.
    "smoke": Budget(
        name="smoke", width=64, depth=2, heads=2, mlp_ratio=4.0, steps=30, batch_size=64, lr=1e-3,
        tokenizer_steps=30, tokenizer_batch=64, cnn_steps=30, train_subset=2048,
        probe_train=2048, probe_test=1000, probe_epochs=10, sample_steps=10, fid_samples=256,
    ),
    # A few minutes per run on a laptop CPU (bf16 where supported): about 150k images seen (~2.6 epochs of
    # Fashion-MNIST-M), the probe on all 60k / 10k features.
    "lecture": Budget(name="lecture"),
    # One H100: ViT-S-sized 384 x 12, 3000 steps of 512 (~25 epochs of Fashion-MNIST); the probe uses
    # MAE's 90 epochs. lr lowered for the larger width and batch.
    "full": Budget(
        name="full", width=384, depth=12, heads=6, mlp_ratio=4.0, steps=3000, batch_size=512, lr=5e-4,
        tokenizer_steps=2000, tokenizer_batch=256, cnn_steps=1000, train_subset=None,
        probe_train=None, probe_test=None, probe_epochs=90, sample_steps=100, fid_samples=10000,
    ),
}


def get_budget(name: str | Budget | None = None) -> Budget:
    """A :class:`Budget` by name; a Budget passes through; None reads ``$LDAE_BUDGET`` (default lecture)."""
    if isinstance(name, Budget):
        return name
    if name is None:
        name = os.environ.get(ENV_VAR) or DEFAULT
    key = str(name).strip().lower()
    if key not in BUDGETS:
        source = f" (from ${ENV_VAR})" if name == os.environ.get(ENV_VAR) else ""
        raise validate.BadValue(f"unknown budget {name!r}{source}; choose one of {tuple(BUDGETS)}")
    return BUDGETS[key]


def with_settings(budget: Budget, settings) -> Budget:
    """``budget`` with fields set from ``FIELD=VALUE`` strings (``--set steps=300 batch_size=256``), each
    value read as its field's type ("none" for a subset means the whole split). Errors name the setting
    and what is allowed."""
    if isinstance(settings, str):
        settings = [settings]
    changes = {}
    for item in settings:
        field, sep, text = str(item).partition("=")
        field, text = field.strip(), text.strip()
        if not sep or not field or not text:
            raise validate.BadValue(f"setting {item!r} must be FIELD=VALUE, e.g. steps=300")
        if field == "name" or field not in Budget.__dataclass_fields__:
            allowed = [f for f in Budget.__dataclass_fields__ if f != "name"]
            raise validate.BadValue(f"setting {item!r}: unknown budget field {field!r}; allowed: {allowed}")
        if field in _SUBSETS and text.lower() == "none":
            changes[field] = None
            continue
        kind = int if field in _INTEGERS or field in _SUBSETS else float
        try:
            changes[field] = kind(text)
        except ValueError:
            raise validate.BadType(f"setting {item!r}: {field} must be {'an int' if kind is int else 'a number'}"
                                   f"{' or none' if field in _SUBSETS else ''}, got {text!r}") from None
    return replace(budget, **changes)  # Budget checks the values themselves (ranges, divisibility)


def overrides(budget: Budget) -> dict:
    """The fields where ``budget`` differs from the preset it is named after: ``{}`` for a preset itself,
    ``{"steps": 1200}`` for ``dataclasses.replace(get_budget("lecture"), steps=1200)``. A budget whose name
    is no preset has no preset to differ from: ``{}``."""
    preset = BUDGETS.get(budget.name)
    if preset is None:
        return {}
    return {f: getattr(budget, f) for f in preset.__dataclass_fields__ if getattr(budget, f) != getattr(preset, f)}


def label(budget: Budget) -> str:
    """The budget's name and its overrides: ``lecture`` or ``lecture, steps=1200``."""
    return ", ".join([budget.name] + [f"{k}={v}" for k, v in overrides(budget).items()])


def slug(budget: Budget) -> str:
    """:func:`label` fit for a file name: ``lecture`` or ``lecture_steps1200``."""
    return "_".join([budget.name] + [f"{k}{v}" for k, v in overrides(budget).items()])


__all__ = ["Budget", "BUDGETS", "DEFAULT", "ENV_VAR", "get_budget", "label", "overrides", "slug", "with_settings"]
