"""The results of bench_throughput.py: its timed windows summed up (medians, ratios within rounds, MFU
against a steady peak) and written out as a Markdown file that explains itself: the run's setup, one
table per size, ours / timm with its spread over rounds, the peak readings and their verdict."""

from __future__ import annotations

import statistics

from ldae_lite import device as device_mod

OURS, TIMM = "ours (DiT)", "timm ViT"
QUIET_CPUS = 0.25  # a round is quiet when other jobs kept fewer CPUs than this busy during both windows


def paired_ratios(ours, other) -> list[float]:
    """ours / other in img/s, window by window within each round (> 1: ours is faster)."""
    return [a / b for a, b in zip(ours.img_per_s, other.img_per_s)]


def summarise(cfg, candidates: list, batch: int, tokens: int) -> dict:
    """Rows (median img/s, spread, ms/step, TFLOP/s; MFU comes later, apply_peak) and ours / timm ratios."""
    rows = []
    for c in candidates:
        med = statistics.median(c.img_per_s)
        rows.append(dict(model=c.name, attention=c.attention, params=c.params, img_per_s=med,
                         img_per_s_all=c.img_per_s, steps_per_window=c.steps_per_window,
                         ms_per_step=1000 * batch / med, cpu_ms_per_step=statistics.median(c.cpu_ms_per_step),
                         faults_per_step=statistics.median(c.faults_per_step),
                         background_cpus=statistics.median(c.background_cpus) if c.background_cpus else None,
                         gflop_per_image=c.flops_per_image / 1e9, tflop_per_s=med * c.flops_per_image / 1e12,
                         mfu=None, peak_mem_mib=c.peak_mem_mib))
    ratios = []
    fair = next((c for c in candidates if c.name == TIMM), None)  # timm on ours' attention backend
    for c in candidates[1:]:  # ours against each timm, and against the baseline revision if any
        r = paired_ratios(candidates[0], c)
        work = candidates[0].flops_per_image / c.flops_per_image
        cpu = [b / a for a, b in zip(candidates[0].cpu_ms_per_step, c.cpu_ms_per_step)]
        quiet = [x for x, a, b in zip(r, candidates[0].background_cpus, c.background_cpus) if max(a, b) < QUIET_CPUS]
        ratios.append(dict(against=f"{c.name} [{c.attention}]", same_backend=c is fair,
                           baseline=c.name.startswith(OURS),
                           median=statistics.median(r), min=min(r), max=max(r), rounds=r,
                           equal_work_median=work * statistics.median(r), flops_ratio=work,
                           cpu_time_median=statistics.median(cpu), quiet_rounds=len(quiet),
                           quiet_median=statistics.median(quiet) if quiet else None))
    b = cfg.budget
    return dict(config=cfg.name, width=b.width, depth=b.depth, heads=b.heads, tokens=tokens, batch=batch,
                rows=rows, ratios=ratios)


def apply_peak(summaries: list[dict], peak: dict) -> None:
    """MFU for every row from the run's peak readings, or None where the peak did not hold still."""
    for s in summaries:
        s["peak"] = peak
        for r in s["rows"]:
            r["mfu"] = r["tflop_per_s"] * 1e12 / peak["median"] if peak["steady"] else None


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.1f}%"


def _quiet(q: dict) -> str:
    if not q["quiet_rounds"]:
        return "no quiet round (other jobs always used a CPU share)"
    return f"over the {q['quiet_rounds']} quiet round(s): {q['quiet_median']:.3f}"


