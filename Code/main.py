"""Command line of the TIM-Net / GM-TCNet / DCNN-BLSTMwA reference implementation: parse, validate, dispatch.

The original's flags keep their spellings and defaults (``--mode train --data EMODB --split_fold 10
--random_seed 46`` ...). Default paths are relative to this folder, as when the original is run
from ``Code/``; paths you type are relative to where you are. Bad input ends with one line
``error: <file or flag>: <what is wrong>`` and exit status 2.
"""

from __future__ import annotations

import argparse
import os
import re
import sys

from errors import UserError

HERE = os.path.dirname(os.path.abspath(__file__))
MODES = ("train", "test", "extract", "predict", "report", "download", "demo")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description="TIM-Net, GM-TCNet and DCNN-BLSTMwA speech emotion recognition: "
                                            "extract MFCC or log-Mel features, train with k-fold cross-validation, "
                                            "re-test saved weights, predict wav files, tabulate results.")
    a = p.add_argument
    a("--mode", default="train", choices=MODES,
      help="extract: wav -> feature file; train: k-fold training; test: re-test saved weights; predict: classify wav "
           "files; report: results table; download: fetch EMODB or RAVDE; demo: the whole pipeline on a generated "
           "synthetic corpus")
    a("--model", default="TIMNET",
      help="network: TIMNET (default), GMTCN (both read MFCC features) or DCNN_BLSTMwA (reads logmel3 features); "
           "each brings its paper's recipe")
    a("--data", default="EMODB", help="corpus key: CASIA EMODB EMOVO IEMOCAP RAVDE SAVEE SYNTH, or a name of your own")
    a("--feature_path", default=None,
      help="feature file to read or write (default ./MFCC/<DATA>.npy for MFCCs, ./MFCC/<DATA>_logmel3.npy for "
           "log-Mel segments)")
    a("--features", default=None,
      help="extract: mfcc (default; TIMNET, GMTCN) or logmel3 (DCNN_BLSTMwA: 64-band log-Mel, delta, delta-delta "
           "in 64-frame segments); other modes: the model's kind")
    a("--wav_path", default=None,
      help="extract: folder of wav files (<folder>/<class>/*.wav or the corpus' own naming) or a CSV manifest "
           "path,label[,speaker]")
    a("--mean_signal_length", type=int, default=None,
      help="extract: samples every utterance is centred to (default: the corpus' value; own data: the mean length)")
    a("--workers", type=int, default=None, help="extract: parallel processes (default: all cores)")
    a("--protocol", default="last_epoch", choices=("last_epoch", "paper", "inner_val"),
      help="model selection: last_epoch (default), inner_val (best epoch on a validation split of the training "
           "fold) or paper (best epoch on the TEST fold, as the published numbers)")
    a("--val_fraction", type=float, default=0.1, help="inner_val: share of each training fold used for validation")
    a("--cv", default="kfold", choices=("kfold", "speaker"),
      help="folds: kfold (the original's shuffled KFold) or speaker (whole speakers held out)")
    a("--split_fold", type=int, default=10, help="number of cross-validation folds")
    a("--random_seed", default="46",
      help="seed of the fold split, the initial weights and the shuffling; several train runs: 46,47,48")
    a("--resume", default=None, help="train: weights folder of an interrupted run to continue")
    a("--epoch", type=int, default=None,
      help="training epochs (default: the model's recipe, TIMNET 500, GMTCN 300, DCNN_BLSTMwA 50)")
    a("--batch_size", type=int, default=None,
      help="mini-batch size (default: the recipe, 64; DCNN_BLSTMwA 32; the demo 16)")
    a("--lr", type=float, default=None, help="Adam learning rate (default: the recipe, 0.001; DCNN_BLSTMwA 1e-4)")
    a("--beta1", type=float, default=None, help="Adam beta_1 (default: the recipe, 0.93; DCNN_BLSTMwA 0.9)")
    a("--beta2", type=float, default=None, help="Adam beta_2 (default: the recipe, 0.98; DCNN_BLSTMwA 0.999)")
    a("--label_smoothing", type=float, default=None,
      help="label smoothing of the training labels (default: the recipe, TIMNET 0.1, GMTCN and DCNN_BLSTMwA 0)")
    a("--dropout", type=float, default=0.1, help="TIMNET: SpatialDropout1D rate in each temporal-aware block")
    a("--activation", default="relu", help="TIMNET: activation in each temporal-aware block")
    a("--filter_size", type=int, default=39, help="channels of every convolution")
    a("--dilation_size", type=int, default=None,
      help="TIMNET: temporal-aware blocks per direction (default: the corpus' value, 8; IEMOCAP 10)")
    a("--kernel_size", type=int, default=2, help="taps of the dilated causal convolutions")
    a("--stack_size", type=int, default=1, help="TIMNET: repetitions of the block stack")
    a("--backbone", default="mobilenetv2", help="DCNN_BLSTMwA: the CNN applied to every segment: mobilenetv2 "
                                                "(default) or resnet50v2 (Keras Applications)")
    a("--backbone_alpha", type=float, default=1.0,
      help="DCNN_BLSTMwA: MobileNetV2's width multiplier (ImageNet weights exist for 0.35 0.5 0.75 1.0 1.3 1.4)")
    a("--backbone_weights", default="imagenet",
      help="DCNN_BLSTMwA: the CNN's initial weights: imagenet (downloaded once into ~/.keras/models), none "
           "(random), or a weights file (.weights.h5, or the _no_top.h5 file Keras downloads)")
    a("--image_size", type=int, default=64,
      help="DCNN_BLSTMwA: resize the 64x64 segments to this size before the CNN (the paper: 227 for AlexNet)")
    a("--balance", action="store_true",
      help="oversample every class of each training fold to the size of the largest (off by default)")
    a("--augment", type=int, default=0,
      help="DCNN_BLSTMwA: add this many copies of every training utterance with a random frequency and time mask "
           "(default 0: none)")
    a("--model_path", default=os.path.join(HERE, "Models"), help="folder that receives each run's weights folder")
    a("--result_path", default=os.path.join(HERE, "Results"), help="folder that receives results (xlsx, json, png)")
    a("--test_path", default=os.path.join(HERE, "Test_Models", "EMODB_46"),
      help="test/predict: folder of <k>-fold_weights_best_<i>.hdf5 files")
    a("--wav", default=None, help="predict: a wav file or a folder of them")
    a("--fold", type=int, default=None, help="predict: use only fold i's weights (default: average all folds)")
    a("--output", default=None, help="predict: also write the predictions to this .csv or .json file")
    a("--download_path", default=os.path.join(HERE, "Corpora"), help="download: folder that receives the corpus")
    a("--url", default=None, help="download: a mirror of the archive (give its MD5 with --md5)")
    a("--md5", default=None, help="download: the MD5 of the mirror's archive")
    a("--xla", action="store_true",
      help="compile the training step with XLA (on our CPU slower than the default; see the README's speed table)")
    a("--mixed_precision", action="store_true",
      help="compute in float16 with float32 weights and loss scaling (Keras mixed_float16), for GPUs; off by default")
    a("--gpu", default="0", help="CUDA_VISIBLE_DEVICES value; -1 runs on the CPU")
    return p


