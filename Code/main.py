"""Command line of the TIM-Net / GM-TCNet reference implementation: parse, validate, dispatch one mode.

The original's flags keep their spellings and defaults (``--mode train --data EMODB --split_fold 10
--random_seed 46`` ...). Default paths are relative to this folder, as when the original is run
from ``Code/``; paths you type are relative to where you are. Bad input ends with one line
``error: <file or flag>: <what is wrong>`` and exit status 2.
"""

from __future__ import annotations

import argparse
import os
import sys

from errors import UserError

HERE = os.path.dirname(os.path.abspath(__file__))
MODES = ("train", "test", "extract", "demo")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description="TIM-Net and GM-TCNet speech emotion recognition: extract MFCC features, "
                                            "train with k-fold cross-validation, re-test saved weights.")
    a = p.add_argument
    a("--mode", default="train", choices=MODES,
      help="extract: wav -> MFCC file; train: k-fold training; test: re-test saved weights; "
           "demo: the whole pipeline on a generated synthetic corpus")
    a("--model", default="TIMNET", help="network: TIMNET (default) or GMTCN; each brings its paper's recipe")
    a("--data", default="EMODB", help="corpus key: CASIA EMODB EMOVO IEMOCAP RAVDE SAVEE (or SYNTH)")
    a("--feature_path", default=None, help="MFCC feature file to read or write (default ./MFCC/<DATA>.npy)")
    a("--wav_path", default=None, help="extract: folder of wav files, <folder>/<class>/*.wav or the corpus' own naming")
    a("--mean_signal_length", type=int, default=None,
      help="extract: samples every utterance is centred to (default: the corpus' value, SPEC §1)")
    a("--workers", type=int, default=None, help="extract: parallel processes (default: all cores)")
    a("--protocol", default="last_epoch", choices=("last_epoch", "paper"),
      help="model selection: last_epoch (honest, default) or paper (keeps the epoch best on the TEST fold)")
    a("--split_fold", type=int, default=10, help="number of cross-validation folds")
    a("--random_seed", type=int, default=46, help="seed of the fold split, the initial weights and the shuffling")
    a("--epoch", type=int, default=None, help="training epochs (default: the model's recipe, TIMNET 500, GMTCN 300)")
    a("--batch_size", type=int, default=None, help="mini-batch size (default 64; the demo 16)")
    a("--lr", type=float, default=0.001, help="Adam learning rate")
    a("--beta1", type=float, default=0.93, help="Adam beta_1")
    a("--beta2", type=float, default=0.98, help="Adam beta_2")
    a("--label_smoothing", type=float, default=None,
      help="label smoothing of the training labels (default: the model's recipe, TIMNET 0.1, GMTCN 0)")
    a("--dropout", type=float, default=0.1, help="TIMNET: SpatialDropout1D rate in each temporal-aware block")
    a("--activation", default="relu", help="TIMNET: activation in each temporal-aware block")
    a("--filter_size", type=int, default=39, help="channels of every convolution")
    a("--dilation_size", type=int, default=None,
      help="TIMNET: temporal-aware blocks per direction (default: the corpus' value, 8; IEMOCAP 10)")
    a("--kernel_size", type=int, default=2, help="taps of the dilated causal convolutions")
    a("--stack_size", type=int, default=1, help="TIMNET: repetitions of the block stack")
    a("--model_path", default=os.path.join(HERE, "Models"), help="folder that receives each run's weights folder")
    a("--result_path", default=os.path.join(HERE, "Results"), help="folder that receives results (xlsx, json, png)")
    a("--test_path", default=os.path.join(HERE, "Test_Models", "EMODB_46"),
      help="test: folder of <k>-fold_weights_best_<i>.hdf5 files")
    a("--gpu", default="0", help="CUDA_VISIBLE_DEVICES value; -1 runs on the CPU")
    return p


def _check_positive(name: str, value, allow_zero: bool = False) -> None:
    if value is not None and (value < 0 or (value == 0 and not allow_zero)):
        raise UserError(f"--{name} {value}: must be {'>= 0' if allow_zero else 'positive'}")


