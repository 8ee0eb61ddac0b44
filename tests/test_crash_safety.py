"""Crash safety end to end: experiment.run's three trainings (label-trained CNN, VQGAN-style tokenizer,
denoiser), each killed with SIGKILL right after a periodic checkpoint, resume to the very parameters and
probe accuracy of a run that was never stopped."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from ldae_lite import experiment

sys.path.insert(0, str(Path(__file__).parent))
import _crash_worker as worker  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.usefixtures("one_thread")  # the worker trains on one thread too: the same bits


def checkpoint_file(runs: Path, phase: str) -> Path | None:
    """The partial checkpoint a training of `phase` writes while it runs, once it exists."""
    pattern = "*/ckpt.pt" if phase == "denoisers" else "*.partial.pt"
    found = sorted((runs / phase).glob(pattern))
    return found[0] if found else None


def kill_after_first_checkpoint(runs: Path, phase: str) -> str:
    """Start the worker, wait for its first checkpoint of `phase`, SIGKILL it; returns its output."""
    env = {**os.environ, "LDAE_RUNS": str(runs), "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-u", str(ROOT / "tests" / "_crash_worker.py"), phase], cwd=ROOT,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 120
        while checkpoint_file(runs, phase) is None:
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"no {phase} checkpoint appeared:\n{proc.communicate()[0][-3000:]}")
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        out = proc.communicate(timeout=30)[0]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == -signal.SIGKILL, out[-3000:]
    assert torch.load(checkpoint_file(runs, phase), weights_only=True)["step"] == worker.CKPT_EVERY
    return out


def trained_state(runs: Path) -> dict:
    """Every trained parameter of the run under ``runs``: CNN, tokenizer and denoiser."""
    (cnn,) = (runs / "cnn").glob("*.pt")
    (tok,) = (runs / "tokenizers").glob("*.pt")
    (den,) = (runs / "denoisers").glob("*/ckpt.pt")
    return {"cnn": torch.load(cnn, weights_only=True)["state_dict"],
            "tokenizer": torch.load(tok, weights_only=True)["state_dict"],
            "denoiser": torch.load(den, weights_only=True)["model"]}


def test_sigkilled_trainings_resume_to_the_same_parameters_and_probe(tmp_path, monkeypatch, capsys):
    crashed, straight = tmp_path / "crashed", tmp_path / "straight"
    outputs = {phase: kill_after_first_checkpoint(crashed, phase) for phase in worker.PHASES}
    # each rerun resumed the training killed before it, from the checkpoint of step CKPT_EVERY
    assert f"supervised cnn: resuming from step {worker.CKPT_EVERY}" in outputs["tokenizers"]
    assert f"tokenizer vqgan: resuming from step {worker.CKPT_EVERY}" in outputs["denoisers"]

    monkeypatch.setenv("LDAE_RUNS", str(crashed))
    resumed = experiment.run(worker.RECIPE, worker.BUDGET, worker.DATASET, seed=0, progress=False)
    assert f"resuming from step {worker.CKPT_EVERY}" in capsys.readouterr().out
    monkeypatch.setenv("LDAE_RUNS", str(straight))
    reference = experiment.run(worker.RECIPE, worker.BUDGET, worker.DATASET, seed=0, progress=False)

    assert resumed.probe_accuracy == reference.probe_accuracy and resumed.final_loss == reference.final_loss
    got, want = trained_state(crashed), trained_state(straight)
    for part in want:
        for key, value in want[part].items():
            assert torch.equal(got[part][key], value), (part, key)
    assert not list(crashed.rglob("*.partial.pt"))  # deleted once the final files were written
