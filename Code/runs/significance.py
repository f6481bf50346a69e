"""Statistics over cross-validated runs: a confidence interval for r seeds x k folds, and paired tests of two runs.

A run of ``--split_fold k`` with ``--random_seed`` s1,...,sr yields r*k per-fold figures (UAR or WAR). Their plain
t-interval (s / sqrt(r*k)) treats them as independent, but every two folds share most of their training rows (and
the r repetitions reuse the same utterances), so it is too narrow: Nadeau & Bengio (2003, "Inference for the
generalization error", Machine Learning 52) show the variance of the mean is underestimated, and Bouckaert & Frank
(2004, "Evaluating the replicability of significance tests for comparing learning algorithms", PAKDD) give the
corrected repeated k-fold t-test used here. The per-fold figures are proportions, so the interval is computed on
their logit scale and mapped back, inside (0, 1); where a fold is at 0 or 1 (no logit) it is the plain one clipped
to [0, 1], and values without spread have none (docs/statistics.md gives the formulae).

Two configurations are compared only on the same (seed, fold) cells: same corpus and feature file, same seeds,
the same test rows in every fold (checked, never assumed). Both paired tests take their units (cells, utterances)
as independent, which overlapping training sets and repeated seeds are not (Dietterich 1998, "Approximate
statistical tests for comparing supervised classification learning algorithms"): read their p-values as
indicative, not exact. Knows nothing about TensorFlow: it reads the fold
records that ``results.fold_metrics`` and the training code write (``uar``, ``war``, ``n``, ``y_true``, ``y_pred``,
``test_rows``).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

import numpy as np
from scipy import special, stats

T_METHOD = ("corrected repeated k-fold t-interval (Nadeau & Bengio 2003; Bouckaert & Frank 2004): mean of the "
            "r x k per-fold values, variance (1/(r k) + n_test/n_train) times their sample variance, "
            "t with r k - 1 degrees of freedom")
CI_METHOD = ("corrected repeated k-fold t-interval (Nadeau & Bengio 2003; Bouckaert & Frank 2004) on the logit "
             "scale: each per-fold proportion p becomes log(p / (1 - p)); mean of the r x k logits ± t(r k - 1) x "
             "sqrt((1/(r k) + n_test/n_train) x their sample variance), mapped back with 1 / (1 + exp(-z)), so the "
             "interval never leaves [0, 100] %")
# A fold at 0 % or 100 % has no finite logit. Holding it some share of an utterance inside [0, 1] made the interval
# measure the hold, not the folds: the larger the folds, the further out a 0 % went, and the wider the interval
# (a helper's probe: one set of per-fold values, folds of 10 to 10000 utterances, upper bounds 53 to 86 %). Such
# values get the plain-scale interval, clipped to [0, 1].
CLIPPED_METHOD = ("corrected repeated k-fold t-interval on the plain scale, clipped to [0, 100] %: a fold at 0 % or "
                  "100 % has no logit")
# Values without spread (every fold the same figure: a model that predicts one class scores chance in every fold)
# give no interval: a zero-width [x, x] read as certainty.
NO_SPREAD_METHOD = "no interval: every per-fold value is the same, and folds without spread estimate no variance"
WILCOXON_METHOD = ("Wilcoxon signed-rank test over the paired per-(seed, fold) UAR values "
                   "(scipy, zero differences dropped; exact, two-sided: under 6 pairs its p cannot fall below 0.05, "
                   "with 2 pairs not below 0.5)")
MCNEMAR_METHOD = ("McNemar's exact test on the per-utterance correctness pooled over all (seed, fold) cells: "
                  "two-sided binomial test of b against b + c")


class PairingError(ValueError):
    """Two sets of runs that cannot be compared cell by cell; the message says why."""


@dataclass(frozen=True)
class Interval:
    """Mean, sample std and confidence interval of ``n`` per-fold values; ``low``/``high`` are NaN when n < 2 or
    the values have no spread (``method`` says which interval, or why none)."""

    mean: float
    std: float
    low: float
    high: float
    n: int
    method: str = T_METHOD


@dataclass(frozen=True)
class Comparison:
    """A paired comparison of configuration A with B on ``cells`` (seed, fold) pairs.

    ``mean_difference``: mean over the cells of UAR(A) - UAR(B) (fractions, not %). McNemar's ``b``: utterances A
    classifies right and B wrong, ``c``: the reverse, counted over all cells.
    """

    seeds: tuple
    cells: int
    mean_difference: float
    wilcoxon_statistic: float
    wilcoxon_p: float
    mcnemar_b: int
    mcnemar_c: int
    mcnemar_p: float


def corrected_t_interval(values, test_train_ratio: float, confidence: float = 0.95) -> Interval:
    """The corrected repeated k-fold t-interval of the mean of ``values`` (one per (seed, fold) cell).

    Args:
        values: the r*k per-fold figures.
        test_train_ratio: n_test / n_train of a fold (about 1 / (k - 1) for k-fold); the correction term that
            accounts for overlapping training sets (Nadeau & Bengio 2003).
        confidence: the interval's coverage, in (0, 1).

    With a single value there is no spread: std, low and high are NaN.
    """
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence!r}")
    if test_train_ratio < 0:
        raise ValueError(f"test_train_ratio must be >= 0, got {test_train_ratio!r}")
    values = np.asarray(values, dtype=float)
    n = len(values)
    if n == 0:
        raise ValueError("corrected_t_interval needs at least one value, got none")
    mean = float(values.mean())
    if n == 1:
        return Interval(mean, math.nan, math.nan, math.nan, 1)
    std = float(values.std(ddof=1))
    half = stats.t.ppf(0.5 + confidence / 2, n - 1) * math.sqrt(std ** 2 * (1 / n + test_train_ratio))
    return Interval(mean, std, mean - float(half), mean + float(half), n)


def logit_t_interval(values, test_train_ratio: float, confidence: float = 0.95) -> Interval:
    """``corrected_t_interval`` computed on the logits of the per-fold proportions ``values``, mapped back.

    Args:
        values: the r*k per-fold figures, proportions in [0, 1].
        test_train_ratio, confidence: as for ``corrected_t_interval``.

    ``mean`` and ``std`` stay those of the values themselves; ``low`` and ``high`` come from the logits, so they
    never leave [0, 1]. Where a value is 0 or 1 (no finite logit) the interval is the plain one clipped to [0, 1]
    (``CLIPPED_METHOD``); values without spread have none (NaN bounds, ``NO_SPREAD_METHOD``).
    """
    plain = corrected_t_interval(values, test_train_ratio, confidence)
    if plain.n == 1:
        return Interval(plain.mean, plain.std, plain.low, plain.high, plain.n, CI_METHOD)
    if plain.std == 0:
        return Interval(plain.mean, plain.std, math.nan, math.nan, plain.n, NO_SPREAD_METHOD)
    p = np.asarray(values, dtype=float)  # (r*k,)
    if np.any((p <= 0) | (p >= 1)):
        return Interval(plain.mean, plain.std, max(plain.low, 0.0), min(plain.high, 1.0), plain.n, CLIPPED_METHOD)
    on_logits = corrected_t_interval(special.logit(p), test_train_ratio, confidence)
    return Interval(plain.mean, plain.std, float(special.expit(on_logits.low)), float(special.expit(on_logits.high)),
                    plain.n, CI_METHOD)


def fold_values(runs: list[dict], metric: str) -> tuple[list[float], float]:
    """The per-fold ``metric`` ("uar" or "war") of every fold of every run, and their mean n_test / n_train.

    A run's folds partition its corpus (k-fold and speaker folds alike), so a fold's training set is every row
    outside its test fold: n_train = (sum of the run's fold sizes) - n_test. The training code may hold part of
    that out for validation; the correction concerns which rows the folds share, so it uses the split itself.
    """
    values, ratios = [], []
    for run in runs:
        total = sum(fold["n"] for fold in run["folds"])
        for fold in run["folds"]:
            values.append(float(fold[metric]))
            ratios.append(fold["n"] / (total - fold["n"]))
    return values, float(np.mean(ratios))


def run_interval(runs: list[dict], metric: str, confidence: float = 0.95) -> Interval:
    """``logit_t_interval`` of the per-fold ``metric`` over all seeds and folds of ``runs`` (one run per sample:
    the report merges repeats of a run before it gets here)."""
    values, ratio = fold_values(runs, metric)
    return logit_t_interval(values, ratio, confidence)


def wilcoxon_signed_rank(a, b) -> tuple[float, float]:
    """(statistic, two-sided p) of scipy's Wilcoxon signed-rank test of paired ``a`` and ``b``.

    Zero differences are dropped (scipy's default); when every difference is zero the two sides are identical
    and p is 1.0 (scipy would divide by zero on the way there).
    """
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"wilcoxon_signed_rank needs two paired 1-D sequences, got shapes {a.shape} and {b.shape}")
    if not np.any(a - b):
        return 0.0, 1.0
    result = stats.wilcoxon(a, b)
    return float(result.statistic), float(result.pvalue)


def mcnemar_exact(correct_a, correct_b) -> tuple[int, int, float]:
    """(b, c, two-sided p) of McNemar's exact test on paired per-utterance correctness.

    b counts the utterances A gets right and B wrong, c the reverse; under the null hypothesis each discordant
    utterance goes either way with probability 1/2, so p is the binomial test of b in b + c (1.0 when b + c = 0).
    Pooled over several seeds an utterance appears once per seed: the counts are then not independent, which
    makes p optimistic.
    """
    correct_a, correct_b = np.asarray(correct_a, dtype=bool), np.asarray(correct_b, dtype=bool)
    if correct_a.shape != correct_b.shape:
        raise ValueError(f"mcnemar_exact needs paired sequences, got shapes {correct_a.shape} and {correct_b.shape}")
    b = int(np.sum(correct_a & ~correct_b))
    c = int(np.sum(~correct_a & correct_b))
    p = 1.0 if b + c == 0 else float(stats.binomtest(b, b + c, 0.5, alternative="two-sided").pvalue)
    return b, c, p


def holm(pvalues) -> list[float]:
    """Holm's (1979, "A simple sequentially rejective multiple test procedure", Scand. J. Statistics) adjusted
    p-values of ``pvalues``, in their order: the i-th smallest of m is multiplied by m - i + 1, kept from falling
    below the one before it and capped at 1. Rejecting where an adjusted p is below alpha keeps the chance of any
    false rejection among the m tests at alpha; the report tests every two of its rows."""
    p = np.asarray(pvalues, dtype=float)
    order = np.argsort(p, kind="stable")
    scaled = np.minimum(1.0, (len(p) - np.arange(len(p))) * p[order])
    adjusted = np.empty_like(p)
    adjusted[order] = np.maximum.accumulate(scaled)
    return adjusted.tolist()


def _by_seed(runs: list[dict], side: str) -> dict:
    by_seed = {}
    for run in runs:
        seed = run["config"]["random_seed"]
        if seed in by_seed:
            raise PairingError(f"{side} has two runs of seed {seed}: which to pair is ambiguous")
        by_seed[seed] = run
    return by_seed


def _same(run_a: dict, run_b: dict, what: str, value) -> None:
    if value(run_a) != value(run_b):
        raise PairingError(f"different {what}: {value(run_a)!r} against {value(run_b)!r}")


def paired_cells(runs_a: list[dict], runs_b: list[dict]) -> list[tuple[int, int, dict, dict]]:
    """(seed, fold index, fold of A, fold of B) of every cell two sets of runs share, after checking they may be
    paired: same corpus, feature file and synthetic flag, the same seeds (each once per side), and in every fold
    the same test rows with the same true labels. Raises ``PairingError`` naming the first difference."""
    if not runs_a or not runs_b:
        raise PairingError("nothing to pair: one side has no runs")
    by_seed_a, by_seed_b = _by_seed(runs_a, "A"), _by_seed(runs_b, "B")
    if set(by_seed_a) != set(by_seed_b):
        raise PairingError(f"different seeds: {sorted(by_seed_a)} against {sorted(by_seed_b)}")
    cells = []
    for seed in sorted(by_seed_a):
        run_a, run_b = by_seed_a[seed], by_seed_b[seed]
        _same(run_a, run_b, "corpus", lambda run: run["config"]["data"])
        _same(run_a, run_b, "feature file", lambda run: os.path.basename(run["config"].get("feature_path") or ""))
        _same(run_a, run_b, "synthetic flag", lambda run: bool(run.get("synthetic")))
        _same(run_a, run_b, f"number of folds (seed {seed})", lambda run: len(run["folds"]))
        for i, (fold_a, fold_b) in enumerate(zip(run_a["folds"], run_b["folds"])):
            if fold_a.get("test_rows") is None or fold_b.get("test_rows") is None:
                raise PairingError(f"seed {seed} fold {i + 1}: a record without test_rows cannot be checked")
            if list(fold_a["test_rows"]) != list(fold_b["test_rows"]):
                raise PairingError(f"seed {seed} fold {i + 1}: different test rows")
            if list(fold_a["y_true"]) != list(fold_b["y_true"]):
                raise PairingError(f"seed {seed} fold {i + 1}: same test rows with different labels")
            cells.append((seed, i, fold_a, fold_b))
    return cells


def compare(runs_a: list[dict], runs_b: list[dict]) -> Comparison:
    """Wilcoxon over the per-(seed, fold) UAR and McNemar over the pooled predictions of A against B.

    Raises ``PairingError`` when the runs are not on the same cells (see ``paired_cells``).
    """
    cells = paired_cells(runs_a, runs_b)
    uar_a = [fold_a["uar"] for _, _, fold_a, _ in cells]
    uar_b = [fold_b["uar"] for _, _, _, fold_b in cells]
    statistic, p = wilcoxon_signed_rank(uar_a, uar_b)
    y_true = np.concatenate([fold_a["y_true"] for _, _, fold_a, _ in cells])
    correct_a = np.concatenate([fold_a["y_pred"] for _, _, fold_a, _ in cells]) == y_true
    correct_b = np.concatenate([fold_b["y_pred"] for _, _, _, fold_b in cells]) == y_true
    b, c, mcnemar_p = mcnemar_exact(correct_a, correct_b)
    return Comparison(seeds=tuple(sorted({seed for seed, _, _, _ in cells})), cells=len(cells),
                      mean_difference=float(np.mean(np.subtract(uar_a, uar_b))), wilcoxon_statistic=statistic,
                      wilcoxon_p=p, mcnemar_b=b, mcnemar_c=c, mcnemar_p=mcnemar_p)
