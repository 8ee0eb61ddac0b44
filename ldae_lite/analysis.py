"""Looking inside a trained denoiser: denoised examples (Fig. 8), the probe at other t and depths (§4),
and the whole trajectory read back against the paper.

Everything here reuses the runs of :mod:`ldae_lite.experiment`: the model comes from
``experiment.load_model`` (trained first only if it is not cached), the probe is the one ``run()`` uses
(``linear_probe`` on ``encoder_features``), and the small tables computed here are stored as JSON in
the run's own folder (``runs/denoisers/<run>/analysis.json``), so a notebook re-opened later shows them
without recomputing.
"""

from __future__ import annotations

from pathlib import Path

import torch

from . import budgets as budgets_mod
from . import device as device_mod
from . import experiment, noise
from . import probe as probe_mod
from . import report as report_mod
from .patches import unpatchify
from .recipes import TRAJECTORY, Recipe

ANALYSIS_VERSION = 2  # bump when a change here alters a cached number (2: the lr-choosing probe)
FIXED_TS = (0, 10, 20, 40, 80)  # the paper's fixed-t table (§4, PAPER.md "Fixed-t results")
RESULTS_DIR = Path(__file__).resolve().parents[1] / "results"  # reference reports shipped with the repo
BUDGET_ORDER = ("full", "lecture", "smoke")


# --------------------------------------------------------------------------------------------------
# where a run lives, and whether it is there
# --------------------------------------------------------------------------------------------------
run_folder = experiment.run_folder  # where experiment.run keeps a run


def is_cached(recipe: Recipe, budget=None, dataset: str = "fashion-mnist", seed: int = 0,
              generate: bool = False) -> bool:
    """Whether ``experiment.run`` would answer from its cache (with a Frechet distance, if ``generate``)."""
    result = experiment.read_json(run_folder(recipe, budget, dataset, seed) / "result.json")
    return (result is not None and result.get("probe_version", 1) == experiment.PROBE_VERSION
            and (not generate or result.get("frechet") is not None))


# --------------------------------------------------------------------------------------------------
# Fig. 8: clean image -> noise in the latent -> what the network sees -> what it predicts
# --------------------------------------------------------------------------------------------------
@torch.no_grad()
def denoise_examples(tokenizer, objective, model, images: torch.Tensor, sigmas, seed: int = 0) -> dict:
    """Denoise ``images`` (N, C, H, W) at each noise level in ``sigmas``, everything as images.

    For each sigma the model runs at the step t whose sigma_t is closest (the network is conditioned on
    t). One noise draw eps (seeded) is scaled to every level, so the columns differ only in sigma.
    Returns dict(clean (N, C, H, W); projected (N, C, H, W): the clean input as the network sees it at
    sigma = 0; noisy (S, N, C, H, W): the input as the network sees it, i.e. the decoded noisy latent;
    denoised (S, N, C, H, W): the prediction as an image, whatever the output space; sigmas, ts: the
    sigma_t and t actually used). All on the CPU, clamped to [-1, 1].
    """
    if objective.mask_ratio > 0:
        raise ValueError("denoise_examples needs a noise objective; this one masks patches (mask_ratio > 0)")
    if images.ndim != 4:
        raise ValueError(f"images must be (N, C, H, W), got {tuple(images.shape)}")
    model.eval()
    dev = next(model.parameters()).device
    sched, p, c = objective.schedule, objective.p, objective.c
    x0 = images.to(dev).float()
    z0 = tokenizer.encode(x0).float()  # (N, L, d)
    gen = torch.Generator().manual_seed(seed)
    eps = torch.randn(z0.shape, generator=gen).to(dev)  # (N, L, d), drawn on the CPU: the same on any device
    out = dict(clean=x0.cpu(), projected=tokenizer.decode(z0).clamp(-1, 1).cpu(), noisy=[], denoised=[],
               sigmas=[], ts=[])
    for sigma in sigmas:
        t = torch.full((len(x0),), sched.t_for_sigma(float(sigma)), dtype=torch.long, device=dev)  # (N,)
        # 1. eq. (1) in the latent: z_t = gamma_t z_0 + sigma_t eps
        zt = sched.add_noise(z0, t, eps)  # (N, L, d)
        # 2. what the network sees: z_t itself, or its inverse PCA x_t = V^T z_t (Sec. 4.3)
        inp = objective.net_input(zt)  # (N, L, in_dim)
        noisy = unpatchify(inp, p, c) if objective.input_space == "image" else tokenizer.decode(zt)
        # 3. its prediction, as an image: pixels directly, or the latent estimate z_0 decoded
        pred = model(inp, t.float(), None).float()  # (N, L, out_dim)
        if objective.output_space == "image":
            denoised = unpatchify(objective.pixels(pred), p, c)
        else:
            denoised = tokenizer.decode(objective.predict_z0(pred, zt, t))
        out["noisy"].append(noisy.clamp(-1, 1).cpu())
        out["denoised"].append(denoised.clamp(-1, 1).cpu())
        out["sigmas"].append(float(sched.sigma(t[:1])))
        out["ts"].append(int(t[0]))
    out["noisy"], out["denoised"] = torch.stack(out["noisy"]), torch.stack(out["denoised"])  # (S, N, C, H, W)
    return out


