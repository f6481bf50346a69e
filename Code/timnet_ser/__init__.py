"""timnet_ser: TIM-Net, GM-TCNet and DCNN-BLSTMwA speech emotion recognition, from Python.

    import timnet_ser
    run = timnet_ser.load_run("Code/Models/<run>")            # or the authors' folder with data="EMODB"
    run.predict("speech.wav")[0]["label"]

The program's modules live beside this package, in ``Code/`` (the original's layout, where ``python main.py``
runs them); installing the project (``pip install -e .``) puts that folder on the import path. ``load_run`` and
``Run`` are api.py's; importing this package does not start TensorFlow, ``load_run`` does.
"""

__version__ = "2.0.0"
__all__ = ["Run", "load_run", "__version__"]


def __getattr__(name: str):
    if name in ("Run", "load_run"):
        import api
        return getattr(api, name)
    raise AttributeError(f"module 'timnet_ser' has no attribute {name!r}")
