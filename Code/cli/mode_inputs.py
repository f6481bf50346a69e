"""What a mode reads before it runs: the corpus' features (and the rows the network reads of them), a run
folder's settings and features checked against the flags, the authors' folder's corpus and split from its name
(it has no run.json), and the results folder a run folder sends its results to. Every check here answers before
TensorFlow starts.
"""

from __future__ import annotations

import os
from dataclasses import replace

from ..core.errors import UserError
from ..core.paths import shown
from ..core.settings import Settings
from . import command_line


def read_corpus_features(settings: Settings, path: str | None = None, label_map=None):
    """The features of ``--data`` (at ``path``, else --feature_path or the default), every check done (data.resolve);
    several corpora pooled by ``label_map`` (a run's recorded map), else by --label_map, and described."""
    from ..data.corpus_set import describe
    from ..data.resolve import load_data
    features = load_data(settings.data, settings.features, path or settings.feature_path, settings.model,
                       settings.cv == "speaker", label_map or settings.label_map)
    if features.pooled is not None:
        print("\n".join(describe(features.pooled, settings.data)))
    return features


def network_rows(settings: Settings, features, path: str | None = None):
    """The rows the network reads of ``features`` (engine/normalization.py: standardised by speaker under
    --normalize speaker)."""
    from ..engine.normalization import network_inputs
    return network_inputs(features.x, features.speakers, settings.normalize,
                          path or settings.feature_path or settings.data)


def settings_with_authors_corpus(settings: Settings) -> Settings:
    """For the authors' folder (no run.json): the settings with the corpus of a folder named ``<KEY>_<seed>``
    (EMODB_46), said on the output, and another typed --data refused (EMOVO's class names were put on EMODB's
    weights); for another name, one line asking for --data. No --normalize: the authors trained without it."""
    from ..runs import run_folder
    refuse_normalize_for_authors(settings)
    # a folder without weight files says so first
    run_folder.fold_weight_files(settings.test_path, test_path_flag(settings))
    key = run_folder.authors_corpus(settings.test_path, settings.data if "data" in settings.given else None)
    if "data" in settings.given:
        return settings
    if key is None:
        raise UserError(f"--data: {settings.test_path} has no run.json, so the corpus its weights were trained on must "
                        f"be given (e.g. --data EMODB)")
    print(f"corpus {key} from the folder name")
    return replace(settings, data=key)


def refuse_normalize_for_authors(settings: Settings) -> None:
    """--normalize with the authors' folder (no run.json), whose weights were trained without it: a cross-corpus
    test took it and scored chance (--normalize utterance), or failed on a layer count (corpus)."""
    if settings.normalize != "none":
        raise UserError(f"--normalize {settings.normalize}: {settings.test_path} has no run.json; the authors' "
                        "weights were trained without normalisation")


def authors_split(settings: Settings) -> tuple[Settings, bool]:
    """A re-test of the authors' folder: (the settings with the seed of a folder named ``<KEY>_<seed>`` where
    --random_seed is not typed, whether the split is another than the one the weights trained on). CASIA_32 was
    re-tested on the split of seed 46, whose test folds its fold models trained on. Another seed, or --cv other than
    kfold, only with --retest_other_split, to be labelled so; a name that gives no seed leaves the split to the
    flags."""
    from ..runs.run_folder import authors_name
    seed = authors_name(settings.test_path)[1]
    if seed is None:
        return settings, False
    if "random_seed" not in settings.given:
        print(f"seed {seed} from the folder name")
        settings = replace(settings, random_seed=str(seed))
    if settings.seed == seed and settings.cv == "kfold":
        return settings, False
    other = f"--random_seed {settings.seed}" if settings.seed != seed else f"--cv {settings.cv}"
    if not settings.retest_other_split:
        raise UserError(f"{other}: the weights in {settings.test_path} were trained on the KFold split of seed "
                        f"{seed}, as its name (<KEY>_<seed>) says; on another split their test folds hold rows "
                        "they trained on (to re-test there anyway, add --retest_other_split: labelled OTHER SPLIT)")
    return settings, True


