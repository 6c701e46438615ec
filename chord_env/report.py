"""Evaluation reports: accuracy with confidence intervals, BFCL's summary scores, error counts, plots.

- Confidence intervals are Wilson score intervals (E. B. Wilson, "Probable inference, the law of
  succession, and statistical inference", JASA 22, 1927), the interval Brown, Cai and DasGupta
  recommend for a binomial proportion ("Interval Estimation for a Binomial Proportion",
  Statistical Science 16(2), 2001): unlike the normal approximation it stays inside [0, 1] and
  keeps its coverage at accuracies near 0 or 1 and for small categories.
- pass@k is the unbiased estimator of Chen et al. 2021 ("Evaluating Large Language Models Trained
  on Code", arXiv 2107.03374, section 2.1): 1 - C(n-c, k) / C(n, k) for c correct of n samples,
  computed as their numerically stable product.
- BFCL's summary scores mirror `bfcl_eval/eval_checker/eval_runner_helper.py`
  (`generate_leaderboard_csv`, bfcl-eval 2026.3.23): non-live = unweighted mean of simple (itself
  the unweighted mean of simple_python, simple_java, simple_javascript), multiple, parallel and
  parallel_multiple; live = the count-weighted mean of live_simple, live_multiple, live_parallel
  and live_parallel_multiple; hallucination = unweighted mean of irrelevance and live_irrelevance;
  relevance = live_relevance. BFCL's overall weighs non-live, live, hallucination, multi-turn and
  agentic 10/10/10/30/40; `single_turn_overall` applies the first three weights alone, so it is
  BFCL's overall restricted to single-turn, not BFCL's overall. A category that was not run counts
  as 0, as in BFCL, and the summary is marked incomplete.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

Z_95 = 1.959963984540054


def wilson_interval(correct: int, total: int, z: float = Z_95) -> tuple[float, float]:
    """Wilson score interval for `correct` successes in `total` trials (95% by default)."""
    if total <= 0:
        return (0.0, 1.0)
    p = correct / total
    denom = 1 + z * z / total
    centre = (p + z * z / (2 * total)) / denom
    half = z * math.sqrt(p * (1 - p) / total + z * z / (4 * total * total)) / denom
    return (max(0.0, centre - half), min(1.0, centre + half))


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k from `c` correct among `n` samples (Chen et al. 2021, Figure 3)."""
    if k > n:
        raise ValueError(f"pass@{k} needs at least {k} samples per problem, got {n}")
    if n - c < k:
        return 1.0
    return float(1.0 - np.prod(1.0 - k / np.arange(n - c + 1, n + 1)))


Tally = Mapping[str, tuple[int, int]]
"""category -> (correct, total)."""

_SIMPLE = ("simple_python", "simple_java", "simple_javascript")
_NON_LIVE_AST = ("multiple", "parallel", "parallel_multiple")
_LIVE_AST = ("live_simple", "live_multiple", "live_parallel", "live_parallel_multiple")
_HALLUCINATION = ("irrelevance", "live_irrelevance")


def bfcl_summary(tally: Tally) -> dict[str, dict[str, Any]]:
    """BFCL's summary scores from per-category tallies: {name: {"accuracy", "complete"}}."""

    def acc(cat: str) -> float:
        correct, total = tally.get(cat, (0, 0))
        return correct / total if total else 0.0

    def unweighted(values: Sequence[float]) -> float:
        return sum(values) / len(values)

    def has(cats: Iterable[str]) -> bool:
        return all(tally.get(c, (0, 0))[1] > 0 for c in cats)

    live_total = sum(tally.get(c, (0, 0))[1] for c in _LIVE_AST)
    simple = unweighted([acc(c) for c in _SIMPLE])
    scores = {
        "non_live": (unweighted([simple] + [acc(c) for c in _NON_LIVE_AST]), has(_SIMPLE + _NON_LIVE_AST)),
        "live": (sum(tally.get(c, (0, 0))[0] for c in _LIVE_AST) / live_total if live_total else 0.0, has(_LIVE_AST)),
        "hallucination": (unweighted([acc(c) for c in _HALLUCINATION]), has(_HALLUCINATION)),
        "relevance": (acc("live_relevance"), has(["live_relevance"])),
    }
    overall = unweighted([scores[k][0] for k in ("non_live", "live", "hallucination")])
    scores["single_turn_overall"] = (overall, all(scores[k][1] for k in ("non_live", "live", "hallucination")))
    return {name: {"accuracy": a, "complete": done} for name, (a, done) in scores.items()}