def parse_seeds(text: str) -> list[int]:
    if not re.fullmatch(r"\s*-?\d+(\s*,\s*-?\d+)*\s*", text or ""):
        raise UserError(f"--random_seed {text!r}: expected an integer or a comma-separated list like 46,47,48")
    return [int(s) for s in text.split(",")]


def validate(args: argparse.Namespace) -> None:
    """Flag checks that need no data; each failure is one line naming the flag."""
    if not re.fullmatch(r"[A-Za-z0-9_-]+", args.data):
        raise UserError(f"--data {args.data!r}: use letters, digits, '_' or '-'")
    args.seeds = parse_seeds(args.random_seed)
    if len(args.seeds) > 1 and args.mode != "train":
        raise UserError(f"--random_seed {args.random_seed}: several seeds work with --mode train only")
    args.seed = args.seeds[0]
    for name in ("epoch", "batch_size", "lr", "filter_size", "dilation_size", "kernel_size", "stack_size",
                 "mean_signal_length", "workers", "fold", "backbone_alpha", "image_size"):
        value = getattr(args, name)
        if value is not None and value <= 0:
            raise UserError(f"--{name} {value}: must be positive")
    if args.split_fold < 2:
        raise UserError(f"--split_fold {args.split_fold}: must be at least 2")
    for name in ("dropout", "label_smoothing", "beta1", "beta2", "val_fraction"):
        value = getattr(args, name)
        if value is not None and not 0.0 <= value < 1.0:
            raise UserError(f"--{name} {value}: must be in [0, 1)")
    if args.augment < 0:
        raise UserError(f"--augment {args.augment}: must be 0 or more")
    from extract_feature import FEATURE_KINDS
    if args.features is not None and args.features not in FEATURE_KINDS:
        raise UserError(f"--features {args.features!r}: choose one of {', '.join(FEATURE_KINDS)}")
    if args.mode in ("extract", "report", "download"):
        args.features = args.features or "mfcc"
        return
    from Model import MODELS  # the other modes build a model
    if args.model not in MODELS:
        raise UserError(f"--model {args.model!r}: choose one of {', '.join(MODELS)}")
    kind = MODELS[args.model].features
    if args.features not in (None, kind):
        raise UserError(f"--features {args.features}: --model {args.model} reads {kind} features")
    args.features = kind
    if args.augment and kind != "logmel3":
        raise UserError(f"--augment {args.augment}: masks log-Mel segments; --model {args.model} reads {kind}")
    validate_backbone(args)