def plot_denoising(examples: dict, max_images: int = 4):
    """Fig. 8-style grid: one row per image; clean, then (noisy, denoised) per sigma. Returns the figure."""
    import matplotlib.pyplot as plt

    n = min(max_images, len(examples["clean"]))
    s = len(examples["sigmas"])
    fig, axes = plt.subplots(n, 1 + 2 * s, figsize=(1.3 * (1 + 2 * s), 1.4 * n + 0.4), squeeze=False)
    for i in range(n):
        cells = [("clean", examples["clean"][i])]
        for j, sigma in enumerate(examples["sigmas"]):
            cells += [(f"noisy\nσ={sigma:.2f}", examples["noisy"][j, i]),
                      (f"denoised\nσ={sigma:.2f}", examples["denoised"][j, i])]
        for ax, (title, img) in zip(axes[i], cells):
            img = img.float().add(1).div(2).clamp(0, 1)
            ax.imshow((img[0] if img.shape[0] == 1 else img.permute(1, 2, 0)).numpy(), cmap="gray", vmin=0, vmax=1)
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_title(title, fontsize=8)
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------------------------------
# the probe at other t and other depths, with run()'s protocol, cached next to the run
# --------------------------------------------------------------------------------------------------
def _cache_path(recipe, budget, dataset, seed) -> Path:
    return run_folder(recipe, budget, dataset, seed) / "analysis.json"


def _read_cache(path: Path) -> dict:
    cache = experiment.read_json(path)
    return cache if cache is not None and cache.get("version") == ANALYSIS_VERSION else {"version": ANALYSIS_VERSION}


def _cached_probes(recipe, budget, dataset, seed, section: str, keys, compute, progress: bool) -> dict[int, float]:
    """{key: accuracy} for ``keys``, reading section of analysis.json and computing only what is missing."""
    budget = budgets_mod.get_budget(budget)
    path = _cache_path(recipe, budget, dataset, seed)
    cache = _read_cache(path)
    have = cache.get(section, {})
    missing = [k for k in keys if str(k) not in have]
    if missing:
        have.update({str(k): acc for k, acc in compute(missing).items()})
        cache[section] = have
        experiment.write_json(path, cache)
    elif progress:
        print(f"reusing cached probes ({section}) from {path.parent.name}/{path.name}")
    return {k: float(have[str(k)]) for k in keys}


def _probe_data(recipe, budget, dataset, seed, device):
    """(objective, model, train rows, train labels, test rows, test labels) exactly as run() probes them."""
    _, obj, model = experiment.load_model(recipe, budget, dataset, seed, device)
    images, labels = experiment.load_split(dataset, "train", budget, recipe.resolution_scale)
    test_images, test_labels = experiment.load_split(dataset, "test", budget, recipe.resolution_scale)
    n_train = budget.probe_train or len(images)
    dev = next(model.parameters()).device
    rows = obj.prepare(images[:n_train].to(dev))
    test_rows = obj.prepare(test_images.to(dev))
    return obj, model, rows, labels[:n_train].cpu(), test_rows, test_labels


