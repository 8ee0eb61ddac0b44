"""The budget search: which training makes the paper's effects show beyond seed noise, and what it costs.

Each candidate is the lecture budget with a few fields overridden. For each, the 3-seed trajectory report
is read from ``results/`` (or, with ``--run``, trained and written to ``results/lecture/``), and the
pixel-space DAE is probed over the same seeds; ``ldae_lite/search.py`` scores them and the table goes to
``results/search/budget_search.json`` and ``.md`` with the command, commit and time.

    .venv/bin/python scripts/budget_search.py                # the table from the shipped reports (seconds)
    .venv/bin/python scripts/budget_search.py --run          # train what is missing (hours on 2 CPU cores;
                                                             #  resumes from the run cache)
    make search                                              # the same as --run

A candidate's runs share the run cache with ``make trajectory``: a report trained by either serves both.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time

from ldae_lite import budgets, data, experiment, live, recipes, report, search, trajectory
from ldae_lite.cache import RESULTS_DIR, git_commit, read_record, write_json, write_text
from ldae_lite.device import describe, get_device

# (name, overrides of the lecture preset), cheapest first. The lecture preset (no overrides) is the winner
# of the search so far; the others are the budgets it was chosen against.
CANDIDATES = (
    ("300 steps of 256 (the previous lecture preset)", {"steps": 300, "batch_size": 256}),
    ("1200 steps of 128 (the lecture preset)", {}),
    ("1200 steps of 256", {"batch_size": 256}),
)
OUT = RESULTS_DIR / "search"
REPORTS = RESULTS_DIR / "lecture"  # where --run writes each candidate's trajectory report
SCHEMA = {"meta": {"dataset": str, "seeds": [int], "commit": str, "created": str, "command": str},
          "rows": [{"candidate": str, "overrides": dict, "pixel_dae?": [float]}]}


def candidate_budget(overrides: dict) -> budgets.Budget:
    return dataclasses.replace(budgets.get_budget("lecture"), **overrides)


def pixel_dae(budget, dataset: str, seeds, run: bool, before: dict) -> list[float]:
    """The pixel-space DAE's probes over the seeds: trained when ``run``, read from the run cache when there,
    else what the previous table recorded for this candidate (a fresh clone has no run cache)."""
    if run or all(experiment.is_done(recipes.PIXEL_DAE, budget, dataset, s) for s in seeds):
        return [experiment.run(recipes.PIXEL_DAE, budget, dataset, s, progress=False).probe_accuracy for s in seeds]
    return list(before.get("pixel_dae") or [])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dataset", default=None, help=f"default: ${data.ENV_VAR} or {data.DEFAULT}")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--run", action="store_true", help="train the candidates' missing runs (hours)")
    parser.add_argument("--workers", type=int, default=None, help="runs at a time (default: 2 on a CPU)")
    parser.add_argument("--only", nargs="+", default=None, metavar="N",
                        help="with --run: train only these candidates (1-based, in the table's order)")
    args = parser.parse_args(argv)
    dataset = data.dataset_name(args.dataset)
    previous = read_record(OUT / "budget_search.json", SCHEMA, "starting a new table") or {"rows": []}
    before = {r["candidate"]: r for r in previous["rows"]}
    start, rows = time.perf_counter(), []
    for i, (name, overrides) in enumerate(CANDIDATES, 1):
        budget = candidate_budget(overrides)
        found = live.reference_report(dataset, budget, [RESULTS_DIR])
        train = args.run and (args.only is None or str(i) in args.only)
        if train and (found is None or found[1]["meta"]["seeds"] != list(args.seeds)):
            print(f"[{i}/{len(CANDIDATES)}] {name}: training the trajectory, seeds {args.seeds}", flush=True)
            rep = trajectory.run(budget, dataset, seeds=args.seeds, workers=args.workers)
            found = (report.save(rep, REPORTS)["json"], rep)
        pixels = pixel_dae(budget, dataset, args.seeds, train, before.get(name, {})) if found else []
        source = str(found[0].relative_to(RESULTS_DIR.parent)) if found else ""
        row = search.candidate_row(name, found[1] if found else None, pixels, source)
        rows.append({**row, "overrides": overrides, "pixel_dae": pixels})
        print(f"[{i}/{len(CANDIDATES)}] {name}: {row['signed_beyond_noise']} signed changes beyond noise", flush=True)
    meta = dict(dataset=dataset, seeds=list(args.seeds), device=describe(get_device(verbose=False)),
                commit=git_commit(), created=time.strftime("%Y-%m-%d %H:%M:%S"),
                wall_seconds=time.perf_counter() - start,
                command="python scripts/budget_search.py " + " ".join(sys.argv[1:] if argv is None else argv))
    OUT.mkdir(parents=True, exist_ok=True)
    write_json(OUT / "budget_search.json", {"meta": meta, "rows": rows})
    text = (f"Commit `{meta['commit']}`, {meta['created']}, {meta['device']}; `{meta['command'].strip()}`.\n\n"
            + search.to_markdown(rows, dataset)
            + "\nThe commit column names the code that made each report; results/README.md says which reports predate "
            "the current code (one latent scale per coordinate for every tokenizer).\n")
    write_text(OUT / "budget_search.md", text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