def validate_backbone(args: argparse.Namespace) -> None:
    """--backbone, --backbone_alpha, --backbone_weights, --image_size; a weights file becomes an absolute path."""
    from DCNN import BACKBONES, IMAGENET_ALPHAS
    if args.backbone not in BACKBONES:
        raise UserError(f"--backbone {args.backbone!r}: choose one of {', '.join(BACKBONES)}")
    has_alpha = BACKBONES[args.backbone][1]
    if not has_alpha and args.backbone_alpha != 1.0:
        raise UserError(f"--backbone_alpha {args.backbone_alpha:g}: {args.backbone} has no width multiplier "
                        "(only mobilenetv2 has)")
    if args.backbone_weights not in ("imagenet", "none"):
        if not os.path.isfile(args.backbone_weights):
            raise UserError(f"--backbone_weights {args.backbone_weights}: not imagenet, none or an existing "
                            "weights file")
        args.backbone_weights = os.path.abspath(args.backbone_weights)
    if has_alpha and args.backbone_weights == "imagenet" and args.backbone_alpha not in IMAGENET_ALPHAS:
        raise UserError(f"--backbone_alpha {args.backbone_alpha:g}: ImageNet weights exist for "
                        f"{' '.join(f'{a:g}' for a in IMAGENET_ALPHAS)} only (or use --backbone_weights none)")
    if args.image_size < 32:
        raise UserError(f"--image_size {args.image_size}: must be at least 32 (the backbones' smallest input)")


def quietly(action):
    """Run ``action()`` with TensorFlow's C++ start-up chatter (oneDNN, CUDA probing) kept off the terminal.

    Those lines are written to file descriptor 2 before any log setting applies, so stderr is
    pointed at /dev/null for the call only; an exception still propagates and prints normally.
    """
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            return action()
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def setup_tensorflow() -> None:
    """Grow GPU memory on demand; make CPU runs repeatable (same seed, same numbers)."""
    tf = quietly(lambda: __import__("tensorflow"))
    for device in quietly(lambda: tf.config.list_physical_devices("GPU")):  # CUDA probing is chatty too
        tf.config.experimental.set_memory_growth(device, True)
    tf.config.experimental.enable_op_determinism()


def configure_run(args: argparse.Namespace) -> None:
    """Threads, graph optimiser and precision for the run's model (a resumed run's own), before TensorFlow runs."""
    import keras
    from Common_Model import configure_tensorflow, load_run_state
    from Model import MODELS
    model, mixed = args.model, args.mixed_precision
    if args.mode == "train" and args.resume:
        config = load_run_state(args.resume)[0]
        model, mixed = config.model, config.mixed_precision
    configure_tensorflow(MODELS[model])
    keras.config.set_dtype_policy("mixed_float16" if mixed else "float32")


def feature_path(args: argparse.Namespace) -> str:
    """--feature_path, or the default of the feature kind: MFCC/<DATA>.npy, MFCC/<DATA>_logmel3.npy."""
    suffix = "" if args.features == "mfcc" else f"_{args.features}"
    return args.feature_path or os.path.join(HERE, "MFCC", f"{args.data}{suffix}.npy")


def known_corpora() -> str:
    import corpora
    return ", ".join(corpora.CORPORA)