def tally(results: Iterable[Any]) -> dict[str, tuple[int, int]]:
    """(correct, total) per category, counting the first sample of each case."""
    out: dict[str, list[int]] = {}
    for r in results:
        t = out.setdefault(r.category, [0, 0])
        t[0] += bool(r.verdicts and r.verdicts[0]["correct"])
        t[1] += 1
    return {k: (v[0], v[1]) for k, v in out.items()}


def error_counts(results: Iterable[Any]) -> Counter:
    """How often each error type occurred (first sample of each case)."""
    return Counter(r.verdicts[0]["error_type"] for r in results if r.verdicts and not r.verdicts[0]["correct"])


def math_scores(results: Sequence[Any], ks: Sequence[int] = (1, 5, 10)) -> dict[str, float]:
    """Mean pass@k over problems for every k the sample count allows."""
    n = min((len(r.verdicts) for r in results), default=0)
    return {f"pass@{k}": float(np.mean([pass_at_k(n, r.num_correct, k) for r in results])) for k in ks if k <= n}


def _cell(correct: int, total: int) -> str:
    lo, hi = wilson_interval(correct, total)
    return f"{100 * correct / total:.1f} [{100 * lo:.1f}, {100 * hi:.1f}] (n={total})"


def markdown(results: Mapping[str, Sequence[Any]]) -> str:
    """The report for {model name: its case results}: accuracy tables, summaries, error counts."""
    models = list(results)
    header = "| | " + " | ".join(models) + " |\n|---|" + "---|" * len(models) + "\n"
    lines = ["# Evaluation report", "", "Accuracy in % with a 95% Wilson interval and the number of cases.", ""]
    tallies = {m: tally(r for r in rs if r.suite == "bfcl-single") for m, rs in results.items()}
    categories = sorted({c for t in tallies.values() for c in t}, key=_category_order)
    if categories:
        lines += ["## BFCL single-turn (BFCL's AST checker)", "", header.rstrip("\n")]
        for cat in categories:
            cells = [_cell(*tallies[m][cat]) if cat in tallies[m] else "-" for m in models]
            lines.append(f"| {cat} | " + " | ".join(cells) + " |")
        lines += ["", "BFCL summary scores (as `eval_runner_helper.generate_leaderboard_csv` computes them; "
                  "n/a: some category was not run):", "", header.rstrip("\n")]
        summaries = {m: bfcl_summary(tallies[m]) for m in models}
        for name in next(iter(summaries.values())):
            cells = [f"{100 * s[name]['accuracy']:.1f}" if s[name]["complete"] else "n/a" for s in (summaries[m] for m in models)]
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
    multi = {m: tally(r for r in rs if r.suite == "bfcl-multi-turn") for m, rs in results.items()}
    multi_categories = sorted({c for t in multi.values() for c in t})
    if multi_categories:
        lines += ["", "## BFCL multi-turn (BFCL's multi-turn checker)", "", header.rstrip("\n")]
        for cat in multi_categories:
            lines.append(f"| {cat} | " + " | ".join(_cell(*multi[m][cat]) if cat in multi[m] else "-" for m in models) + " |")
        # BFCL's multi-turn score is the unweighted mean of its four categories
        means = [sum(c / t for c, t in multi[m].values()) / len(multi[m]) if multi[m] else 0.0 for m in models]
        lines.append("| mean of categories | " + " | ".join(f"{100 * v:.1f}" for v in means) + " |")
    math_results = {m: [r for r in rs if r.suite == "math"] for m, rs in results.items()}
    if any(math_results.values()):
        lines += ["", "## Math (held-out seeds, math-verify)", "", header.rstrip("\n")]
        scores = {m: math_scores(rs) for m, rs in math_results.items()}
        for key in sorted({k for s in scores.values() for k in s}, key=lambda k: int(k.split("@")[1])):
            lines.append(f"| {key} | " + " | ".join(f"{100 * scores[m][key]:.1f}" if key in scores[m] else "-" for m in models) + " |")
        greedy = {m: (sum(bool(r.verdicts[0]["correct"]) for r in rs), len(rs)) for m, rs in math_results.items()}
        lines.append("| first sample | " + " | ".join(_cell(*greedy[m]) if greedy[m][1] else "-" for m in models) + " |")
    errors = {m: error_counts(rs) for m, rs in results.items()}
    kinds = sorted({k for e in errors.values() for k in e})
    if kinds:
        lines += ["", "## Failures by type (first sample of each case)", "", header.rstrip("\n")]
        lines += [f"| {k} | " + " | ".join(str(errors[m].get(k, 0)) for m in models) + " |" for k in kinds]
    return "\n".join(lines) + "\n"


