"""Cross-validation of run folders: a new run's folder and folds, every unfinished fold trained (one after the other,
or stacked), each run's results files written at the end. The trainer and one fold are Common_Model.py's.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from dataclasses import replace
from typing import Optional

import numpy as np

from ..Common_Model import Trainer, build_trainer, fold_label, save_trained_fold, train_and_save_fold
from ..core.config import RunConfig, TrainingData, check_stack_members
from ..core.errors import DiskFull, Diverged, TrainingInterrupted, UserError, interrupt_behind
from ..core.paths import shown
from ..data.corpus_set import corpus_rows
from ..data.feature_statistics import corpus_statistics
from ..data.features import row_signatures
from ..Model import ModelSpec
from ..runs import results, run_folder
from ..runs.run_folder import RunFolder
from . import fine_tune
from .protocol import PROTOCOLS, check_validation_split, protocol_description, recorded_validation_rows, run_folds


def planned_folds(config: RunConfig, data: TrainingData, x: np.ndarray, speakers, parts: list = ()) -> tuple:
    """(test rows per fold, fine-tuning start or None) of a new run of ``config``, every refusal of them said: its
    protocol, validation share and, with --init_from, a source fold that trained on a new test fold. A command of
    several seeds checks each one's before the first trains. ``parts``: the corpora of a run on several
    (data/corpus_set.Part), whose folds hold each corpus' share."""
    if config.protocol not in PROTOCOLS:
        raise UserError(f"--protocol {config.protocol!r}: choose one of {', '.join(PROTOCOLS)}")
    folds = run_folds(config, len(x), speakers, corpus_rows(parts, len(x)))
    check_validation_split(config, folds)
    test_rows = [test for _, test in folds]
    return test_rows, (fine_tune.plan(config, data, x, test_rows) if config.init_from else None)


def start_run(config: RunConfig, data: TrainingData, x: np.ndarray, speakers, model_path: str, result_path: str,
              parts: list = ()) -> RunFolder:
    """A new run folder for ``config``: its folds drawn (``planned_folds``), its results folder proven writable,
    nothing trained."""
    test_rows, init_from = planned_folds(config, data, x, speakers, parts)
    results.prepare_folder(result_path)  # an unwritable results folder fails now, not after hours of training
    return run_folder.create(model_path, config, data, test_rows, row_signatures(x), result_path,
                             corpus_statistics(x, data.features), init_from, [part.as_dict() for part in parts])


def train_and_save_stacked(spec: ModelSpec, pending: list, trainer: Trainer, x: np.ndarray, y: np.ndarray,
                           max_members: Optional[int] = None) -> Iterator[tuple]:
    """Train the ``pending`` (run, fold) pairs together (stacked_training.py), at most ``max_members`` in one
    stack, then evaluate and save each as ``train_and_save_fold`` does; yields ((run, fold), record) in order,
    each stack's as soon as it is saved, before the next stack trains.

    The runs may differ in their seed only (the seeds of one command): every member draws its own initial
    weights, order and labels from its run's settings, and the stack shares the optimiser's settings, epochs and
    protocol. Nothing of a stack is saved before it has trained; a diverged fold is named (``Diverged``) once every
    other fold is saved.
    """
    from .stacked_training import plan_member, train_members
    config = pending[0][0].config
    for run, _ in pending:
        if replace(run.config, random_seed=config.random_seed) != config:
            raise ValueError(f"train_and_save_stacked: {run.path} differs from {pending[0][0].path} in more than "
                             f"its seed; stack the folds of one command's runs only")
    members = [plan_member(run.config, x, y, run.folds(len(x)), fold, fold_label(spec, run, fold))
               for run, fold in pending]
    diverged = []
    for (run, fold), member, result in zip(pending, members, train_members(spec, config, x, members, max_members)):
        trainer.set_weights(result.weights)
        kept = {"history": result.history, "kept_epoch": result.kept_epoch,
                "validation_rows": recorded_validation_rows(run.config, member.monitor_rows), "training": "stacked"}
        try:
            yield (run, fold), save_trained_fold(run, trainer, x, y, fold, kept)
        except Diverged as exc:  # the other members, of this stack and the next, are trained and saved first
            diverged.append(exc)
    if diverged:
        others = f"; {len(diverged) - 1} more fold(s) of the stack diverged too" if len(diverged) > 1 else ""
        raise Diverged(f"{diverged[0]}{others}")