def _noised(obj, rows: torch.Tensor, t: int, gen: torch.Generator) -> torch.Tensor:
    """rows with the latent part replaced by z_t (eq. 1, the objective's own schedule); image part kept."""
    z0, x0 = obj.split(rows)
    eps = torch.randn(z0.shape, generator=gen).to(z0.device)
    zt = obj.schedule.add_noise(z0, torch.full((len(z0),), t, dtype=torch.long, device=z0.device), eps)
    return torch.cat([zt, x0], -1) if x0 is not None else zt


def probe_at_t(recipe: Recipe, budget=None, dataset: str = "fashion-mnist", seed: int = 0, ts=FIXED_TS,
               noisy: bool = False, *, progress: bool = True, device=None) -> dict[int, float]:
    """{t: linear-probe accuracy %} of the trained run, with the encoder conditioned on each fixed t (§4).

    noisy=False: clean input (run()'s probe, at other t); noisy=True: train and test inputs noised at
    that t with the objective's schedule (noise seeded by ``seed`` and t).
    """
    budget = budgets_mod.get_budget(budget)
    ts = tuple(int(t) for t in ts)
    bad = [t for t in ts if not 0 <= t < noise.T]
    if bad:
        raise ValueError(f"ts={bad} must lie in [0, {noise.T}) (the schedule's steps)")

    def compute(missing):
        dev = device or device_mod.get_device(verbose=False)
        obj, model, rows, y, test_rows, test_y = _probe_data(recipe, budget, dataset, seed, dev)
        accs = {}
        for t in missing:
            train_in, test_in = rows, test_rows
            if noisy:
                gen = torch.Generator().manual_seed(1_000_003 * seed + t)
                train_in, test_in = _noised(obj, rows, t, gen), _noised(obj, test_rows, t, gen)
            f_train = experiment.encoder_features(model, obj, train_in, t)
            f_test = experiment.encoder_features(model, obj, test_in, t)
            accs[t] = probe_mod.linear_probe(f_train, y, f_test, test_y, epochs=budget.probe_epochs,
                                             verbose=False).accuracy
            if progress:
                print(f"t = {t:3d}, {'noisy' if noisy else 'clean'} input: linear probe {accs[t]:.2f}%")
        return accs

    return _cached_probes(recipe, budget, dataset, seed, "noisy_t" if noisy else "clean_t", ts, compute, progress)


def probe_by_depth(recipe: Recipe, budget=None, dataset: str = "fashion-mnist", seed: int = 0, depths=None, *,
                   progress: bool = True, device=None) -> dict[int, float]:
    """{k: linear-probe accuracy %} with the features taken after block k (0 = the patch embedding alone)
    instead of after the encoder's depth // 2 blocks: the paper's encoder/decoder split table (§4)."""
    budget = budgets_mod.get_budget(budget)
    depths = tuple(range(budget.depth + 1)) if depths is None else tuple(int(k) for k in depths)
    bad = [k for k in depths if not 0 <= k <= budget.depth]
    if bad:
        raise ValueError(f"depths={bad} must lie in [0, {budget.depth}] (the budget's model has {budget.depth} "
                         "blocks)")

    def compute(missing):
        dev = device or device_mod.get_device(verbose=False)
        obj, model, rows, y, test_rows, test_y = _probe_data(recipe, budget, dataset, seed, dev)
        t = experiment.probe_t(recipe, obj.schedule)
        accs = {}
        for k in missing:
            f_train = experiment.encoder_features(model, obj, rows, t, depth=k)
            f_test = experiment.encoder_features(model, obj, test_rows, t, depth=k)
            accs[k] = probe_mod.linear_probe(f_train, y, f_test, test_y, epochs=budget.probe_epochs,
                                             verbose=False).accuracy
            if progress:
                print(f"features after block {k} of {budget.depth}: linear probe {accs[k]:.2f}%")
        return accs

    return _cached_probes(recipe, budget, dataset, seed, "depth", depths, compute, progress)


