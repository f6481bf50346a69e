"""timnet_ser: TIM-Net, GM-TCNet and DCNN-BLSTMwA speech emotion recognition, from Python.

    import timnet_ser
    run = timnet_ser.load_run("Code/Models/<run>")            # or the authors' Test_Models/EMODB_46
    run.predict("speech.wav")[0]["label"]
    run = timnet_ser.train(data="EMODB", feature_path="MFCC/EMODB.npy", epoch=300)   # --mode train's flags

This folder, ``Code/`` (the original's layout, where ``python main.py`` runs), is the package: installing the
project (``pip install -e .``) maps ``timnet_ser`` onto it, and ``main.py`` run as a script loads it under that
name. Its modules import each other relatively, so a user's own ``main.py`` or ``settings.py`` never stands in for
one of them. ``load_run`` and ``Run`` are api.py's, ``train`` cli/training_api.py's; importing the package does not
start TensorFlow, ``load_run`` and ``train`` do.
"""

__version__ = "2.0.0"
__all__ = ["Run", "load_run", "train", "__version__"]


def __getattr__(name: str):
    if name in ("Run", "load_run"):
        from .deploy import api
        return getattr(api, name)
    if name == "train":
        from .cli.training_api import train
        return train
    raise AttributeError(f"module 'timnet_ser' has no attribute {name!r}")
