"""deploy: using a trained run: the Python API (api: load_run, Run), prediction of audio files (predict) and
export to ONNX, TFLite and SavedModel (export). Imports the engine and everything below it."""