# --------------------------------------------------------------------------------------------------
# §4.1: how much does a class-conditional denoiser lean on its label?
# --------------------------------------------------------------------------------------------------
LABEL_TS = (100, 300, 500, 700, 900)


def between_class_share(z0: torch.Tensor, labels: torch.Tensor) -> float:
    """Share (%) of the variance of clean latents z0 (N, ...) that the class means explain.

    When the noisy input says nothing (t -> T), the best estimate of z0 is the mean of the data, and with
    the label, the mean of its class: the label then removes exactly this share of the squared error."""
    if len(z0) != len(labels) or len(z0) < 2:
        raise ValueError(f"z0 has {len(z0)} rows and labels {len(labels)}; expected the same number, >= 2")
    z = z0.reshape(len(z0), -1).double()
    total = (z - z.mean(0)).pow(2).sum()
    within = sum((z[labels == c] - z[labels == c].mean(0)).pow(2).sum() for c in labels.unique())
    return float(100 * (1 - within / total))


def label_use(recipe: Recipe, budget=None, dataset: str = "fashion-mnist", seed: int = 0, ts=LABEL_TS,
              n: int = 2000, *, device=None) -> dict:
    """The trained class-conditional run's denoising error on n test images at each t, given the true
    label, the null label (what the probe feeds it) and a wrong label, with the same noise for all three.

    Returns dict(t, true, null, wrong: lists of mean squared errors (the training loss before lambda_t),
    gain: the % of the null-label error that the true label removes, 100 (1 - true / null), and
    pure_noise: :func:`between_class_share` of the clean latents, what the label is worth to the best
    denoiser when its input says nothing; at intermediate t it can be worth more or less).
    At a fixed t the error of every target (noise, clean latent) is the same multiple of the clean-latent
    error, so gain reads the same whatever the recipe predicts. A gain near 0 means the network has not
    learned to use its label: it then cannot leave class information to the label, which is the paper's
    explanation of why removing class conditioning helps the probe (§4.1).
    """
    if not recipe.class_cond:
        raise ValueError("label_use needs a class-conditional recipe (class_cond=True); this one has no label input")
    if recipe.mask_ratio > 0:
        raise ValueError(f"label_use measures denoising; mask_ratio={recipe.mask_ratio} masks instead")
    ts = tuple(int(t) for t in ts)
    bad = [t for t in ts if not 0 <= t < noise.T]
    if bad:
        raise ValueError(f"ts={bad} must lie in [0, {noise.T}) (the schedule's steps)")
    if n < 2:
        raise ValueError(f"n={n} must be >= 2")
    budget = budgets_mod.get_budget(budget)
    dev = device or device_mod.get_device(verbose=False)
    _, obj, model = experiment.load_model(recipe, budget, dataset, seed, dev)  # trains it if not cached
    with torch.no_grad():
        return _label_use(obj, model, dataset, budget, recipe, seed, ts, n, dev)


def _label_use(obj, model, dataset, budget, recipe, seed, ts, n, dev) -> dict:
    images, labels = experiment.load_split(dataset, "test", budget, recipe.resolution_scale)
    rows, y = obj.prepare(images[:n].to(dev)), labels[:n].to(dev)
    gen = torch.Generator().manual_seed(seed)
    k = experiment.NUM_CLASSES
    wrong = (y + torch.randint(1, k, y.shape, generator=gen).to(dev)) % k  # never the true class
    null = torch.full_like(y, k)
    z0, _ = obj.split(rows)
    out = dict(t=list(ts), true=[], null=[], wrong=[], gain=[], pure_noise=between_class_share(z0.cpu(), y.cpu()))
    for t in ts:
        eps = torch.randn(z0.shape, generator=gen).to(dev)
        steps = torch.full((len(y),), t, dtype=torch.long, device=dev)
        for name, lab in (("true", y), ("null", null), ("wrong", wrong)):
            errs = []
            for i in range(0, len(y), 500):
                with device_mod.autocast(dev):
                    errs.append(obj.error(model, rows[i:i + 500], steps[i:i + 500], eps[i:i + 500], lab[i:i + 500]))
            out[name].append(float(torch.cat(errs).float().mean()))
        out["gain"].append(100 * (1 - out["true"][-1] / out["null"][-1]))
    return out


