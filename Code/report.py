"""The papers' results table, regenerated from the JSON records that runs wrote under ``Results/``.

One row per (model, corpus, feature file, protocol, cross-validation): our UAR and WAR as mean ± std over the runs
(seeds) found, next to the published numbers of the matching protocol (SPEC §5). Per run, WAR is the
mean of the per-fold accuracies (the authors' "Average ACC") and UAR the macro recall pooled over all
folds (what the authors' UAR matches). Written as Markdown, LaTeX and CSV. Knows nothing about TensorFlow.
"""

from __future__ import annotations

import glob
import json
import os
from collections import defaultdict

import numpy as np
import pandas as pd

from atomic_file import atomic_write
from errors import UserError

# (model, corpus key, protocol) -> (UAR %, WAR %) as published; None where a paper gives no figure.
PUBLISHED = {
    ("TIMNET", "CASIA", "paper"): (94.67, 94.67), ("TIMNET", "CASIA", "last_epoch"): (91.08, 91.08),
    ("TIMNET", "EMODB", "paper"): (95.17, 95.70), ("TIMNET", "EMODB", "last_epoch"): (89.19, 90.28),
    ("TIMNET", "EMOVO", "paper"): (92.00, 92.00), ("TIMNET", "EMOVO", "last_epoch"): (None, 86.56),
    ("TIMNET", "IEMOCAP", "paper"): (72.50, 71.65), ("TIMNET", "IEMOCAP", "last_epoch"): (None, 68.29),
    ("TIMNET", "RAVDE", "paper"): (91.93, 92.08), ("TIMNET", "RAVDE", "last_epoch"): (90.04, 90.07),
    ("TIMNET", "SAVEE", "paper"): (86.31, 87.71), ("TIMNET", "SAVEE", "last_epoch"): (77.26, 79.36),
    ("GMTCN", "CASIA", "paper"): (90.17, 90.17), ("GMTCN", "CASIA", "last_epoch"): (85.50, 85.50),
    ("GMTCN", "EMODB", "paper"): (90.45, 91.40), ("GMTCN", "EMODB", "last_epoch"): (86.17, 85.70),
    ("GMTCN", "RAVDE", "paper"): (87.30, 87.64), ("GMTCN", "RAVDE", "last_epoch"): (82.78, 82.62),
    ("GMTCN", "SAVEE", "paper"): (84.40, 86.01), ("GMTCN", "SAVEE", "last_epoch"): (75.83, 73.57),
}
# Speaker-independent results: (model, corpus, protocol) -> (folds, (UAR %, WAR %)), shown for --cv speaker runs
# with one fold per speaker (EMO-DB: 10) or per IEMOCAP session (5). DCNN-BLSTMwA (Zhang et al., 2021) reports
# UAR only; that its protocol is speaker-independent and its epoch fixed is our reading, not verified (README).
PUBLISHED_SPEAKER = {
    ("DCNN_BLSTMwA", "EMODB", "last_epoch"): (10, (87.86, None)),
    ("DCNN_BLSTMwA", "IEMOCAP", "last_epoch"): (5, (68.50, None)),
}


def load_records(result_path: str) -> list[dict]:
    """Every results JSON below ``result_path`` (training and test runs), skipping files that are not ours."""
    records = []
    for path in sorted(glob.glob(os.path.join(result_path, "**", "*.json"), recursive=True)):
        try:
            with open(path) as f:
                record = json.load(f)
        except (OSError, ValueError):
            continue
        if isinstance(record, dict) and {"summary", "config", "model"} <= set(record):
            records.append({**record, "path": path})
    return records


def _cell(values: list[float]) -> str:
    if not values:
        return "–"
    mean = 100 * float(np.mean(values))
    return f"{mean:.2f}" if len(values) == 1 else f"{mean:.2f} ± {100 * float(np.std(values)):.2f}"


def _published(value) -> str:
    return "–" if value is None else f"{value:.2f}"


def published(model: str, data: str, protocol: str, cv: str, folds: int, synthetic: bool) -> tuple:
    """(UAR %, WAR %) published for the same model, corpus, protocol and fold scheme ("kfold": the papers'
    shuffled 10-fold, shown whatever --split_fold; "speaker": one fold per speaker); (None, None) otherwise."""
    if synthetic:
        return None, None
    if cv == "kfold":
        return PUBLISHED.get((model, data, protocol), (None, None))
    speaker_folds, figures = PUBLISHED_SPEAKER.get((model, data, protocol), (None, (None, None)))
    return figures if folds == speaker_folds else (None, None)