def corpus_of(args: argparse.Namespace, data: dict, path: str):
    """The Corpus of ``--data``: a known one (checked against the file's labels), or the file's own labels."""
    import corpora
    stored = [str(c) for c in data["classes"]] if "classes" in data else None
    if args.data in corpora.CORPORA:
        corpus = corpora.CORPORA[args.data]
        if stored is not None and stored != list(corpus.classes):
            raise UserError(f"{path}: made for labels {', '.join(stored)}, not those of --data {args.data} "
                            f"({', '.join(corpus.classes)})")
        return corpus
    if stored is None or "signal_length" not in data:
        raise UserError(f"{path}: has no 'classes'/'signal_length' keys, so --data {args.data} (not one of "
                        f"{known_corpora()}) cannot be read from it; make it with --mode extract")
    return corpora.custom_corpus(args.data, stored, int(data["signal_length"]))


def load_data(args: argparse.Namespace, path: str = None):
    """(x, y, speakers or None, corpus) from the feature file, every check done (its kind: --model's)."""
    import extract_feature
    import corpora
    path = path or feature_path(args)
    if args.data not in corpora.CORPORA and not os.path.isfile(path):
        raise UserError(f"--data {args.data!r} is not a known corpus ({known_corpora()}) and has no feature file "
                        f"at {path}; for a dataset of your own run --mode extract --data {args.data} "
                        "--wav_path <folder or manifest.csv> first")
    data = extract_feature.load_features(path, data_key=args.data)
    corpus = corpus_of(args, data, path)
    x, y = extract_feature.validate_features(data, path, corpus, args.features, args.model)
    speakers = [str(s) for s in data["speakers"]] if "speakers" in data else None
    if args.cv == "speaker" and (speakers is None or len(speakers) != len(x) or "" in speakers):
        raise UserError(f"{path}: no speaker for every row (key 'speakers'), which --cv speaker needs; re-extract "
                        "it with --mode extract (speakers come from the file names or the manifest)")
    return x, y, speakers, corpus


def run_extract(args: argparse.Namespace) -> dict:
    import corpora
    import extract_feature
    if not args.wav_path:
        raise UserError("--wav_path: required for --mode extract (the folder or manifest of the wav files)")
    if args.data in corpora.CORPORA:
        corpus = corpora.CORPORA[args.data]
    else:  # a dataset of your own: labels from its folders or manifest, length from its files
        classes = extract_feature.dataset_classes(args.wav_path)
        provisional = corpora.custom_corpus(args.data, classes, 1)
        paths = [p for p, _, _ in extract_feature.list_corpus_files(args.wav_path, provisional)]
        length = args.mean_signal_length or extract_feature.mean_signal_length(paths)
        corpus = corpora.custom_corpus(args.data, classes, length)
        print(f"dataset {args.data} of your own: labels {', '.join(classes)}; signal length {length} samples")
    data = extract_feature.extract_corpus(args.wav_path, corpus, args.mean_signal_length, args.workers,
                                          kind=args.features)
    path = feature_path(args)
    try:
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        extract_feature.save_features(path, data)
    except OSError as exc:
        raise UserError(f"{path}: cannot write the feature file ({exc.strerror or exc})") from None
    print(f"wrote {path}: x {data['x'].shape}, y {data['y'].shape} ({', '.join(corpus.classes)})")
    return data


def run_config(args: argparse.Namespace, corpus, seed: int):
    """The RunConfig of a run: the model's recipe, overridden by every flag given."""
    from Common_Model import RunConfig
    from Model import MODELS, Hyper
    spec = MODELS[args.model]
    recipe = spec.recipe
    hyper = Hyper(args.filter_size, args.kernel_size, args.dilation_size or corpus.tab_count, args.stack_size,
                  args.dropout, args.activation, args.backbone, args.backbone_alpha, args.backbone_weights,
                  args.image_size)

    def given(value, default):
        return default if value is None else value

    config = RunConfig(model=spec.name, data=args.data, classes=list(corpus.classes), feature_path=feature_path(args),
                       split_fold=args.split_fold, random_seed=seed, epochs=args.epoch or recipe.epochs,
                       batch_size=args.batch_size or recipe.batch_size, lr=given(args.lr, recipe.lr),
                       beta1=given(args.beta1, recipe.beta1), beta2=given(args.beta2, recipe.beta2),
                       epsilon=recipe.epsilon, label_smoothing=given(args.label_smoothing, recipe.label_smoothing),
                       protocol=args.protocol, val_fraction=args.val_fraction, cv=args.cv, hyper=hyper,
                       synthetic=corpus.synthetic, xla=args.xla, mixed_precision=args.mixed_precision,
                       balance=args.balance, augment=args.augment)
    return spec, config