def config_markdown(s: dict) -> list[str]:
    """The table of one size and its ratio lines."""
    lines = [f"### {s['config']}: width {s['width']}, depth {s['depth']}, {s['heads']} heads, "
             f"{s['tokens']} tokens, batch {s['batch']}", "",
             "| model | attention | img/s (median) | range over rounds | ms/step | CPU ms/step | other jobs' CPUs "
             "| page faults/step | GFLOP/img | TFLOP/s | MFU |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in s["rows"]:
        lo, hi = min(r["img_per_s_all"]), max(r["img_per_s_all"])
        other = "n/a" if r["background_cpus"] is None else f"{r['background_cpus']:.1f}"
        lines.append(f"| {r['model']} | {r['attention']} | {r['img_per_s']:.0f} | {lo:.0f}-{hi:.0f} | "
                     f"{r['ms_per_step']:.1f} | {r['cpu_ms_per_step']:.1f} | {other} | {r['faults_per_step']:.0f} | "
                     f"{r['gflop_per_image']:.3f} | {r['tflop_per_s']:.3f} | {_pct(r['mfu'])} |")
    lines.append("")
    for q in s["ratios"]:
        tag = ("same attention backend" if q["same_backend"] else
               "this tree's speed-up over that revision" if q["baseline"] else "timm on another backend")
        lines.append(f"- **ours / {q['against']}** ({tag}): **{q['median']:.3f}** median of {len(q['rounds'])} "
                     f"rounds (range {q['min']:.3f}-{q['max']:.3f}); at equal work (x {q['flops_ratio']:.3f}, "
                     f"ours' extra matmul FLOPs): {q['equal_work_median']:.3f}; by CPU time per step: "
                     f"{q['cpu_time_median']:.3f}; {_quiet(q)}")
    if s.get("profile"):
        lines += ["", "Profile (torch.profiler, self time per op, ms per step; ours against the same-backend timm):",
                  "", "| op | ours | timm |", "|---|---|---|"]
        lines += [f"| `{p['op']}` | {p['ours_ms']:.1f} | {p['timm_ms']:.1f} |" for p in s["profile"]]
    return lines + [""]


def peak_markdown(peaks: dict, mfu_dtype: str) -> list[str]:
    """One line per dtype: the readings, their spread, and (for MFU's dtype) whether MFU is quoted."""
    out = []
    for dtype, p in peaks.items():
        readings = ", ".join(f"{x / 1e12:.3f}" for x in p["samples"])
        if dtype != mfu_dtype:
            verdict = "for reference (what the autocast dtype buys over it)"
        elif p["steady"]:
            verdict = f"steady (spread < {device_mod.PEAK_STEADY_SPREAD:.0%}): MFU quoted against the median"
        else:
            verdict = (f"NOT steady (spread >= {device_mod.PEAK_STEADY_SPREAD:.0%}): the machine is too noisy, "
                       "MFU is not quoted")
        out.append(f"- {dtype} matmul peak: median {p['median'] / 1e12:.3f} TFLOP/s, spread {p['spread']:.0%} "
                   f"over {len(p['samples'])} readings ({readings}); {verdict}")
    return out


def to_markdown(report: dict) -> str:
    """A self-explaining results file: what ran where, the tables, the ratios, the peak and its verdict."""
    m = report["meta"]
    head = ["# Throughput: ours (DiT) against timm's ViT, training steps", "",
            f"- command: `{m['command']}`", f"- date: {m['created']}; commit {m['commit']}",
            f"- machine: {m['device']}; {m['machine']}; load average {m['load_before']} before, "
            f"{m['load_after']} after", f"- torch {m['torch']}, timm {m['timm']}, python {m['python']}; "
            f"{m['autocast']}; {m['threads']} threads; allocator: {m['allocator']}",
            f"- windows of ~{m['seconds_per_window']:g} s, {m['repeats']} interleaved rounds per size", ""]
    ratios = [f"- {s['config']}: ours / timm = **{q['median']:.3f}** (range {q['min']:.3f}-{q['max']:.3f} over "
              f"{len(q['rounds'])} rounds; {q['equal_work_median']:.3f} at equal work; {_quiet(q)})"
              for s in report["configs"] for q in s["ratios"] if q["same_backend"]]
    ratios = ratios or ["- timm was not timed (--no-timm, or timm is not installed): no ratio"]
    ratios += [f"- {s['config']}: ours / {q['against']} = **{q['median']:.3f}** (range {q['min']:.3f}-{q['max']:.3f}; "
               f"by CPU time {q['cpu_time_median']:.3f}): this tree's speed-up over that revision"
               for s in report["configs"] for q in s["ratios"] if q["baseline"]]
    result = ["## Result", ""] + ratios
    result += ["", "Same attention backend, same shape, batch, dtype and optimiser; > 1 means ours trains faster.", ""]
    body = [line for s in report["configs"] for line in config_markdown(s)]
    notes = ["### Peak and MFU", ""] + peak_markdown(report["peaks"], m["autocast"]) + [
        "", "How to read this: img/s and its range come from whole windows; a ratio compares ours' window "
        "with timm's in the same round (same background load), so its range is the honest spread. "
        "Equal work multiplies the img/s ratio by ours' FLOPs over timm's (ours runs the adaLN Linears "
        "and the t-MLP on top of the same transformer). CPU ms/step above ms/step means several threads "
        "were busy; below, the process waited for the CPU. \"Other jobs' CPUs\" is how many CPUs the rest "
        "of the machine kept busy during the windows (median): near 0 the ratio is clean; the ratio by CPU "
        "time is less sensitive to waiting for the CPU, not to sharing caches. Method: benchmarks/README.md."]
    return "\n".join(head + result + body + notes) + "\n"