def validate(args: argparse.Namespace) -> None:
    """Flag checks that need no data; each failure is one line naming the flag."""
    import corpora
    corpora.get_corpus(args.data)
    if args.mode != "extract":  # extract never imports TensorFlow
        from Model import MODELS
        if args.model not in MODELS:
            raise UserError(f"--model {args.model!r}: choose one of {', '.join(MODELS)}")
    for name in ("epoch", "batch_size", "lr", "filter_size", "dilation_size", "kernel_size", "stack_size",
                 "mean_signal_length", "workers"):
        _check_positive(name, getattr(args, name))
    if args.split_fold < 2:
        raise UserError(f"--split_fold {args.split_fold}: must be at least 2")
    for name in ("dropout", "label_smoothing", "beta1", "beta2"):
        value = getattr(args, name)
        if value is not None and not 0.0 <= value < 1.0:
            raise UserError(f"--{name} {value}: must be in [0, 1)")


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


def feature_path(args: argparse.Namespace) -> str:
    return args.feature_path or os.path.join(HERE, "MFCC", f"{args.data}.npy")


def run_extract(args: argparse.Namespace) -> dict:
    import corpora
    import extract_feature
    if not args.wav_path:
        raise UserError("--wav_path: required for --mode extract (the folder holding the wav files)")
    corpus = corpora.get_corpus(args.data)
    data = extract_feature.extract_corpus(args.wav_path, corpus, args.mean_signal_length, args.workers)
    path = feature_path(args)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    extract_feature.save_features(path, data)
    print(f"wrote {path}: x {data['x'].shape}, y {data['y'].shape} ({', '.join(corpus.classes)})")
    return data


def run_config(args: argparse.Namespace, x_shape: tuple):
    """The RunConfig of a train or test run: the model's recipe, overridden by every flag given."""
    import corpora
    from Common_Model import RunConfig
    from Model import MODELS, Hyper
    spec, corpus = MODELS[args.model], corpora.get_corpus(args.data)
    recipe = spec.recipe
    hyper = Hyper(args.filter_size, args.kernel_size, args.dilation_size or corpus.tab_count, args.stack_size,
                  args.dropout, args.activation)
    config = RunConfig(model=spec.name, data=args.data, classes=list(corpus.classes), feature_path=feature_path(args),
                       split_fold=args.split_fold, random_seed=args.random_seed, epochs=args.epoch or recipe.epochs,
                       batch_size=args.batch_size or recipe.batch_size, lr=args.lr, beta1=args.beta1, beta2=args.beta2,
                       epsilon=recipe.epsilon,
                       label_smoothing=recipe.label_smoothing if args.label_smoothing is None else args.label_smoothing,
                       protocol=args.protocol, hyper=hyper, synthetic=corpus.synthetic)
    return spec, config


def load_data(args: argparse.Namespace):
    import corpora
    import extract_feature
    path = feature_path(args)
    data = extract_feature.load_features(path, data_key=args.data)
    return extract_feature.validate_features(data, path, corpora.get_corpus(args.data))


def run_train(args: argparse.Namespace) -> dict:
    from Common_Model import cross_validate
    x, y = load_data(args)
    spec, config = run_config(args, x.shape)
    return cross_validate(spec, config, x, y, args.model_path, args.result_path)


def run_test(args: argparse.Namespace) -> dict:
    from Common_Model import retest_weights
    x, y = load_data(args)
    spec, config = run_config(args, x.shape)
    if not os.path.isdir(args.test_path):
        raise UserError(f"--test_path {args.test_path}: no such folder of weight files")
    return retest_weights(spec, config, x, y, args.test_path, args.result_path)


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
    trained = run_train(args)
    args.test_path = trained["record"]["weights_folder"]
    tested = run_test(args)
    same = [f["war"] for f in trained["record"]["folds"]] == [f["war"] for f in tested["record"]["folds"]]
    print(f"test mode on the saved weights reproduces every fold's accuracy: {'yes' if same else 'NO'}")
    if not same:
        raise UserError(f"{args.test_path}: re-tested accuracies differ from the training run's")
    return tested


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    os.environ["CUDA_VISIBLE_DEVICES"] = args.gpu  # before anything imports TensorFlow
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        if args.mode != "extract":
            setup_tensorflow()
        validate(args)
        {"extract": run_extract, "train": run_train, "test": run_test, "demo": run_demo}[args.mode](args)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: the weights of every finished fold are saved", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