def build_table(records: list[dict]) -> pd.DataFrame:
    """One row per (model and its variant, corpus, feature file, protocol, cv, folds, synthetic) with our figures
    and the published ones."""
    groups = defaultdict(list)
    for record in records:
        config = record["config"]
        protocol = record["protocol"]
        if record.get("mode") == "test":  # a re-test is labelled by the weights it re-tested
            protocol = f"test of {os.path.basename(os.path.normpath(record['weights_folder']))}"
        # Runs on different feature files (the full corpus, 2-s cuts, another extraction) are never averaged.
        features = os.path.basename(config.get("feature_path") or "") or "–"
        key = (record["model"], record.get("variant", ""), config["data"], features, protocol,
               config.get("cv", "kfold"), config["split_fold"], bool(record.get("synthetic")))
        groups[key].append(record)
    rows = []
    for (model, variant, data, features, protocol, cv, folds, synthetic), runs in sorted(groups.items()):
        uar, war = published(model, data, protocol, cv, folds, synthetic)
        rows.append({
            "model": model + (f" ({variant})" if variant else ""),
            "corpus": data + (" (synthetic)" if synthetic else ""), "features": features, "protocol": protocol,
            "cv": cv, "runs": len(runs), "seeds": " ".join(str(r["config"]["random_seed"]) for r in runs),
            "folds": folds,
            "epochs": "–" if protocol.startswith("test") else runs[0]["config"]["epochs"],
            "UAR % (pooled)": _cell([r["summary"]["uar_pooled"] for r in runs]),
            "WAR % (mean of folds)": _cell([r["summary"]["war_mean_of_folds"] for r in runs]),
            "published UAR %": _published(uar), "published WAR %": _published(war),
        })
    return pd.DataFrame(rows)


def to_markdown(table: pd.DataFrame) -> str:
    lines = ["| " + " | ".join(table.columns) + " |", "|" + "---|" * len(table.columns)]
    lines += ["| " + " | ".join(str(v) for v in row) + " |" for row in table.itertuples(index=False)]
    return "\n".join(lines)


def to_latex(table: pd.DataFrame, caption: str) -> str:
    def escape(value) -> str:
        return str(value).replace("\\", "\\textbackslash{}").replace("_", "\\_").replace("%", "\\%") \
            .replace("&", "\\&").replace("#", "\\#").replace("±", "$\\pm$")
    lines = ["\\begin{table}[t]", "\\centering", f"\\caption{{{escape(caption)}}}", "\\label{tab:ser-results}",
             "\\begin{tabular}{" + "l" * len(table.columns) + "}", "\\hline",
             " & ".join(escape(c) for c in table.columns) + " \\\\", "\\hline"]
    lines += [" & ".join(escape(v) for v in row) + " \\\\" for row in table.itertuples(index=False)]
    lines += ["\\hline", "\\end{tabular}", "\\end{table}", ""]
    return "\n".join(lines)


def _write_text(path: str, text: str) -> None:
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)


def write_report(result_path: str) -> dict:
    """``report.md``, ``report.tex`` and ``report.csv`` in ``result_path``; returns their paths."""
    records = load_records(result_path)
    if not records:
        raise UserError(f"{result_path}: no results JSON found; train or test first (--mode train / --mode test)")
    table = build_table(records)
    paths = {kind: os.path.join(result_path, f"report.{kind}") for kind in ("md", "tex", "csv")}
    note = ("UAR: macro recall pooled over folds; WAR: mean of per-fold accuracies; ± is the std over runs. "
            "Published figures (SPEC §5; DCNN-BLSTMwA: Zhang et al. 2021, speaker-independent) are shown for the "
            "matching protocol and folds only; `paper` selects on the test fold.")
    texts = {"md": to_markdown(table) + f"\n\n{note}\n", "tex": to_latex(table, note), "csv": table.to_csv(index=False)}
    for kind, path in paths.items():
        atomic_write(path, lambda tmp, text=texts[kind]: _write_text(tmp, text))
    print(texts["md"])
    for kind, path in paths.items():
        print(f"wrote {kind}: {path}")
    return paths
