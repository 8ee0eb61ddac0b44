#!/usr/bin/env bash
# The full budget on one GPU machine without network access, inside about 9 minutes:
#   1. find a Python that has torch (and CUDA), and the packages ldae_lite needs;
#   2. check that Fashion-MNIST is there (data/FashionMNIST/raw, carried with the tree; scripts/stage_data.sh);
#   3. the throughput benchmark on cuda: ours vs timm's ViT, img/s and MFU (and models.py's kernel choices);
#   4. python -m ldae_lite trajectory --budget full --seeds 0 --out results/gpu (what the time allows);
#   5. a summary (the trajectory table, img/s and MFU of every finished run) and, where $OUT is set,
#      a copy of the results into $OUT so they come back from the machine.
#
#   bash scripts/gpu_full.sh                       # from the repository root of a copy of the tree
#   GPU_FULL_SECONDS=300 TRAJ_ARGS="--no-generate --steps patch_pca predict_image" bash scripts/gpu_full.sh
#
# Knobs (environment): GPU_FULL_SECONDS total wall budget (default 540), BENCH_SECONDS the benchmark's
# cap (150), BENCH_ARGS its arguments (--seconds 1), TRAJ_ARGS extra trajectory arguments, PYTHON the
# interpreter, WHEELS a folder of wheels installed offline into .venv-gpu when no interpreter has torch
# (default .whl). For a dry run on a CPU: GPU_FULL_DEVICE=cpu BUDGET=smoke LDAE_RUNS=/tmp/runs
# GPU_FULL_RESULTS=/tmp/gpu BENCH_JSON=/tmp/gpu/bench.json BENCH_ARGS="--configs smoke --seconds 0.2".
# Every step runs under `timeout`; the trajectory gets SIGINT first, so the training loop writes its
# checkpoint and a second run on the same (warm) machine resumes instead of starting over.
set -uo pipefail  # no -e: a step that times out must still leave the summary and the copy-out to run
cd "$(dirname "$0")/.." || exit 1
ROOT=$(pwd)
TOTAL=${GPU_FULL_SECONDS:-540}
BENCH_SECONDS=${BENCH_SECONDS:-150}
RESERVE=45  # seconds kept for the summary and the copy-out
DEVICE=${GPU_FULL_DEVICE:-cuda}
BUDGET=${BUDGET:-full}
RESULTS=${GPU_FULL_RESULTS:-$ROOT/results/gpu}
BENCH_JSON=${BENCH_JSON:-$ROOT/benchmarks/results/throughput_${DEVICE%%:*}.json}
mkdir -p "$RESULTS"
LOG=$RESULTS/gpu_full.log
: > "$LOG"
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"  # the package from this tree, without pip install
export RESULTS BENCH_JSON BUDGET PYTHONUNBUFFERED=1 LDAE_DATA="$ROOT/data" LDAE_DEVICE="$DEVICE" TQDM_MININTERVAL=5
say() { echo "[gpu_full $(date +%H:%M:%S), ${SECONDS}s] $*" | tee -a "$LOG"; }
left() { echo $(( TOTAL - SECONDS - RESERVE )); }

# -- 1. Python with torch -----------------------------------------------------------------------------
PY=""
for cand in ${PYTHON:-} "$ROOT/.venv/bin/python" "$ROOT/.venv-gpu/bin/python" python3 python; do
    if { [ -x "$cand" ] || command -v "$cand" >/dev/null 2>&1; } && "$cand" -c "import torch" 2>/dev/null; then
        PY=$cand; break
    fi
