"""The Python API: a trained run, or the authors' weights folder, as an object that predicts, embeds and exports.

    import timnet_ser
    run = timnet_ser.load_run("Code/Models/EMODB_46_2026-11-25_07-29-01_TIMNET")   # its run.json says the rest
    run = timnet_ser.load_run("Test_Models/EMODB_46", data="EMODB")                 # the authors' folder
    run.classes                        # ['angry', 'boredom', 'disgust', 'fear', 'happy', 'neutral', 'sad']
    run.predict("speech.wav")          # [{"file": ..., "label": "angry", "probabilities": {"angry": 0.67, ...}}]
    run.predict((samples, 16000))      # an array and its sample rate
    for rows in run.predict_chunks("folder/"): ...   # thousands of files, 256 at a time, in bounded memory
    run.timeline("call.wav")          # a long file window by window: {"windows": [...], "overall": {...}, ...}
    run.embed("speech.wav")            # (folds, 1, 39): the fused utterance embeddings (TIM-Net's t-SNE input)
    run.export("model.onnx")           # one graph averaging the folds (the format from the name), and model.onnx.json
    run.speaker_statistics("speaker_07/")   # --normalize speaker: (2, 39), for predict(..., speaker_statistics=)
    run.evaluate("MFCC/RAVDE.npy", data="RAVDE")   # CROSS-CORPUS test on another corpus' features (a results dict)

A run on several corpora (``--data EMODB+RAVDE``) loads, predicts and evaluates the same way, over their common
classes; a file of one of its own corpora is no other corpus for ``evaluate``.

The weights of every fold are read once, when the run is loaded; nothing is printed and TensorFlow's
start-up logs stay quiet. ``--mode predict`` and ``--mode export`` go through the same object.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterator
from functools import partial
from typing import Optional

import numpy as np

from ..core.errors import UserError, did_you_mean, named, named_twice
from ..core.paths import shown
from ..core.tensorflow_setup import start_tensorflow
from ..data.corpora import CORPORA
from ..data.feature_files import checked_arrays
from ..data.feature_statistics import domain_shift
from ..data.features import row_signatures, signature_matches
from ..data.label_map import GIVEN_FEATURES
from ..data.resolve import corpus_for_weights
from ..runs import run_folder


class Run:
    """The fold models of a run folder (or of the authors' weights folder), loaded once.

    Use ``load_run`` to make one.
    """

    def __init__(self, folder: str, spec, hyper, data: str, classes: list, signal_length: int,
                 weight_files: list[tuple[int, str]], run=None, api: bool = True):
        """``api``: whether weights of a folder without run.json that are not ``spec``'s are refused naming the
        API's ``model=`` or the command line's ``--model``."""
        from ..data.features import feature_shape
        from ..engine.fold_weights import FoldWeights
        from ..Model import embedding_model, inference_function
        self.folder, self.spec, self.hyper, self.data = folder, spec, hyper, data
        self.classes, self.signal_length, self.run = list(classes), int(signal_length), run
        self.input_shape = feature_shape(spec.features, self.signal_length)
        self.mixed_precision = run.config.mixed_precision if run is not None else False
        self.weights = FoldWeights(spec, hyper, self.input_shape, len(self.classes), weight_files,
                                   None if run is not None else data, self.mixed_precision,
                                   None if run is not None else partial(named, "model", api=api, quoted=api))
        self.model = self.weights.model
        # the fused kernels' inference where the run evaluated its folds with them (run.json), and for the authors'
        # folders where setup.sh built them, as a re-test does (engine/retest.py)
        fused = run.config.fused_kernels if run is not None else True
        # (fused embedding, softmax) of whichever fold's weights are loaded: traced once, at the first call
        self._embed = inference_function(embedding_model(self.model), fused)
        self.folds = self.weights.folds  # (fold number from 1, path, arrays by layer), read and checked once
        # the training corpus' MFCC statistics (run.json); None for the authors' folder, log-Mel and older runs
        self.feature_statistics = run.feature_statistics if run is not None else None
        self.normalize = hyper.normalize  # "speaker": inputs standardised by speaker before the network
        # what chose each fold's weights: the run's --protocol; the paper protocol for a folder named as the
        # published ones (EMODB_46); None where nothing says (another folder without run.json)
        self.protocol = (run.config.protocol if run is not None else
                         run_folder.authors_protocol(folder, spec.published_protocol))

    def model_inputs(self, features: np.ndarray, speaker_statistics=None) -> np.ndarray:
        """What the fold models read of (N, T, 39) features: the features, or for a run trained with
        ``--normalize speaker`` the features standardised as one speaker's, with ``speaker_statistics`` ((2, 39):
        mean and variance over the speaker's voiced frames, ``speaker_statistics()``; or a list of N of them, one
        per input) or by default their own."""
        from ..engine.normalization import one_speaker
        if self.normalize != "speaker":
            if speaker_statistics is not None:
                raise UserError(f"speaker_statistics: the run in {self.folder} was trained with --normalize "
                                f"{self.normalize}, not by speaker; leave the argument out")
            return features
        if isinstance(speaker_statistics, list):  # each input its own speaker's
            return np.concatenate([one_speaker(f[None], np.asarray(s)) for f, s in zip(features, speaker_statistics)])
        return one_speaker(features, None if speaker_statistics is None else np.asarray(speaker_statistics))

    def _statistics_for(self, source, given, in_one_batch: bool = False):
        """What standardises the inputs of ``source`` (``model_inputs``' ``speaker_statistics``): ``given``, else
        for a ``--normalize speaker`` run each input's speaker's where ``source`` is a CSV list of files that names
        speakers (a list, one per input), else those of all the inputs together (one pass over them; None with
        ``in_one_batch``, where the caller standardises every input at once: ``model_inputs`` takes theirs)."""
        from . import predict
        if self.normalize != "speaker":
            return given
        if given is not None:
            return _checked_statistics(given, predict.input_count(source))
        listed = predict.input_speakers(source)
        if listed is None:
            return None if in_one_batch else self.speaker_statistics(source)
        files: dict[str, list[str]] = {}
        for path, name in listed:
            files.setdefault(name, []).append(path)
        statistics = {}
        for name, own in files.items():
            try:
                statistics[name] = self.speaker_statistics(own)
            except UserError:  # none of that speaker's files can be read: each is reported in its row
                statistics[name] = None
        return [statistics[name] for _, name in listed]

    def speaker_statistics(self, source) -> np.ndarray:
        """(2, 39): the mean and variance of each MFCC coefficient over the voiced frames of every input of
        ``source`` (as ``predict`` reads it), taken as one speaker's (``--normalize speaker``)."""
        from ..data.feature_statistics import frame_moments, unpadded_frames
        from . import predict
        if self.feature_kind != "mfcc":  # said "no decodable MFCC input" of files that all decoded
            raise UserError(f"speaker_statistics: {self.model_name} reads {self.feature_kind} features; a speaker's "
                            "statistics are of MFCCs, for runs trained with --normalize speaker")
        frames = [c.features[unpadded_frames(c.features)] for chunk in
                  predict.clip_chunks(source, self.signal_length, self.feature_kind, predict.CHUNK)
                  for c in chunk if c.error is None]
        if not frames:
            raise UserError(f"{source}: no decodable MFCC input to take a speaker's statistics from")
        return frame_moments(np.concatenate(frames)[None]).astype(np.float32)

    @property
    def model_name(self) -> str:
        return self.spec.name

    @property
    def feature_kind(self) -> str:
        return self.spec.features

    def _fold_numbers(self, fold: Optional[int]) -> list[int]:
        return run_folder.chosen_folds(fold, self.folder, [number for number, _, _ in self.folds], api=True)

    def folds_used(self, fold: Optional[int] = None) -> str:
        """What scores an input, as every mode prints it: "fold 3" or "mean of 10 folds"; a fold the run does not
        have is refused here, before a mode prints its first line."""
        numbers = self._fold_numbers(fold)
        return f"fold {fold}" if fold is not None else f"mean of {len(numbers)} folds"

    def fold_outputs(self, features: np.ndarray, fold: Optional[int] = None) -> tuple[np.ndarray, np.ndarray]:
        """(embeddings (F, N, D), probabilities (F, N, C)) of every fold model (or fold ``fold``) on features
        (N, T, 39) or (N, S, 64, 64, 3)."""
        wanted = self._fold_numbers(fold)
        shape = np.shape(features)
        if tuple(shape[1:]) != tuple(self.input_shape):
            raise UserError(f"features: shape {shape}, but the run's models read (N, "
                            f"{', '.join(map(str, self.input_shape))})")
        if not shape[0]:  # an IndexError from the model before
            raise UserError("features: holds no utterances")
        bad = int((~np.isfinite(np.asarray(features)).reshape(shape[0], -1).all(axis=1)).sum())
        if bad:  # NaN probabilities, labelled by argmax, before
            raise UserError(f"features: {bad} utterance(s) hold NaN or Inf")
        embeddings, probabilities = [], []
        for index, (number, _, _) in enumerate(self.folds):
            if number not in wanted:
                continue
            with self.weights.loaded(index):
                embedding, probability = self._embed(features)
            embeddings.append(embedding)
            probabilities.append(probability)
        return np.stack(embeddings), np.stack(probabilities)

    def predict(self, source, fold: Optional[int] = None,
                speaker_statistics: Optional[np.ndarray] = None) -> list[dict]:
        """One dict per input: ``file``, ``label`` and ``probabilities`` {class: p}, the mean over the fold models
        (or fold ``fold``'s).

        ``source``: an audio file, a folder of them, a list of paths, or ``(samples, sample_rate)``. Among several
        files, one that cannot be decoded gets ``label`` None and its reason in ``error``. Every other row says
        ``duration_seconds`` and ``scored_seconds``: of an input longer than the model's window only the middle
        window is scored, and its row carries a ``notice`` saying so (``timeline`` scores all of it). A clip much
        shorter than the window, or whose scored window is all silence, carries a ``warning``. Every row says
        ``in_training_corpus``: "yes", "no", or "unknown" for weights that record no training rows (the authors'
        folders). A file the run trained on carries ``training_corpus``: how many fold models trained on it and what
        the fold that held it out predicts; for the authors' folders, ``{"named_as": corpus}`` where the file is
        named as that corpus names its recordings. Where the run keeps its
        corpus' MFCC statistics, every row carries ``domain_shift``: how far the inputs of this call (of more than
        ``predict.CHUNK``: of its chunk), taken together, lie from them, the threshold for their number, and a
        ``warning`` (None below it); data/feature_statistics.py says how it was measured.

        A run trained with ``--normalize speaker`` standardises every input with ``speaker_statistics`` (see
        ``model_inputs``), by default with those of all the inputs of ``source`` together: one speaker's; where
        ``source`` is a CSV list of files with a ``speaker`` column, each input with its own speaker's (all the
        files the list gives that speaker).
        """
        return [row for rows in self.predict_chunks(source, fold, speaker_statistics=speaker_statistics)
                for row in rows]

    def predict_chunks(self, source, fold: Optional[int] = None, size: Optional[int] = None,
                       speaker_statistics: Optional[np.ndarray] = None) -> Iterator[list[dict]]:
        """``predict``'s rows, ``size`` inputs at a time (default ``predict.CHUNK``): a folder of any number of files
        in bounded memory (what ``--mode predict`` does)."""
        from . import predict
        if size is not None and (isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 1):
            raise UserError(f"size={size!r}: give a positive number of inputs per chunk, or None for "
                            f"{predict.CHUNK}")
        source = predict.listed_once(source)
        statistics = self._statistics_for(source, speaker_statistics)
        done = 0
        for clips in predict.clip_chunks(source, self.signal_length, self.feature_kind, size or predict.CHUNK):
            own = statistics[done:done + len(clips)] if isinstance(statistics, list) else statistics
            done += len(clips)
            yield self._predict_clips(clips, fold, own)

    def _predict_clips(self, clips: list, fold: Optional[int], speaker_statistics=None) -> list[dict]:
        """Rows of ``clips``; ``speaker_statistics``: None, one (2, 39) array for all, or a list, one per clip."""
        from .input_checks import signal_warning
        from .timeline import scored_span
        good = [c for c in clips if c.error is None]
        if isinstance(speaker_statistics, list):
            speaker_statistics = [s for c, s in zip(clips, speaker_statistics) if c.error is None]
        rows = {}
        if good:
            features = np.stack([c.features for c in good])  # (N, T, 39) or (N, S, 64, 64, 3)
            inputs = self.model_inputs(features, speaker_statistics)
            _, probabilities = self.fold_outputs(inputs, fold)
            mean = probabilities.mean(axis=0)  # (N, C)
            shift = domain_shift(features, self.feature_statistics, self.data)
            seen_rows = self._seen_rows(features)
            rows_known = self.run is not None and self.run.records_training_rows
            for i, clip in enumerate(good):
                row = {"file": clip.name, "label": self.classes[int(mean[i].argmax())],
                       "probabilities": {c: float(p) for c, p in zip(self.classes, mean[i])},
                       **scored_span(clip.seconds, self.signal_length)}
                warning = signal_warning(clip.name, clip.seconds, self.signal_length, clip.silent, clip.peak,
                                         clip.voiced_elsewhere, clip.offset)
                if warning:
                    row["warning"] = warning
                seen = (self._training_corpus(seen_rows[i], inputs[i], fold) if rows_known else
                        self._named_as_recording(clip.name) if self.run is None else None)
                if seen:
                    row["training_corpus"] = seen
                # "no" only where the weights record the audio they trained on (the authors' folders do not)
                row["in_training_corpus"] = "yes" if seen else "no" if rows_known else "unknown"
                if shift is not None:
                    row["domain_shift"] = shift
                rows[id(clip)] = row
        return [rows.get(id(c)) or {"file": c.name, "label": None, "probabilities": None, "error": c.error}
                for c in clips]

    def timeline(self, source, hop: Optional[float] = None, fold: Optional[int] = None) -> dict:
        """The emotion of one audio file (or ``(samples, sample_rate)``) window by window: windows of the model's
        length every ``hop`` seconds (default half a window), silence skipped by an energy rule, each voiced window
        scored by the fold mean (or fold ``fold``); plus the file's mean distribution and share of time per
        label; ``domain_shift``: the voiced windows together against the training corpus' statistics, with a
        ``warning`` above the measured threshold. The file is read in blocks. See timeline.py for the rules and the
        returned dict."""
        from . import timeline
        return timeline.timeline(self, source, hop, fold)

    def _seen_rows(self, features: np.ndarray) -> list:
        """For each utterance of ``features`` (N, ...), the rows of the run's training corpus that are the same audio
        (data.features.signature_matches; one search for the chunk), empty where none or the run records none."""
        signatures = self.run.training_signatures() if self.run is not None else None
        if signatures is None:
            return [np.empty(0, np.int64)] * len(features)
        return signature_matches(row_signatures(features), signatures)

    def _named_as_recording(self, name: str) -> Optional[dict]:
        """For weights that record no training rows (the authors' folders): ``{"named_as": corpus}`` where the clip
        is named as their corpus names its recordings (EMO-DB's 03a01Wa.wav: their fold models trained on nearly
        all of it; such clips scored 97 % where the honest figure is 81 %), else None."""
        from ..data.corpora import CORPORA, named_recordings
        return {"named_as": self.data} if self.data in CORPORA and named_recordings(self.data, [name]) else None

    def _training_corpus(self, rows: np.ndarray, inputs: np.ndarray, fold: Optional[int]) -> Optional[dict]:
        """For a clip that is a row of the run's training corpus (``rows``: the matching training rows, from
        ``_seen_rows``; ``inputs``: what the network reads of it; ``fold``: the one fold that scores, or None for
        all): which fold held it out, what that fold predicts, and how many of the scoring folds trained on it (0
        where ``fold`` is the one that held it out: then the score is a held-out one)."""
        if not len(rows):
            return None
        held_out = next(i for i, test in enumerate(self.run.test_rows) if int(rows[0]) in test) + 1
        _, probabilities = self.fold_outputs(inputs[None], held_out)
        scoring = len(self.folds) if fold is None else 1
        return {"row": int(rows[0]), "folds": scoring, "trained_on_by": scoring - (fold in (None, held_out)),
                "held_out_by_fold": held_out, "held_out_label": self.classes[int(probabilities[0, 0].argmax())]}

    def embed(self, source, fold: Optional[int] = None, speaker_statistics: Optional[np.ndarray] = None) -> np.ndarray:
        """The fused utterance embeddings (the layer before the softmax: TIM-Net's dynamic fusion, GM-TCNet's
        pooling), (F, N, D) for every fold model, or (N, D) for fold ``fold``. Every input must decode;
        ``speaker_statistics`` as in ``predict``."""
        from . import predict
        source = predict.listed_once(source)
        clips = predict.read_clips(source, self.signal_length, self.feature_kind)  # never none (predict.list_inputs)
        bad = [c for c in clips if c.error is not None]
        if bad:
            raise UserError(bad[0].error)
        statistics = self._statistics_for(source, speaker_statistics, in_one_batch=True)
        inputs = self.model_inputs(np.stack([c.features for c in clips]), statistics)
        embeddings, _ = self.fold_outputs(inputs, fold)
        return embeddings[0] if fold is not None else embeddings

    def evaluate(self, features, label_map=None, data: Optional[str] = None) -> dict:
        """A CROSS-CORPUS test on another corpus: the fold models' mean probability on each of its utterances of a
        class the label map puts in the run's classes; returns the results record (``summary``: WAR, UAR and
        confusion pooled; ``cross_corpus``: the corpora, the label map, the unmapped classes, each class' recall).

        Args:
            features: the other corpus' feature file (its classes from ``data`` or the file), or
                ``(x, y, classes)``: features, one-hot labels and their class names (and for a run trained with
                ``--normalize speaker``, a fourth item: each utterance's speaker).
            label_map: None (classes matched by name, case-insensitively), a TOML/CSV file or a dict
                {their class: our class, or None to drop it}; data/label_map.py.
            data: the other corpus' name (default: the feature file's name).
        """
        from ..engine import cross_corpus
        from ..engine.normalization import network_inputs
        if data is not None and not isinstance(data, str):  # data=5 named the test corpus 5
            raise UserError(f"data={data!r}: give the other corpus' name, a str")
        if isinstance(features, tuple):
            if len(features) not in (3, 4):
                raise UserError(f"features: a tuple of {len(features)} items; give (x, y, classes), or (x, y, classes, "
                                "speakers) for a run trained with --normalize speaker")
            x, y, classes, *speakers = features
            if speakers and self.normalize != "speaker":  # taken and ignored before
                raise UserError(f"features: a fourth item (speakers), but the run in {self.folder} was not trained "
                                "by speaker; give (x, y, classes)")
            if not speakers and self.normalize == "speaker":  # it advised re-extracting a feature file
                raise UserError(f"features: the run in {self.folder} was trained with --normalize speaker; give "
                                "(x, y, classes, speakers), each utterance's speaker in the fourth item")
            if not isinstance(classes, (list, tuple, np.ndarray)):
                raise UserError("features: its third item must be the list of class names, one per column of y")
            classes = [str(c) for c in classes]
            twice = named_twice(classes)
            if twice is not None:  # every utterance of either column was scored as the one class
                raise UserError(f"features: its class names name {twice!r} twice; one name per column of y")
            x, y = checked_arrays(np.asarray(x), np.asarray(y), "features", self.feature_kind, len(classes),
                                  f"and classes names {len(classes)} ({', '.join(classes)})")
            note = self._refuse_seen(x, data, None, "features")  # as a feature file's are
            x = network_inputs(x, speakers[0] if speakers else None, self.normalize, "features")
            test_set = cross_corpus.prepare(self.classes, self.data, self.input_shape, x, y, classes,
                                            data or GIVEN_FEATURES, label_map, api=True)
            self._say(note, api=True, calls=1)
        elif isinstance(features, (str, os.PathLike)):
            test_set = self.cross_corpus_set(os.fspath(features), label_map, data, api=True)
        else:
            raise UserError(f"features: got {type(features).__name__}; give the other corpus' feature file, or a "
                            "tuple (x, y, classes)")
        return self.score_cross_corpus(test_set)

    def cross_corpus_set(self, path: Optional[str], label_map, data: Optional[str], api: bool = False):
        """The other corpus' feature file read, checked and label-mapped (engine/cross_corpus.py's TestSet)."""
        from ..engine import cross_corpus
        from ..engine.normalization import network_inputs
        loaded = cross_corpus.load_test_corpus(data, self.feature_kind, path, api)
        own = {self.run.feature_sha256, *(p.feature_file["sha256"] for p in self.run.parts)} if self.run else set()
        if loaded.info.sha256 in own:  # the run's features, or those of one of its corpora
            raise UserError(f"{path or loaded.corpus.key}: the features the run in {self.folder} trained on; a "
                            "cross-corpus test needs another corpus (re-test the run with --mode test)")
        note = self._refuse_seen(loaded.x, loaded.corpus.key, loaded.info.files, path or loaded.corpus.key)
        x = network_inputs(loaded.x, loaded.speakers, self.normalize, path or loaded.corpus.key)
        test_set = cross_corpus.prepare(self.classes, self.data, self.input_shape, x, loaded.y,
                                        list(loaded.corpus.classes), loaded.corpus.key, label_map, path,
                                        loaded.info.sha256, api)
        self._say(note, api)
        return test_set

    def _refuse_seen(self, x: np.ndarray, key: Optional[str], files, where: str) -> str:
        """One line where the other corpus (``x``, its name ``key`` and file names ``files`` where known) holds what
        a fold model saw: the corpus the authors' weights trained on, the run's training audio, or what the runs it
        goes back to by fine-tuning trained on; else what could not be compared ("" where nothing), for ``_say``."""
        if self.run is None and _same_corpus(key, self.data):  # the authors' EMODB_46 on EMODB: WAR 96 %
            raise UserError(f"{where}: {key}, the corpus the weights in {self.folder} were trained on; a "
                            "cross-corpus test needs another corpus (re-test the weights with --mode test)")
        self._refuse_training_audio(x, where)
        alike = [(self.folder, name) for name in _named_alike(files, self.run)]
        cut = self._refuse_source_audio(x, key, files, where, alike)
        notes = [f"{shown(self.folder)}: {cut}"] if cut else []
        if alike:  # names, unlike features, are no proof: other corpora name their files u0.wav too
            folders = sorted({folder for folder, _ in alike})
            notes.append(f"{where}: {len({name for _, name in alike})} of its {len(x)} utterances are named as "
                         f"recordings that the weights in {', '.join(map(shown, folders))} trained on (e.g. "
                         f"{alike[0][1]}): if they are those recordings (through another channel, cut again), this "
                         "is no cross-corpus figure")
        return "; ".join(notes)

    @staticmethod
    def _say(note: str, api: bool, calls: int = 2) -> None:
        """A note on a test that was not refused (what could not be compared): a warning in the API (pointing at the
        user's line, ``calls`` frames above this one's caller), a line on the command line."""
        if note and api:
            warnings.warn(note, stacklevel=calls + 2)
        elif note:
            print(f"note: {note}")

    def _refuse_training_audio(self, x: np.ndarray, where: str) -> None:
        """One line where utterances of another corpus' features ``x`` are the run's training audio (recognised by
        their features, as predict recognises a file): a cross-corpus figure is one of utterances no fold model saw.
        A run without training signatures (the authors' folder) cannot tell."""
        seen = sum(len(rows) > 0 for rows in self._seen_rows(x))
        if seen:
            raise UserError(f"{where}: {seen} of its {len(x)} utterances are audio the run in {self.folder} trained "
                            "on (the same features as rows of its corpus); a cross-corpus figure needs utterances no "
                            "fold model saw: leave them out of the other corpus (or re-test the run with --mode test)")

    def _refuse_source_audio(self, x: np.ndarray, key: Optional[str], files, where: str, alike: list) -> str:
        """One line where the other corpus holds what weights before these trained on: the authors' corpus (its
        recordings known by their names), or, for a fine-tuned run, the corpus and training audio of every run it
        goes back to by fine-tuning (their weights trained on them: a child of an EMODB_A run scored 61 % "cross-
        corpus" on EMODB_A, above its source's own held-out figure; a frozen backbone is its source's, bit for bit,
        so a grandchild holds it too). A run of the chain whose folder is gone cannot tell, and what ended the
        chain short is returned ("" where nothing did), as is, for the authors' folder and a corpus that names no
        files, that nothing could be compared; one there but unreadable is one line (``fine_tune.back_from``).
        ``alike`` gathers (folder, name) of the files named as a run of the chain names its training files."""
        from ..data.corpora import CORPORA, named_recordings
        from ..engine.fine_tune import MAX_CHAIN, back_from
        cut = ""
        # (folder, corpus, its run, whether it is an authors' folder: there, without run.json, so no training rows)
        if self.run is None:
            back = [(self.folder, self.data, None, True)]  # its corpus refused by the caller
        else:
            steps, cut = back_from(self.run, MAX_CHAIN, lambda folder: (f"{where}: the run in {self.folder} goes "
                                                                          f"back by fine-tuning to {folder}, which"))
            back = [(record["folder"], record.get("data"), None if level is None else level.run,
                     level is not None and level.run is None) for record, _, level in steps]  # None: that run is gone
        authors = [(folder, data) for folder, data, _, published in back if published]
        ours = None
        for depth, (folder, data, run, _) in enumerate(back):
            whose = ("the authors' weights in" if self.run is None else
                     "the weights this run was fine-tuned from, in" if not depth else
                     "the weights this run goes back to by fine-tuning, in")
            refused = (f"{where}: {{}}, which {whose} {folder} trained on; a cross-corpus figure needs utterances no "
                       "fold model saw")
            if self.run is not None and _same_corpus(key, data):
                raise UserError(refused.format(f"{key}, the corpus"))
            if data in CORPORA and files:
                named = named_recordings(data, files)
                if named:
                    raise UserError(refused.format(f"{len(named)} of its {len(x)} utterances are named as "
                                                   f"{data} recordings are (e.g. {named[0]})"))
            alike += [(folder, name) for name in _named_alike(files, run)]
            signatures = run.training_signatures() if run is not None else None
            if signatures is None:
                continue
            ours = row_signatures(x) if ours is None else ours
            seen = sum(len(m) > 0 for m in signature_matches(ours, signatures)) \
                if ours.shape[1:] == signatures.shape[1:] else 0
            if seen:
                raise UserError(refused.format(f"{seen} of its {len(x)} utterances are audio"))
        if authors and not files:  # EMO-DB's own audio in a file without names scored 96 % "cross-corpus"
            folder, data = authors[0]
            whose = "records" if self.run is None else f"goes back by fine-tuning to {folder}, which records"
            return (f"{whose} no training rows, and {where} names no files: that it holds none of {data}'s "
                    "recordings is taken on trust" + (f"; {cut}" if cut else ""))
        return cut

    def score_cross_corpus(self, test_set) -> dict:
        """The results record of the fold models' mean probability on a prepared cross-corpus TestSet."""
        from ..engine import cross_corpus
        _, probabilities = self.fold_outputs(test_set.x)
        config = cross_corpus.config_of(self.run, self.data, self.model_name, self.classes, self.hyper,
                                        run_folder.authors_name(self.folder)[1])
        return cross_corpus.score(test_set, probabilities, self.classes, self.spec.describe(self.hyper, trained=False),
                                  config, self.folder)

    def export(self, path: str, format: Optional[str] = None, fold: Optional[int] = None) -> list[str]:
        """Write one graph averaging the folds' softmax (or fold ``fold``'s) as ONNX, TFLite or a SavedModel, and a
        JSON beside it that says how to make its input; returns the paths written. ``format``: onnx, tflite or
        savedmodel; by default the one ``path`` names (``model.onnx``, ``model.tflite``, a folder for savedmodel:
        export_output.export_format)."""
        from . import export
        if not isinstance(path, (str, os.PathLike)) or not os.fspath(path):  # a TypeError; "" was the folder "."
            raise UserError(f"path={path!r}: give the output's path (a file for onnx and tflite, a folder for "
                            "savedmodel)")
        files = [p for number, p, _ in self.folds if number in self._fold_numbers(fold)]
        return export.export_run(self, files, os.fspath(path), format)


def _named_alike(files, run) -> list[str]:
    """The names among ``files`` (another corpus' file names, None where it records none) of recordings ``run``
    (a RunFolder, None for the authors' folder) trained on, by name without folder; [] where either records none.
    A recording heard through another channel keeps its name, not its features: EMODB_A's audio through a telephone
    channel was tested "cross-corpus" on the EMODB_A run without a word."""
    trained = run.training_files if run is not None and files else None
    if not trained:
        return []
    known = {os.path.basename(name) for name in trained}
    return [name for name in map(os.path.basename, files) if name in known]


def _same_corpus(name: Optional[str], other: Optional[str]) -> bool:
    """Whether two corpus names are one corpus (``emodb`` is EMODB); never where either is not known."""
    return name is not None and other is not None and name.lower() == other.lower()


def _checked_statistics(given, inputs: int):
    """``speaker_statistics`` as ``model_inputs`` takes them, checked: one (2, 39) array of means and variances
    (finite, no variance below 0), or a list of one per input. A NaN or a negative variance gave NaN probabilities
    and the label "angry", a list of another length embeddings for the first inputs only."""
    from ..data.features import N_MFCC
    if isinstance(given, list):
        if len(given) != inputs:
            raise UserError(f"speaker_statistics: a list of {len(given)} for {inputs} input(s); give one (2, "
                            f"{N_MFCC}) array per input, or one for all")
        return [_checked_statistics(item, 1) for item in given]
    try:
        array = np.asarray(given, dtype=np.float64)
    except (TypeError, ValueError):
        array = None
    if array is None or array.shape != (2, N_MFCC) or not np.isfinite(array).all() or (array[1] < 0).any():
        raise UserError(f"speaker_statistics: give a (2, {N_MFCC}) array of finite means and variances (0 or more), "
                        "as speaker_statistics() returns")
    return array


def load_run(folder: str, data: Optional[str] = None, model: Optional[str] = None, hyper=None,
             feature_path: Optional[str] = None) -> Run:
    """The run in ``folder``, ready to predict, embed and export.

    Args:
        folder: a run folder written by this program (its ``run.json`` gives everything), or a folder of
            ``<k>-fold_weights_best_<i>.hdf5`` files such as the authors' published ones.
        data: for a folder without ``run.json``: the corpus key (CASIA, EMODB, ...; a dataset of your own needs its
            feature file for its labels and length); a folder named as the published ones (``EMODB_46``) gives it.
            Refused when it contradicts the run's or the folder's name.
        model: for a folder without ``run.json``: TIMNET (default), GMTCN or DCNN_BLSTMwA.
        hyper: for a folder without ``run.json``: the network's ``timnet_ser.core.config.Hyper`` if not the paper's.
        feature_path: for a dataset of your own without ``run.json``: its feature file (default MFCC/<data>.npy);
            refused for a known corpus, whose classes and length are known.
    """
    if not isinstance(folder, (str, os.PathLike)) or not os.fspath(folder):  # a TypeError; "": "folder : no such"
        raise UserError(f"folder={folder!r}: give the path of a run folder or of a folder of fold weights")
    folder = os.fspath(folder)
    start_tensorflow()
    from ..core.config import Hyper
    from ..Model import MODELS
    run = run_folder.open_run(folder, "folder")
    if run is not None:
        config = run.config
        for name, given, own in (("data", data, config.data), ("model", model, config.model)):
            if given is not None and given != own:
                raise UserError(f"{named(name, given, api=True)}: the run in {folder} has {own}")
        for name, given in (("hyper", hyper), ("feature_path", feature_path)):  # for folders without run.json
            if given is not None:
                raise UserError(f"{named(name, given, api=True)}: the run in {folder} brings its own (run.json); "
                                "leave it out")
        return Run(run.path, MODELS[config.model], config.hyper, config.data, config.classes, run.signal_length,
                   run.checked_weight_files(), run)
    data = run_folder.authors_corpus(folder, data, api=True)  # a folder named as the published ones: EMODB_46
    if data is None:
        raise UserError(f"data: {folder} has no run.json, so the corpus its weights were trained on must be given "
                        "(e.g. data='EMODB')")
    spec = MODELS.get(model or "TIMNET")
    if spec is None:
        raise UserError(f"{named('model', model, api=True)}: choose one of {', '.join(MODELS)}"
                        f"{did_you_mean(model, MODELS)}")
    if feature_path is not None and data in CORPORA:  # taken and read by nothing, where --feature_path is refused
        raise UserError(f"{named('feature_path', feature_path, api=True)}: {data} is a known corpus, which gives the "
                        "classes and length of the weights; leave it out")
    corpus = corpus_for_weights(data, spec.features, feature_path, api=True)
    if hyper is not None and not isinstance(hyper, Hyper):
        raise UserError(f"{named('hyper', hyper, api=True)}: give a timnet_ser.core.config.Hyper "
                        "(Hyper(dilation_size=8), ...), or leave it out for the paper's")
    return authors_run(folder, spec, hyper or Hyper(dilation_size=corpus.tab_count), data, corpus)


def authors_run(folder: str, spec, hyper, data: str, corpus, api: bool = True) -> Run:
    """The Run of a folder of fold weights without run.json (the authors' layout), read as ``spec``'s with ``hyper``
    for corpus ``data`` (``corpus``: its classes and signal length); ``api``: whether messages name ``load_run``'s
    arguments or the command line's flags (``--mode predict`` and ``--mode export`` come here, checked first)."""
    return Run(os.path.abspath(folder), spec, hyper, data, list(corpus.classes), corpus.signal_length,
               run_folder.fold_weight_files(folder, "folder" if api else "--test_path"), None, api)