def run_train(args: argparse.Namespace) -> list[dict]:
    from Common_Model import cross_validate, load_run_state
    from Model import MODELS
    if args.resume:  # everything comes from the interrupted run's own record
        config, _, _ = load_run_state(args.resume)
        args.data, args.cv, args.model = config.data, config.cv, config.model
        args.features = MODELS[config.model].features
        x, y, speakers, _ = load_data(args, config.feature_path)
        return [cross_validate(MODELS[config.model], config, x, y, args.model_path, args.result_path, speakers,
                               resume=args.resume)]
    x, y, speakers, corpus = load_data(args)
    runs = []
    for seed in args.seeds:
        spec, config = run_config(args, corpus, seed)
        runs.append(cross_validate(spec, config, x, y, args.model_path, args.result_path, speakers))
    return runs


def run_test(args: argparse.Namespace) -> dict:
    from Common_Model import retest_weights
    x, y, speakers, corpus = load_data(args)
    spec, config = run_config(args, corpus, args.seed)
    if not os.path.isdir(args.test_path):
        raise UserError(f"--test_path {args.test_path}: no such folder of weight files")
    return retest_weights(spec, config, x, y, args.test_path, args.result_path, speakers)


def run_predict(args: argparse.Namespace) -> list[dict]:
    import corpora
    import predict
    if not args.wav:
        raise UserError("--wav: required for --mode predict (a wav file or a folder of them)")
    if args.data in corpora.CORPORA:
        corpus = corpora.CORPORA[args.data]
    else:  # labels and length of a dataset of your own live in its feature file
        import extract_feature
        path = feature_path(args)
        corpus = corpus_of(args, extract_feature.load_features(path, data_key=args.data), path)
    spec, config = run_config(args, corpus, args.seed)
    return predict.predict_files(spec, config.hyper, corpus, args.wav, args.test_path, args.fold, args.output)


def run_report(args: argparse.Namespace) -> dict:
    import report
    return report.write_report(args.result_path)


def run_download(args: argparse.Namespace) -> str:
    import download
    return download.download(args.data, args.download_path, args.url, args.md5)


def run_demo(args: argparse.Namespace) -> dict:
    """The embedded default: synthetic wavs -> MFCC -> k-fold training -> results -> re-test of the saved weights."""
    import synthetic_corpus
    args.data = "SYNTH"
    args.wav_path = args.wav_path or os.path.join(HERE, "synthetic_wav")
    # 108 training utterances per fold: batches of 16 give BatchNorm's moving statistics (momentum 0.99)
    # about 200 updates in 30 epochs; with batches of 64 they would barely leave their initial values.
    args.epoch = args.epoch or 30
    args.batch_size = args.batch_size or 16
    print("=== SYNTHETIC DEMO: generated harmonic signals, not speech; its numbers say nothing about any corpus ===")
    paths = synthetic_corpus.generate(args.wav_path)
    print(f"generated {len(paths)} synthetic utterances in {args.wav_path}")
    run_extract(args)
    [trained] = run_train(args)
    args.test_path = trained["record"]["weights_folder"]
    tested = run_test(args)
    same = [f["y_pred"] for f in trained["record"]["folds"]] == [f["y_pred"] for f in tested["record"]["folds"]]
    print(f"test mode on the saved weights reproduces every fold's predictions: {'yes' if same else 'NO'}")
    if not same:
        raise UserError(f"{args.test_path}: re-tested predictions differ from the training run's")
    return tested


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    os.environ["CUDA_VISIBLE_DEVICES"] = args.gpu  # before anything imports TensorFlow
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        if args.mode not in ("extract", "report", "download"):
            setup_tensorflow()
        validate(args)
        if args.mode in ("train", "test", "predict", "demo"):
            configure_run(args)
        {"extract": run_extract, "train": run_train, "test": run_test, "predict": run_predict,
         "report": run_report, "download": run_download, "demo": run_demo}[args.mode](args)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: every finished fold is saved; continue with --mode train --resume <weights folder>",
              file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