def _category_order(category: str) -> tuple[int, str]:
    return (category.startswith("live"), category)


def bar_chart(results: Mapping[str, Sequence[Any]], path: Path) -> None:
    """A PNG of accuracy per category (BFCL categories and math), one bar per model, Wilson error bars."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tallies = {m: tally(rs) for m, rs in results.items()}
    categories = sorted({c for t in tallies.values() for c in t}, key=_category_order)
    width = 0.8 / max(1, len(results))
    fig, ax = plt.subplots(figsize=(max(6.0, 0.9 * len(categories) + 2), 4.5))
    for i, (model, t) in enumerate(tallies.items()):
        acc, err_lo, err_hi = [], [], []
        for cat in categories:
            correct, total = t.get(cat, (0, 0))
            p = correct / total if total else 0.0
            lo, hi = wilson_interval(correct, total) if total else (0.0, 0.0)
            acc.append(100 * p)
            err_lo.append(100 * (p - lo))
            err_hi.append(100 * (hi - p))
        x = np.arange(len(categories)) + (i - (len(results) - 1) / 2) * width
        ax.bar(x, acc, width, yerr=[err_lo, err_hi], capsize=2, label=model)
    ax.set_xticks(np.arange(len(categories)), categories, rotation=45, ha="right")
    ax.set_ylabel("accuracy (%), 95% Wilson interval")
    ax.set_ylim(0, 100)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def write_report(results: Mapping[str, Sequence[Any]], out: Path) -> dict[str, Path]:
    """Write `<model>/cases.jsonl` (one JSON per case), `report.md`, `summary.json`, `accuracy.png`."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"report": out / "report.md", "summary": out / "summary.json", "chart": out / "accuracy.png"}
    summary = {}
    for model, rs in results.items():
        folder = out / model
        folder.mkdir(parents=True, exist_ok=True)
        with open(folder / "cases.jsonl", "w") as f:
            for r in rs:
                f.write(json.dumps(r.to_json(), ensure_ascii=False) + "\n")
        bfcl_tally = tally(r for r in rs if r.suite == "bfcl-single")
        summary[model] = {
            "categories": {c: {"correct": k, "total": n, "ci95": wilson_interval(k, n)} for c, (k, n) in tally(rs).items()},
            "bfcl": bfcl_summary(bfcl_tally) if bfcl_tally else {},
            "math": math_scores([r for r in rs if r.suite == "math"]),
            "errors": dict(error_counts(rs)),
        }
    paths["report"].write_text(markdown(results))
    paths["summary"].write_text(json.dumps(summary, indent=2))
    bar_chart(results, paths["chart"])
    return paths