def plot_label_use(use: dict, ax=None):
    """Bars per t: the share of the null-label error that the true label removes (a wrong one: adds, so
    below 0), beside a line at what the label is worth at pure noise (the class means' share of the variance)."""
    import matplotlib.pyplot as plt

    ax = ax or plt.gca()
    ts = use["t"]
    x = torch.arange(len(ts)).float()
    wrong = [100 * (1 - w / m) for w, m in zip(use["wrong"], use["null"])]
    ax.bar(x - 0.2, use["gain"], 0.4, label="true label")
    ax.bar(x + 0.2, wrong, 0.4, label="wrong label")
    ax.axhline(use["pure_noise"], color="k", ls="--", lw=1,
               label=f"the best denoiser at pure noise: {use['pure_noise']:.0f}%")
    ax.axhline(0, color="k", lw=0.5)
    ax.set_xticks(x.tolist(), [str(t) for t in ts])
    ax.set_xlabel("noise step t")
    ax.set_ylabel("error removed vs the null label, %")
    ax.legend()
    return ax


def reference_levers(group: str, budget: str = "lecture", folder=None):
    """The rows of one group of the shipped levers table (``scripts/levers.py`` writes
    ``results/<budget>/levers.json``), so that a lecture can show them without training.

    Returns (meta, rows): meta has the command, commit, device and time that made the table; each row has
    dataset, what, accuracy, knn, train_seconds and note. None when the file is absent."""
    path = Path(folder) / "levers.json" if folder is not None else RESULTS_DIR / budget / "levers.json"
    table = experiment.read_json(path)
    if table is None:
        return None
    groups = list(dict.fromkeys(r["group"] for r in table["rows"]))
    if group not in groups:
        raise ValueError(f"group={group!r} is not in {path}; its groups are {groups}")
    return table["meta"], [r for r in table["rows"] if r["group"] == group]


def levers_markdown(meta: dict, rows: list[dict]) -> str:
    """A levers group as markdown: where it comes from, then dataset / what / probe / note, then the changes
    measured over seeds in the rows' groups (:func:`levers_changes`)."""
    source = (f"Budget `{meta['budget']}`, {meta['device']}, commit `{meta['commit']}`, {meta['created']}; "
              f"`{meta['command'].strip()}`.")
    table = markdown_table(["dataset", "what", "linear probe %", "note"],
                           [[r["dataset"], r["what"], r["accuracy"], r["note"]] for r in rows])
    return source + "\n\n" + table + "\n" + levers_changes(meta, {r["group"] for r in rows})


def levers_changes(meta: dict, groups=None) -> str:
    """The levers table's changes (``meta["changes"]``: a step and the step after it, run over the same seeds)
    as Markdown bullets: mean ± std of the per-seed differences, and within or beyond noise
    (:func:`report.change_summary`). groups: only the changes of these groups (None: all); "" if none."""
    changes = [c for c in meta.get("changes", []) if groups is None or c.get("group") in groups]
    if not changes:
        return ""
    return "Changes (a step minus the step before it):\n" + "".join(
        f"- {c['change']}, {c['dataset']}, {c['training']}: {report_mod.change_summary(c['before'], c['after'])}\n"
        for c in changes)


# --------------------------------------------------------------------------------------------------
# the whole trajectory: which steps to run, reports shipped with the repository, reading them back
# --------------------------------------------------------------------------------------------------
STAGES = (("Stage 1 (Tab. 1): reorient the DDM", "dit_baseline", "linear_gamma2"),
          ("Stage 2 (Tab. 2): deconstruct the tokenizer", "linear_gamma2", "patch_pca"),
          ("Stage 3 (Tab. 3): toward a classical DAE", "patch_pca", "predict_image"))


def steps_to_run(budget=None, dataset: str = "fashion-mnist", seeds=(0,), run_all: bool = False,
                 always=("image_output", "predict_image")):
    """The trajectory steps to put in a live report: all of them when ``run_all``; otherwise those already
    cached for every seed, plus ``always`` (cheap steps), in trajectory order."""
    if run_all:
        return TRAJECTORY
    return tuple(s for s in TRAJECTORY
                 if s.key in always or all(is_cached(s.recipe, budget, dataset, seed) for seed in seeds))


