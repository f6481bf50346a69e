"""Metrics and results files: WAR and UAR per fold and pooled, the original's xlsx, a JSON record, pictures.

WAR (weighted average recall) is accuracy. UAR (unweighted average recall) is the mean of the
per-class recalls. Per run both are reported two ways, each labelled: the mean of the per-fold
figures (the authors' "Average ACC") and the figure pooled over the predictions of all folds
(the authors' UAR matches pooled macro recall, SPEC §4). Knows nothing about TensorFlow.
"""

from __future__ import annotations

import json
import os
import tempfile
from contextlib import contextmanager

import numpy as np
import pandas as pd
from sklearn.metrics import classification_report, confusion_matrix

from errors import UserError


def _macro_recall(cm: np.ndarray) -> float:
    """Mean recall over the classes that occur (rows with a count): a class absent from a fold has no recall."""
    support = cm.sum(axis=1)
    present = support > 0
    return float(np.mean(np.diag(cm)[present] / support[present]))


def fold_metrics(y_true, y_pred, classes) -> dict:
    """WAR, UAR, confusion matrix (rows true, columns predicted) and classification report of one fold."""
    labels = list(range(len(classes)))
    cm = confusion_matrix(y_true, y_pred, labels=labels)
    report = classification_report(y_true, y_pred, labels=labels, target_names=list(classes), output_dict=True,
                                   zero_division=0)
    return {"war": float(np.trace(cm) / cm.sum()), "uar": _macro_recall(cm), "confusion": cm.tolist(),
            "report": report, "n": int(cm.sum())}


def summarize(folds: list[dict]) -> dict:
    """Means (and population std) of the per-fold figures, and the figures pooled over all folds."""
    war = np.array([f["war"] for f in folds])
    uar = np.array([f["uar"] for f in folds])
    pooled = np.sum([np.array(f["confusion"]) for f in folds], axis=0)
    return {"war_mean_of_folds": float(war.mean()), "war_std_of_folds": float(war.std()),
            "uar_mean_of_folds": float(uar.mean()), "uar_std_of_folds": float(uar.std()),
            "war_pooled": float(np.trace(pooled) / pooled.sum()), "uar_pooled": _macro_recall(pooled),
            "confusion_pooled": pooled.tolist()}


def results_stem(data: str, k: int, war_mean: float, seed: int, time_str: str, model: str, protocol: str) -> str:
    """The original's ``<KEY>_<k>fold_<mean acc %>_<seed>_<time>``, with model and protocol appended."""
    return f"{data}_{k}fold_{war_mean * 100:.2f}_{seed}_{time_str}_{model}_{protocol}"


@contextmanager
def _atomic(path: str):
    """Yield a temporary path beside ``path``; rename it into place only if the block succeeds."""
    fd, tmp = tempfile.mkstemp(prefix=".tmp_", suffix=os.path.splitext(path)[1], dir=os.path.dirname(path))
    os.close(fd)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def _ensure_writable(folder: str) -> None:
    try:
        os.makedirs(folder, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as exc:
        raise UserError(f"{folder}: results folder is not writable ({exc.strerror or exc})") from None


def _write_json(path: str, record: dict) -> None:
    with _atomic(path) as tmp, open(tmp, "w") as f:
        json.dump(record, f, indent=1, default=lambda o: o.item() if hasattr(o, "item") else str(o))


def _write_xlsx(path: str, folds: list[dict], classes) -> None:
    with _atomic(path) as tmp:
        with pd.ExcelWriter(tmp, engine="openpyxl") as writer:
            for i, fold in enumerate(folds):
                cm = np.array(fold["confusion"])
                # the original's sheet: transposed, one column per true class
                pd.DataFrame(cm.T, index=list(classes), columns=list(classes)).to_excel(writer, sheet_name=str(i))
                pd.DataFrame(fold["report"]).transpose().to_excel(writer, sheet_name=f"{i}_evaluate")


def _figure():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def plot_confusion(cm, classes, path: str, title: str) -> None:
    """Counts and row-normalised percentages (recall on the diagonal), true classes as rows."""
    plt = _figure()
    cm = np.asarray(cm)
    share = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
    size = 1.0 + 0.75 * len(classes)
    fig, ax = plt.subplots(figsize=(size + 1.5, size))
    image = ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(classes)), classes, rotation=45, ha="right")
    ax.set_yticks(range(len(classes)), classes)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    for r in range(cm.shape[0]):
        for c in range(cm.shape[1]):
            ax.text(c, r, f"{cm[r, c]}\n{share[r, c]:.0%}", ha="center", va="center", fontsize=7,
                    color="white" if share[r, c] > 0.6 else "black")
    fig.colorbar(image, ax=ax, fraction=0.046)
    ax.set_title(title, fontsize=8)
    fig.tight_layout()
    with _atomic(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120)
    plt.close(fig)


def plot_training_curves(histories: list[dict], path: str, title: str) -> None:
    """Loss and accuracy per epoch, one line per fold: training solid, validation (if any) dashed."""
    plt = _figure()
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    colours = plt.get_cmap("tab10")
    for i, history in enumerate(histories):
        for ax, key in zip(axes, ("loss", "accuracy")):
            epochs = np.arange(1, len(history[key]) + 1)
            ax.plot(epochs, history[key], color=colours(i % 10), lw=1, label=f"fold {i + 1}")
            if history.get(f"val_{key}"):
                ax.plot(epochs, history[f"val_{key}"], color=colours(i % 10), lw=1, ls="--")
    for ax, key in zip(axes, ("loss", "accuracy")):
        ax.set_xlabel("epoch")
        ax.set_ylabel(key)
        ax.grid(alpha=0.3)
    axes[1].legend(fontsize=6, ncol=2)
    fig.suptitle(f"{title}\nsolid: training, dashed: validation data of the protocol", fontsize=8)
    fig.tight_layout()
    with _atomic(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)


def write_results(result_dir: str, stem: str, record: dict, classes) -> dict:
    """``<stem>.json``, ``<stem>.xlsx`` and ``<stem>_confusion.png`` in ``result_dir``, each written atomically."""
    _ensure_writable(result_dir)
    paths = {"json": os.path.join(result_dir, stem + ".json"), "xlsx": os.path.join(result_dir, stem + ".xlsx"),
             "confusion": os.path.join(result_dir, stem + "_confusion.png")}
    _write_xlsx(paths["xlsx"], record["folds"], classes)
    plot_confusion(record["summary"]["confusion_pooled"], classes, paths["confusion"],
                   f"{record.get('title', stem)}\npooled over folds")
    _write_json(paths["json"], record)  # last: a JSON present means the run's files are complete
    return paths


def format_fold_line(i: int, k: int, fold: dict) -> str:
    return f"fold {i + 1}/{k}: WAR {fold['war'] * 100:.2f}%  UAR {fold['uar'] * 100:.2f}%  ({fold['n']} test utterances)"


def format_summary(summary: dict, protocol: str) -> str:
    return "\n".join([
        f"protocol {protocol}",
        f"mean of folds:     WAR {summary['war_mean_of_folds'] * 100:.2f}% ± {summary['war_std_of_folds'] * 100:.2f}"
        f"   UAR {summary['uar_mean_of_folds'] * 100:.2f}% ± {summary['uar_std_of_folds'] * 100:.2f}",
        f"pooled over folds: WAR {summary['war_pooled'] * 100:.2f}%   UAR {summary['uar_pooled'] * 100:.2f}%",
    ])
