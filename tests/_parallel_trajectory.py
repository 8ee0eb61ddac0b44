"""A parallel trajectory for test_lifeline.py to kill: the tiny budget with ``argv[1]`` training steps,
digits, two workers (each prints its pid when it starts), under ``$LDAE_RUNS``."""

import dataclasses
import sys

from _tiny import TINY

from ldae_lite import trajectory
from ldae_lite.recipes import STEPS

if __name__ == "__main__":  # a spawned worker imports this file too: only the parent runs the trajectory
    budget = dataclasses.replace(TINY, steps=int(sys.argv[1]))
    trajectory.run(budget, "digits", seeds=(0, 1), steps=(STEPS["predict_image"],), generate=False,
                   progress=False, workers=2)