def find_reports(dataset: str = "fashion-mnist", folders=None) -> list[tuple[Path, dict]]:
    """Trajectory reports (``python -m ldae_lite trajectory --out ...``) found for ``dataset``.

    folders: where to look, recursively; default the repository's ``results/`` (reference results shipped
    with it) and ``runs/trajectory`` (what ``make trajectory`` wrote here). Sorted full, lecture, smoke;
    within a budget, the preset itself before a report whose budget overrides a field (``--train-steps``).
    """
    folders = [RESULTS_DIR, experiment.runs_dir() / "trajectory"] if folders is None else folders
    found = []
    for folder in map(Path, folders):
        for path in sorted(folder.rglob(f"trajectory_{dataset}_*.json")) if folder.is_dir() else []:
            rep = experiment.read_json(path)
            if isinstance(rep, dict) and {"meta", "steps", "raw_pixels"} <= rep.keys():
                found.append((path, rep))
    rank = {b: i for i, b in enumerate(BUDGET_ORDER)}
    return sorted(found, key=lambda pr: (rank.get(pr[1]["meta"].get("budget"), len(rank)),
                                         bool(pr[1]["meta"].get("overrides"))))


def best_report(candidates):
    """The (source, report) to read: complete reports (all 13 steps) before partial ones, then the larger
    budget (full, lecture, smoke), then a preset before an overridden budget (``--train-steps``), then the
    earlier candidate. candidates: iterable of (source, report)."""
    candidates = list(candidates)
    if not candidates:
        raise ValueError("no report to choose from")
    rank = {b: i for i, b in enumerate(BUDGET_ORDER)}

    def order(i_pair):
        i, (_, rep) = i_pair
        complete = {r["key"] for r in rep["steps"]} >= {s.key for s in TRAJECTORY}
        overridden = bool(rep["meta"].get("overrides"))
        return (not complete, rank.get(rep["meta"].get("budget"), len(rank)), overridden, i)

    return min(enumerate(candidates), key=order)[1]


def describe_report(report: dict, source=None) -> str:
    """One paragraph of provenance: budget, seeds, hardware, wall and training time, commit, where from."""
    m = report["meta"]
    train_min = sum(r.get("train_seconds") or 0.0 for r in report["steps"]) / 60
    text = (f"budget `{m.get('label', m['budget'])}`, dataset `{m['dataset']}`, seeds {m['seeds']}, on {m['device']} "
            f"(torch {m.get('torch', '?')}); {len(report['steps'])} steps, training time {train_min:.1f} min "
            f"summed over steps and seeds, report built in {m['wall_seconds'] / 60:.1f} min; "
            f"commit `{m.get('commit') or '?'}`, {m.get('created', '')}")
    if m.get("command"):
        text += f"; command `{m['command']}`"
    if source is not None:
        text += f"; read from `{source}`"
    return text + "."


def _fmt(x, spec=".2f", empty="–") -> str:
    return empty if x is None else format(x, spec)


