"""The grid's plan: every point's run folder (found again, so a repeated grid goes on where it stopped, or new)
and the folds it has left; points whose settings are refused are reported and the others go on."""

from __future__ import annotations

import hashlib
import json
import sys
from dataclasses import dataclass, field

from ..core.errors import UserError
from ..core.settings import Settings


@dataclass
class Point:
    """One run of the grid: its label and its checked settings; or, for a point whose flags are refused, its error
    (reported, and the other points run)."""

    label: str
    settings: Settings | None  # the checked settings of the point's training command (cli/command_line.py)
    error: str = ""


# --- the plan: runs, their folders and the folds left -----------------------------------------------------------

@dataclass
class PlannedRun:
    """A point's run folder and what its folds train on."""

    label: str
    run: object  # run_folder.RunFolder
    features: str  # the sha256 of its features, + "/speaker/<sha256 of the speakers>" when standardised by speaker
    # (a key of Plan.features)
    trainer_key: str  # runs with the same key can share a compiled training step
    left: set = field(default_factory=set)  # folds not finished yet
    created: bool = False  # the folder was made by this plan (not found from an earlier grid command)


@dataclass
class Plan:
    runs: list
    features: dict  # sha256 -> (x, y)
    failures: list  # (what, error) of points and folds that failed
    finished_before: int  # folds already on disk when the grid started


def trainer_key(config, input_shape: tuple, num_classes: int) -> str:
    """What a compiled Trainer depends on (Common_Model.Trainer): model, shapes, network and optimiser settings."""
    return json.dumps([config.model, list(input_shape), num_classes, vars(config.hyper), config.lr, config.beta1,
                       config.beta2, config.epsilon, config.mixed_precision, config.xla,
                       config.fused_kernels], sort_keys=True)


def plan(points: list[Point]) -> Plan:
    """Load every point's features once, find or create its run folder and list the folds it has left."""
    from ..data.features import warn_of_identical_rows
    from ..data.resolve import load_data, recorded_feature_path
    from ..engine.cross_validation import start_run
    from ..engine.normalization import network_inputs
    from ..engine.run_config import run_config
    from ..runs.run_folder import find_run
    loaded, features, runs, failures, seen, before = {}, {}, [], [], set(), 0
    for point in points:
        if point.settings is None:
            failures.append((point.label, point.error))
            print(f"grid: {point.label}: not run: {point.error}", file=sys.stderr)
            continue
        settings = point.settings
        try:
            # each corpus' file, '+'-joined for several (MFCC/A+B.npy was looked for), as a run records them
            path = recorded_feature_path(settings.data, settings.features, settings.feature_path)
            # the model only words load_data's messages; several corpora are pooled by the label map
            source = (path, settings.data, settings.features, settings.cv, settings.label_map)
            if source not in loaded:
                loaded[source] = load_data(settings.data, settings.features, path, settings.model,
                                           settings.cv == "speaker", settings.label_map)
                warn_of_identical_rows(loaded[source].x, loaded[source].info.files, f"grid: {settings.data}")
            data = loaded[source]
            key = data.info.sha256  # the rows the network reads: standardised by speaker, they depend on the speakers
            if settings.normalize == "speaker":
                key += "/speaker/" + hashlib.sha256("\n".join(data.speakers or []).encode()).hexdigest()
            if key not in features:
                features[key] = (network_inputs(data.x, data.speakers, settings.normalize, path), data.y)
            spec, config = run_config(settings, data.corpus, settings.seed)
            found = find_run(settings.model_path, config, data.info.sha256, settings.result_path)
            run = found or start_run(config, data.info, data.x, data.speakers, settings.model_path,
                                     settings.result_path, data.parts)  # several corpora: as --mode train
            run.check_not_diverged(grid=True)  # the same settings would diverge again: the point fails at once
        except UserError as exc:
            failures.append((point.label, str(exc)))
            print(f"grid: {point.label}: not run: {exc}", file=sys.stderr)
            continue
        if run.path in seen:  # the same settings twice in the grid: one run
            continue
        seen.add(run.path)
        run.remove_partials()  # the grid's driver owns its run folders now: what a killed one left goes
        done = run.finished_folds()
        for why in run.damaged_folds().values():
            print(f"grid: {point.label}: {why}: never used, trained again", file=sys.stderr)
        note = run.another_program_note(done)
        if note:  # as a resume says it
            print(f"grid: {point.label}: note: {note}")
        before += len(done)
        trainer = trainer_key(config, data.x.shape[1:], data.y.shape[1])
        runs.append(PlannedRun(point.label, run, key, trainer, set(range(run.k)) - set(done), found is None))
    return Plan(runs, features, failures, before)
