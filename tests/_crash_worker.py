"""Run by tests/test_crash_safety.py: ``experiment.run`` of the DiT baseline on a tiny budget, the three
trainings it needs (the label-trained CNN, the VQGAN-style tokenizer, the denoiser) each checkpointing
every CKPT_EVERY steps. Right after the first periodic checkpoint of the training named on the command
line the process stands still, for the test to kill it there with SIGKILL:

    LDAE_RUNS=<folder> python -u tests/_crash_worker.py {cnn,tokenizers,denoisers}
"""

import dataclasses
import functools
import sys
import time
from pathlib import Path

import torch

from ldae_lite import budgets, checkpoint, experiment, supervised, tokenizers
from ldae_lite.recipes import STEPS
from ldae_lite.train import TrainConfig

BUDGET = dataclasses.replace(budgets.get_budget("smoke"), name="crash", steps=6, train_subset=256, probe_train=256,
                             probe_test=128, tokenizer_steps=6, cnn_steps=6, probe_epochs=3, width=32, depth=2,
                             heads=2)
RECIPE = STEPS["dit_baseline"].recipe  # label-trained CNN -> VQGAN-style tokenizer -> class-conditional DiT
DATASET = "digits"
CKPT_EVERY = 2
PHASES = ("cnn", "tokenizers", "denoisers")  # the folders of runs/ the three trainings write to


def checkpoint_often() -> None:
    """Every training of experiment.run checkpoints every CKPT_EVERY steps (not only about every minute)."""
    experiment.TrainConfig = functools.partial(TrainConfig, ckpt_every=CKPT_EVERY)
    supervised.train_cnn = functools.partial(supervised.train_cnn, ckpt_every=CKPT_EVERY)
    tokenizers.LearnedTokenizer.fit = functools.partialmethod(tokenizers.LearnedTokenizer.fit, ckpt_every=CKPT_EVERY)


def stand_still_after_first_checkpoint(phase: str) -> None:
    """After the first checkpoint (a file with a step) written under runs/<phase>/, sleep until killed."""
    write = checkpoint.atomic_save

    def atomic_save(obj, path):
        out = write(obj, path)
        if phase in Path(path).parts and "step" in obj:
            print(f"checkpoint of step {obj['step']} written: {path}", flush=True)
            time.sleep(600)
        return out

    checkpoint.atomic_save = atomic_save


if __name__ == "__main__":
    (phase,) = sys.argv[1:]
    assert phase in PHASES, f"phase {phase!r}; allowed: {PHASES}"
    torch.set_num_threads(1)
    checkpoint_often()
    stand_still_after_first_checkpoint(phase)
    experiment.run(RECIPE, BUDGET, DATASET, seed=0, progress=False)
    sys.exit(f"the {phase} training finished without a periodic checkpoint")