def markdown_table(header, rows) -> str:
    """A Markdown table; floats with 2 decimals, None as a dash."""
    def cell(v):
        return _fmt(v) if isinstance(v, float) or v is None else str(v)
    lines = ["| " + " | ".join(map(str, header)) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def versus_raw_pixels(reports) -> str:
    """One row per report: its dataset, the raw-pixel probe, the first legitimate step and l-DAE (the last
    step), and l-DAE minus raw pixels: does the learned representation beat the pixels it was learned from?
    reports: iterable of (source, report)."""
    rows = []
    for _, rep in reports:
        m, by_key = rep["meta"], {r["key"]: r for r in rep["steps"]}

        def ours(key):
            r = by_key.get(key)
            return None if r is None else _fmt(r["mean"]) + (f" ± {r['std']:.2f}" if r.get("std") is not None else "")
        last = by_key.get(TRAJECTORY[-1].key)
        raw = rep["raw_pixels"]["linear"]
        rows.append([m["dataset"], m["budget"], len(m["seeds"]), f"{raw:.2f}", ours("no_perceptual"),
                     ours(TRAJECTORY[-1].key), _fmt(None if last is None else last["mean"] - raw, "+.2f")])
    return markdown_table(["dataset", "budget", "seeds", "raw pixels %", "first legitimate step %", "l-DAE %",
                           "l-DAE − raw pixels"], rows)


def trajectory_markdown(report: dict) -> str:
    """Every step: ours (mean ± std over seeds) and the paper's, each change and whether its sign agrees,
    with the training time and seeds of each number, and whether the report trained the run or reused a
    cached one. Δ is to the previous row shown."""
    seeds = report["meta"]["seeds"]
    rows = []
    for i, r in enumerate(report["steps"], 1):
        ours = _fmt(r["mean"]) + (f" ± {r['std']:.2f}" if r.get("std") is not None else "")
        sign = {True: "yes", False: "**no**", None: "(paper: 0)"}[r["same_sign"]] if "same_sign" in r else ""
        noise = {True: "yes", False: "no"}.get(r.get("within_noise"), "")
        rows.append([i, r["label"] + ("" if r["legitimate"] else " (uses labels)"), ours,
                     _fmt(r.get("delta"), "+.2f", ""), f"{r['paper']:.1f}", _fmt(r.get("paper_delta"), "+.1f", ""),
                     sign, noise, f"{r.get('train_seconds') or 0:.0f}", len(r.get("accuracies", seeds)),
                     "reused" if r.get("cached") else "trained"])
    return markdown_table(["#", "step", "ours %", "Δ ours", "paper %", "Δ paper", "same sign", "within noise",
                           "train s", "seeds", "run (when the report was made)"], rows)


def report_training(report: dict) -> str:
    """How long a report's runs trained: "300 steps" (its budget's, or the ``--train-steps`` override)."""
    m = report["meta"]
    preset = budgets_mod.BUDGETS.get(m["budget"])
    steps = (m.get("overrides") or {}).get("steps") or (preset.steps if preset else None)
    return f"budget {m['budget']}" if steps is None else f"{steps} steps"


def changes_side_by_side(reports) -> str:
    """Each step's change (Δ to the step before it) in several reports, beside the paper's: does an effect
    appear, or turn to the paper's sign, with more training (or on another dataset)? reports: iterable of
    (column name, report). A cell reads "+0.77 (paper's sign, beyond noise)"; "–" where a report lacks the
    step or the one before it.
    The last row counts, per report, the changes with the paper's sign and beyond seed noise."""
    reports = list(reports)
    by_key = [{r["key"]: r for r in rep["steps"]} for _, rep in reports]

    def cell(keys, i):  # the change into step i (1-based), when the report has step i and the one before
        r = keys.get(TRAJECTORY[i - 1].key)
        if r is None or "delta" not in r or TRAJECTORY[i - 2].key not in keys:
            return "–"
        sign = {True: "paper's sign", False: "opposite sign", None: "paper: 0"}[r.get("same_sign")]
        noise = {True: ", within noise", False: ", beyond noise"}.get(r.get("within_noise"), "")
        return f"{r['delta']:+.2f} ({sign}{noise})"

    rows = []
    for i, step in enumerate(TRAJECTORY[1:], 2):
        rows.append([i, step.label, f"{step.paper_accuracy - TRAJECTORY[i - 2].paper_accuracy:+.1f}"]
                    + [cell(keys, i) for keys in by_key])
    rows.append(["", "paper's sign and beyond noise", ""]
                + [f"{sum(1 for r in keys.values() if r.get('same_sign') and r.get('within_noise') is False)} of "
                   f"{sum(1 for r in keys.values() if r.get('same_sign') is not None)}" for keys in by_key])
    return markdown_table(["#", "step", "Δ paper"] + [f"Δ {name}" for name, _ in reports], rows)


def _ranks(values):
    order = sorted(range(len(values)), key=lambda i: values[i])
    ranks = [0.0] * len(values)
    i = 0
    while i < len(order):  # ties share their average rank
        j = i
        while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
            j += 1
        for k in range(i, j + 1):
            ranks[order[k]] = (i + j) / 2
        i = j + 1
    return ranks


def rank_correlation(a, b) -> float | None:
    """Spearman's rank correlation of two equally long sequences (None when it is undefined)."""
    if len(a) != len(b):
        raise ValueError(f"sequences of different lengths {len(a)} and {len(b)}")
    if len(a) < 3:
        return None
    ra, rb = torch.tensor(_ranks(list(a))), torch.tensor(_ranks(list(b)))
    ra, rb = ra - ra.mean(), rb - rb.mean()
    denom = (ra.norm() * rb.norm()).item()
    return None if denom == 0 else float((ra @ rb).item() / denom)


def reproduction_summary(report: dict) -> str:
    """What the numbers of ``report`` say, against the paper's, as Markdown bullets (computed, not asserted)."""
    m, rows = report["meta"], report["steps"]
    by_key = {r["key"]: r for r in rows}
    out = []
    if m["budget"] == "smoke":
        out.append("These are **smoke** numbers (models trained for seconds): they show that every step runs, "
                   "not whether the paper's effects hold. Read a lecture or full report for that.")
    if len(rows) < len(TRAJECTORY):
        out.append(f"This report holds {len(rows)} of the {len(TRAJECTORY)} steps; each Δ compares a step with "
                   "the previous one *shown*.")
    compared = [r for r in rows if r.get("same_sign") is not None]
    agree = [r["key"] for r in compared if r["same_sign"]]
    disagree = [r["key"] for r in compared if not r["same_sign"]]
    if compared:
        out.append(f"Our change has the paper's sign in **{len(agree)} of {len(compared)}** steps"
                   + (f" ({', '.join(agree)})" if agree else "") + "; the opposite sign in "
                   f"**{len(disagree)}**" + (f" ({', '.join(disagree)})" if disagree else "") + ".")
    for r in rows:
        if "same_sign" in r and r["same_sign"] is None:
            out.append(f"{r['label']}: the paper measured no change (Δ {r['paper_delta']:+.1f}), so there is no "
                       f"sign to agree with; ours moved {r['delta']:+.2f}.")
    noise = [r for r in rows if r.get("within_noise") is not None]
    if noise:
        small = [r["key"] for r in noise if r["within_noise"]]
        out.append(f"{len(small)} of {len(noise)} of our changes are within two standard errors of zero "
                   f"(seed noise, {len(m['seeds'])} seeds)" + (f": {', '.join(small)}" if small else "") + ".")
    elif compared:
        out.append(f"With {len(m['seeds'])} seed(s) there is no error bar: a change smaller than the spread between "
                   "seeds cannot be told from noise (`make trajectory SEEDS=\"0 1 2\"` measures it).")
    for name, first, last in STAGES:
        if first in by_key and last in by_key:
            a, b = by_key[first], by_key[last]
            ours, paper = b["mean"] - a["mean"], b["paper"] - a["paper"]
            verdict = "same direction" if ours * paper > 0 else "opposite direction"
            out.append(f"{name}: ours {ours:+.2f}, paper {paper:+.1f} ({verdict}).")
    legit = [r for r in rows if r["legitimate"]]
    if len(legit) >= 2:
        a, b = legit[0], legit[-1]
        out.append(f"From the first legitimate entry shown ({a['label']}) to the last ({b['label']}): ours "
                   f"{b['mean'] - a['mean']:+.2f}, paper {b['paper'] - a['paper']:+.1f}.")
    rho = rank_correlation([r["mean"] for r in rows], [r["paper"] for r in rows])
    if rho is not None:
        out.append(f"Rank correlation between our {len(rows)} numbers and the paper's: {rho:+.2f} "
                   "(+1: the same ordering of steps, 0: unrelated).")
    last, raw = rows[-1], report["raw_pixels"]["linear"]
    out.append(f"The last step shown ({last['label']}) reaches {last['mean']:.2f}% against {raw:.2f}% for a linear "
               f"probe on raw pixels ({last['mean'] - raw:+.2f}).")
    return "\n".join(f"* {line}" for line in out) + "\n"