def cross_validate(spec: ModelSpec, runs: list, x: np.ndarray, y: np.ndarray, trainer: Optional[Trainer] = None,
                   stacked: bool = False, max_members: Optional[int] = None) -> list[dict]:
    """Train every fold of ``runs`` (run folders of one command: the same settings, one per seed) that is not on
    disk yet, then write each run's results; returns their summaries.

    Sequentially (the reference path) the runs train one after the other, and every fold's weights and record
    are on disk (written atomically) as soon as it is trained, so an interrupted run continues from its folder
    and ends with the same results as an uninterrupted one: every fold draws its initial weights, dropout and
    shuffling from its own seed. With ``stacked`` the unfinished folds of all the runs train together, at most
    ``max_members`` in one compiled step (stacked_training.py), and are saved when their stack is done.
    """
    check_stack_members(max_members, stacked)  # --stack_members, as the command line checks it
    started = time.time()
    trainer = trainer or build_trainer(spec, runs[0].config, x.shape[1:], y.shape[1])
    seed_label = len(runs) > 1  # the fold lines of several seeds name their seed

    def announce(run: RunFolder) -> list:  # a run's header and finished folds; its unfinished folds
        config = run.config
        print(f"{results.run_title(config, 'train')}\nprotocol {protocol_description(config)}\n"
              f"weights -> {shown(run.path)}")
        variant = spec.variant(config.hyper, True, config.init_from)
        print(f"model {spec.name}{f' ({variant})' if variant else ''}: {trainer.model.count_params():,} parameters, "
              f"built in {trainer.built_seconds:.1f} s")
        done = run.finished_folds()
        for fold, why in sorted(run.damaged_folds().items()):
            print(f"fold {fold + 1}/{run.k}: {why}: never used, trained again")
        for fold in sorted(done):
            print(results.format_fold_line(fold, run.k, done[fold]) + "  (trained before this command)")
        note = run.another_program_note(done)
        if note:
            print(f"note: {note}")
        return [(run, fold) for fold in range(run.k) if fold not in done]

    def report(trained) -> None:  # prints every (run, fold), record as it comes; a stop names the runs to resume
        try:
            for (run, fold), record in trained:
                seed = f"seed {run.config.random_seed} " if seed_label else ""
                print(seed + results.format_fold_line(fold, run.k, record) + f"  kept epoch {record['kept_epoch']}")
        except KeyboardInterrupt:  # every run: a run's results are written once every run's folds are trained
            raise stopped() from None
        except DiskFull as exc:
            raise DiskFull(f"{exc}; the finished folds are kept: free space and continue with: "
                           f"{' and '.join(run.resume_command for run in runs)}") from None
        except Diverged as exc:
            for run in runs:  # a stack's run whose folds all trained writes its results, as it would have anyway
                if len(run.finished_folds()) == run.k:
                    finish_run(spec, run)
            raise _advised(exc, runs[0].config) from None
        except Exception as exc:
            if interrupt_behind(exc):  # a Ctrl-C or SIGTERM that TensorFlow reported as another error
                raise stopped() from None
            raise

    def stopped() -> TrainingInterrupted:
        return TrainingInterrupted([(shown(run.path), sorted(run.finished_folds()), run.k, run.resume_command)
                                    for run in runs])

    if stacked:
        pending = [pair for run in runs for pair in announce(run)]
        if pending:
            chunk = (f"stacks of {max_members}" if max_members and max_members < len(pending) else "one step")
            print(f"training {len(pending)} folds stacked in {chunk}")
            with contextlib.ExitStack() as locks:  # each run's folds, held until the stack is saved
                for run in runs:
                    locks.enter_context(run.training(fold for owner, fold in pending if owner is run))
                report(train_and_save_stacked(spec, pending, trainer, x, y, max_members))
        print(f"trained {len(pending)} folds in {time.time() - started:.0f} s")
        summaries = []
        for run in runs:  # one after the other: several seeds' summaries are told apart by their run's title
            if len(runs) > 1:
                print(f"results of {results.run_title(run.config, 'train')}:")
            summaries.append(finish_run(spec, run))
        return summaries
    summaries = []
    for run in runs:  # one after the other, each fold saved (and printed) as soon as it is trained
        started, pending = time.time(), announce(run)
        with run.training(fold for _, fold in pending):  # all of them from the start: a second process is told now
            report((pair, train_and_save_fold(spec, pair[0], trainer, x, y, pair[1])) for pair in pending)
        print(f"trained {len(pending)} folds in {time.time() - started:.0f} s")
        summaries.append(finish_run(spec, run))
    return summaries


def _advised(exc: Diverged, config: RunConfig) -> Diverged:
    """A diverged fold's line, with what to do: --resume would train it again with the same settings, to the same
    end."""
    return Diverged(f"{exc}; the finished folds are kept, but {run_folder.diverged_advice(config)}")


def finish_run(spec: ModelSpec, run: RunFolder) -> dict:
    """The run's results files (xlsx, JSON, pictures) from its fold records, once its last fold is finished."""
    config = run.config
    record = results.run_record(config, spec.describe(config.hyper, True, config.init_from), "train",
                                run.fold_records(), run.path, config.protocol, protocol_description(config),
                                parts=run.parts)
    try:
        return results.write_run_results(record, run.result_path, run.created, config.variant_suffix)
    except UserError as exc:  # it ended there, with no word that the folds were saved nor how to go on
        raise type(exc)(f"{exc}; every fold is trained and saved in {shown(run.path)}: make {run.result_path} a "
                        f"writable folder and write the results with: {run.resume_command}") from None