def test_path_flag(settings: Settings) -> str:
    """How a message names --test_path: said to be the default where it was not typed (an error named a folder,
    Test_Models/EMODB_46, that the user never typed)."""
    return "--test_path" if "test_path" in settings.given else "--test_path (not given, so its default)"


def open_run_settings(settings: Settings, folder: str, flag: str, allow_other_split: bool = False) -> tuple:
    """(the run in ``folder``, the settings with the typed flags checked against it and the others set from it);
    the run is None, and the settings are ``settings``, for a folder without run.json."""
    from ..runs import run_folder
    run = run_folder.open_run(folder, flag)
    return run, settings if run is None else command_line.check_against_run(settings, run, allow_other_split)


def run_features(settings: Settings, run) -> tuple:
    """The features a run-folder mode reads: ``--feature_path`` if typed, else the run's own (several corpora: each
    one's, pooled by the run's recorded map); and whether their content is the run's (refused otherwise, naming the
    corpus whose file differs, unless --retest_other_features)."""
    typed = "feature_path" in settings.given
    path = settings.feature_path if typed else run.config.feature_path
    recorded = [part.feature_file["path"] for part in run.parts] or [path]
    gone = [p for p in recorded if not typed and not os.path.isfile(p)]
    if gone:
        raise UserError(f"{gone[0]}: the feature file of the run in {run.path} is gone; pass a copy with "
                        f"--feature_path{' (one per corpus, joined by +)' if run.parts else ''} (its content is "
                        "checked against the run's)")
    features = read_corpus_features(settings, path, {part.data: part.mapping for part in run.parts} or None)
    own = features.info.sha256 == run.feature_sha256
    if not own and (settings.mode == "train" or not settings.retest_other_features):
        theirs = {part.data: part.feature_file for part in run.parts}
        path = next((part.feature_file["path"] for part in features.parts
                     if part.feature_file["sha256"] != theirs[part.data]["sha256"]), path)
        way = ("a resumed run trains on its own: pass them (a copy of that file)" if settings.mode == "train" else
               "to re-test on other features add --retest_other_features (labelled OTHER FEATURES everywhere)")
        raise UserError(f"--feature_path {shown(path)}: its content differs from the features the run in {run.path} "
                        f"was trained on ({run.config.feature_path}); {way}")
    return features, own


def check_recorded_results_folder(run, way: str) -> None:
    """Refuse, in one line ending in ``way``, the results folder run.json records where it does not exist: never
    made wherever a run from elsewhere says."""
    if not os.path.isdir(run.result_path):
        raise UserError(f"{shown(run.path)}: its run.json sends results to {run.result_path}, which does not exist "
                        f"(a run made elsewhere?); {way}")


def run_results_folder(settings: Settings, run) -> str:
    """Where a re-test of ``run`` writes: ``--result_path`` where typed, else the run's own (its run.json), which must
    exist."""
    if "result_path" in settings.given:
        return settings.result_path
    check_recorded_results_folder(run, "give --result_path")
    return run.result_path


def check_resumed(settings: Settings, run) -> None:
    """A resumed run keeps its folders and its kernels: --result_path, --model_path or --fused_kernels off typed
    against them is refused (it was ignored); the recorded settings are check_against_run's."""
    if "result_path" in settings.given and os.path.abspath(settings.result_path) != run.result_path:
        raise UserError(f"--result_path {settings.result_path}: the run in {run.path} writes its results to "
                        f"{run.result_path}; a resumed run keeps its own")
    own_folder = os.path.dirname(os.path.abspath(run.path))
    if "model_path" in settings.given and os.path.abspath(settings.model_path) != own_folder:
        raise UserError(f"--model_path {settings.model_path}: the run's folder is {shown(run.path)}; a resumed run "
                        "stays in its own, leave the flag out")
    if settings.fused_kernels == "off" and run.config.fused_kernels:
        raise UserError(f"--fused_kernels off: the run in {shown(run.path)} trained with the fused kernels; a resumed "
                        "run keeps its own, leave the flag out")
    check_recorded_results_folder(run, "make that folder to resume the run there")