done
if [ -z "$PY" ] && ls "${WHEELS:-.whl}"/torch-*.whl >/dev/null 2>&1; then
    say "no interpreter has torch: installing the wheels in ${WHEELS:-.whl} into .venv-gpu (offline)"
    python3 -m venv --system-site-packages .venv-gpu \
        && .venv-gpu/bin/pip install -q --no-index --find-links "${WHEELS:-.whl}" "${WHEELS:-.whl}"/*.whl \
        && PY=$ROOT/.venv-gpu/bin/python
fi
if [ -z "$PY" ]; then
    say "ERROR: torch is missing: none of \$PYTHON, .venv/bin/python, .venv-gpu/bin/python, python3, python"
    say "       can 'import torch', and without network it cannot be installed here. Use a machine whose"
    say "       python3 has torch, or put torch's wheels (and its dependencies) in .whl/ and carry it."
    exit 3
fi
say "python: $PY"
"$PY" - <<'PY' 2>&1 | tee -a "$LOG"
import importlib.util, os, sys
import torch
print(f"torch {torch.__version__}, CUDA available: {torch.cuda.is_available()}, "
      f"{torch.cuda.get_device_name() if torch.cuda.is_available() else 'no GPU'}")
missing = [m for m in ("numpy", "sklearn", "skimage", "matplotlib", "tqdm") if importlib.util.find_spec(m) is None]
print("timm:", "present" if importlib.util.find_spec("timm") else "MISSING (the benchmark times ours alone)")
if missing:
    print("ERROR: ldae_lite needs these packages, missing here:", ", ".join(missing))
    sys.exit(3)
if os.environ["LDAE_DEVICE"].startswith("cuda") and not torch.cuda.is_available():
    print("ERROR: torch sees no CUDA device; this script is for a GPU machine (GPU_FULL_DEVICE=cpu: a dry run)")
    sys.exit(4)
PY
status=${PIPESTATUS[0]}
[ "$status" = 0 ] || { say "environment check failed (exit $status)"; exit "$status"; }
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader \
    | tee -a "$LOG"

# -- 2. data ------------------------------------------------------------------------------------------
# ldae_lite.data looks in $LDAE_DATA/FashionMNIST/raw (carried with the tree), then in the Debian package.
timeout 60 "$PY" -c "from ldae_lite import data; data.load('fashion-mnist', 'train', download=False)" 2>&1 \
    | tee -a "$LOG"
if [ "${PIPESTATUS[0]}" != 0 ]; then
    say "ERROR: Fashion-MNIST not found. Run scripts/stage_data.sh where the data is, and send"
    say "       data/FashionMNIST with the tree (device tool: carry=[\"data/FashionMNIST\"])."
    exit 5
fi

# -- 3. benchmark -------------------------------------------------------------------------------------
say "benchmark (cap ${BENCH_SECONDS}s)"
# shellcheck disable=SC2086  # BENCH_ARGS is a list of words on purpose
timeout -k 10 "$BENCH_SECONDS" "$PY" benchmarks/bench_throughput.py --device "$DEVICE" --out "$BENCH_JSON" \
    ${BENCH_ARGS:---seconds 1} 2>&1 | tee -a "$LOG"
say "benchmark exit ${PIPESTATUS[0]} (0: done, 124: stopped at its cap)"

# -- 4. trajectory ------------------------------------------------------------------------------------
budget=$(left)
if [ "$budget" -gt 30 ]; then
    say "trajectory --budget $BUDGET --seeds 0 --out $RESULTS ${TRAJ_ARGS:-} (cap ${budget}s)"
    # shellcheck disable=SC2086  # TRAJ_ARGS is a list of words on purpose
    timeout -s INT -k 30 "$budget" "$PY" -m ldae_lite trajectory --budget "$BUDGET" --seeds 0 --out "$RESULTS" \
        ${TRAJ_ARGS:-} 2>&1 | tee -a "$LOG"
    code=${PIPESTATUS[0]}
    say "trajectory exit $code$([ "$code" = 124 ] && echo ': stopped at the time limit; rerun on the warm machine to resume')"
else
    say "no time left for the trajectory (${budget}s)"
fi

# -- 5. summary and copy-out --------------------------------------------------------------------------
timeout 60 "$PY" - <<'PY' 2>&1 | tee -a "$LOG"
"""Print the benchmark table, the trajectory table (if it finished) and img/s + MFU of every full run."""
import glob, json, os
from pathlib import Path

from ldae_lite.cache import write_json
from ldae_lite.models import DiT
from ldae_lite import budgets

bench_path = Path(os.environ["BENCH_JSON"])
results = Path(os.environ["RESULTS"])
peak = None
if bench_path.exists():
    bench = json.loads(bench_path.read_text())
    # MFU only against a peak that held still during the benchmark (device.peak_summary)
    peak = bench["meta"]["peak_flops"] if bench["meta"].get("peak_steady", True) else None
    print(f"\n## Throughput ({bench['meta']['device']}, torch {bench['meta']['torch']})\n")
    print(bench["markdown"])
for md in sorted(glob.glob(str(results / "trajectory_*.md"))):
    print(f"\n## {md}\n\n" + Path(md).read_text())
b = budgets.get_budget(os.environ["BUDGET"])
# FLOPs of the budget's DiT on 16 tokens of dimension 64 (pixel / projected-back inputs); latent-input
# steps differ only in the input and output Linear, a fraction of a percent.
flops = DiT(64, 16, width=b.width, depth=b.depth, heads=b.heads, mlp_ratio=b.mlp_ratio).flops_per_image()
runs = []
for path in glob.glob(os.path.join(os.environ.get("LDAE_RUNS", "runs"), "denoisers", f"*-{b.name}-*", "result.json")):
    r = json.loads(Path(path).read_text())
    runs.append({k: r.get(k) for k in ("created", "recipe", "probe_accuracy", "knn_accuracy", "frechet",
                                        "train_seconds", "probe_seconds", "images_per_s", "device", "final_loss")})
runs.sort(key=lambda r: r["created"] or "")
print(f"\n## Finished {b.name}-budget runs ({len(runs)}); MFU = img/s x {flops / 1e9:.2f} GFLOP / measured peak\n")
print("| tokenizer | d | target | probe % | kNN % | FD | train s | img/s | MFU |\n|---|---|---|---|---|---|---|---|---|")
for r in runs:
    rec, mfu = r["recipe"], (f"{100 * r['images_per_s'] * flops / peak:.1f}%" if peak else "n/a")
    fd = "" if r["frechet"] is None else f"{r['frechet']:.1f}"
    print(f"| {rec.get('tokenizer')} | {rec.get('latent_dim')} | {rec.get('target')} | {r['probe_accuracy']:.2f} | "
          f"{r['knn_accuracy']:.2f} | {fd} | {r['train_seconds']:.0f} | {r['images_per_s']:.0f} | {mfu} |")
write_json(results / "runs_summary.json", dict(peak_flops=peak, flops_per_image=flops, runs=runs))
PY
if [ -n "${OUT:-}" ] && [ -d "${OUT:-}" ]; then
    cp "$RESULTS"/*.json "$RESULTS"/*.md "$RESULTS"/*.png "$BENCH_JSON" "${BENCH_JSON%.json}.md" \
        "$(dirname "$BENCH_JSON")/kernels_${DEVICE%%:*}.md" "$OUT"/ 2>/dev/null
    cp "$LOG" "$OUT"/ 2>/dev/null
    say "copied to \$OUT: $(ls "$OUT" | tr '\n' ' ')"
fi
say "done in ${SECONDS}s"
