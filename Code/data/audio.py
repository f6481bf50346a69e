"""Audio in: a file decoded as the original reads it (librosa, mono, 22 050 Hz), samples resampled, a signal
centred to a fixed length, and the one rule for which files count as audio. Knows nothing about features."""

from __future__ import annotations

import errno
import os
import warnings
from typing import Optional

import numpy as np

from ..core.errors import UserError
from .corpora import SAMPLE_RATE

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".opus", ".aiff", ".aif", ".mp3")
AUDIO_KINDS = "wav, flac, ogg, opus, aiff, aif, mp3"  # how messages and help name them


def _decode_reason(exc: BaseException) -> str:
    """The most telling short reason in an exception chain.

    librosa tries libsndfile first and then audioread, whose errors often carry no message; the libsndfile
    error it raised on the way (the chain's context) says what is wrong with the file.
    """
    chain = []
    while exc is not None and exc not in chain:
        chain.append(exc)
        exc = exc.__context__
    for error in chain:
        if getattr(error, "error_string", ""):  # soundfile.LibsndfileError without the path
            return error.error_string.strip()
    for error in chain:
        if str(error).strip():
            return str(error).strip().splitlines()[0]
    names = {"NoBackendError": "no decoder recognises it", "EOFError": "the file ends early"}
    return names.get(type(chain[0]).__name__, type(chain[0]).__name__)


MIN_SAMPLE_RATE = 1000  # no speech recording has fewer samples per second; 16 is a rate given in kHz
# no audio interface records faster; 2^70 hung the resampler, and 1e7 to 1e12 resampled a signal to nothing
MAX_SAMPLE_RATE = 768_000
MAX_FILE_SECONDS = 600  # what is read whole: a few hundred kB of compressed silence at 192 kHz decoded to gigabytes


def _wav_data_chunk(path: str) -> Optional[tuple[int, int, int]]:
    """(offset of the samples, bytes of samples the header declares, bytes per second) of a RIFF/WAVE file; None
    for another file, and for a header that declares no length (a streamed wav: 0 or 0xFFFFFFFF)."""
    with open(path, "rb") as file:
        head = file.read(12)
        if len(head) < 12 or head[:4] != b"RIFF" or head[8:] != b"WAVE":
            return None
        byte_rate = 0
        while True:  # chunks: 4-byte name, 4-byte little-endian size, the data, a pad byte after an odd size
            chunk = file.read(8)
            if len(chunk) < 8:
                return None
            name, size = chunk[:4], int.from_bytes(chunk[4:], "little")
            if name == b"data":
                return (file.tell(), size, byte_rate) if byte_rate and 0 < size < 0xFFFFFFFF else None
            if name == b"fmt ":
                byte_rate = int.from_bytes(file.read(size)[8:12], "little")  # nAvgBytesPerSec
                file.seek(size % 2, os.SEEK_CUR)
            else:
                file.seek(size + size % 2, os.SEEK_CUR)


def check_audio_header(path: str, read_whole: bool = True) -> None:
    """One line for a file longer than ``MAX_FILE_SECONDS`` (its header's length, where libsndfile reads it), before
    it is decoded whole (``read_whole``; the timeline streams it instead), and for a wav whose samples end before
    its header says (a copy that did not finish, which libsndfile decodes as a shorter recording)."""
    import soundfile
    try:
        info = soundfile.info(path)
    except Exception:  # not libsndfile's (mp3): decoded as librosa does, or named as undecodable there
        return
    if read_whole and info.samplerate > 0 and info.frames / info.samplerate > MAX_FILE_SECONDS:
        raise UserError(f"{path}: {info.frames / info.samplerate / 60:.1f} min of audio; a file is read whole up to "
                        f"{MAX_FILE_SECONDS // 60} min (--timeline reads a longer one window by window)")
    chunk = _wav_data_chunk(path) if info.format in ("WAV", "WAVEX") else None
    if chunk and os.path.getsize(path) < chunk[0] + chunk[1]:
        declared = chunk[1] / chunk[2]
        raise UserError(f"{path}: cut short: its header declares {declared:.2f} s of audio, the file holds "
                        f"{info.frames / info.samplerate:.2f} s (a copy that did not finish?); copy it again")


def check_audio_file(path: str, read_whole: bool = True) -> None:
    """What can be said of an audio file before it is decoded, each in one line: a folder, missing (a link that
    leads nowhere or round in a loop too), empty, too long to be read whole (``read_whole``; the timeline streams
    any length) or cut short (``check_audio_header``)."""
    if os.path.isdir(path):  # a folder among a list's paths
        raise UserError(f"{path}: a folder, not an audio file")
    if not os.path.isfile(path):
        raise UserError(f"{path}: {missing(path, 'audio file')}")
    if os.path.getsize(path) == 0:
        raise UserError(f"{path}: the file is empty")
    check_audio_header(path, read_whole)


def missing(path: str, what: str) -> str:
    """Why a path that is not there is not: a link that leads round in a loop (said "no such file" before), or
    ``no such <what>``."""
    try:
        os.stat(path)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return "a link that leads round in a loop"
    return f"no such {what}"


def not_finite(path: str) -> UserError:
    """A float file holding NaN or Inf samples, whether decoded whole or in blocks."""
    return UserError(f"{path}: holds samples that are NaN or Inf (a float file written from a failed computation); "
                     "write it again from finite samples")


def load_audio(path: str) -> np.ndarray:
    """``librosa.load`` with its defaults, as the original: mono, resampled to 22 050 Hz; (s,) float32."""
    import librosa
    check_audio_file(path)
    try:
        with warnings.catch_warnings():  # librosa warns before falling back to audioread; the error says it all
            warnings.simplefilter("ignore")
            signal, _ = librosa.load(path)  # librosa's defaults, as the original: sr=22050, mono=True
    except Exception as exc:  # soundfile and audioread raise many types; all mean "not decodable"
        reason = _decode_reason(exc)
        if "not finite" in reason:  # librosa's check of the decoded samples: a float file holding NaN or Inf
            raise not_finite(path) from None
        raise UserError(f"{path}: cannot be decoded as audio ({reason})") from None
    if signal.size == 0:
        raise UserError(f"{path}: holds no audio samples")
    return signal


def resample(samples, sample_rate) -> np.ndarray:
    """Samples of any rate, (s,) or (s, channels), as ``librosa.load`` would return them: mono at 22 050 Hz.

    Integer PCM (int16 as ``scipy.io.wavfile.read`` returns it, int32, 8-bit unsigned) is scaled to [-1, 1) as
    soundfile scales such a file when librosa reads it, so that an array predicts as its file does; floats are
    taken as they are. One line for a rate that is not a positive whole number, an array of another shape or of
    NaN or Inf, and a (channels, samples) array (``librosa.load(mono=False)``'s layout), which would otherwise be
    averaged over its samples."""
    import librosa
    number = (int, float, np.integer, np.floating)
    if isinstance(samples, number) and not isinstance(sample_rate, number):  # scipy.io.wavfile.read's order
        raise UserError(f"(samples, sample_rate): got a number, then {type(sample_rate).__name__}: as "
                        "scipy.io.wavfile.read returns them, (sample_rate, samples); pass (samples, sample_rate)")
    if (isinstance(sample_rate, bool) or not isinstance(sample_rate, number)
            or not (sample_rate > 0 and float(sample_rate).is_integer())):
        shown = repr(sample_rate) if isinstance(sample_rate, (*number, str)) or sample_rate is None else \
            f"of type {type(sample_rate).__name__}"  # an array's repr ran over many lines
        raise UserError(f"sample_rate {shown}: must be a positive whole number of samples per second")
    if sample_rate > MAX_SAMPLE_RATE:
        raise UserError(f"sample_rate {sample_rate!r}: above {MAX_SAMPLE_RATE} samples per second, which no audio "
                        "interface records")
    if sample_rate < MIN_SAMPLE_RATE:  # a rate in kHz: resampled up to 22 050 Hz, 2 s at 16 took minutes and GBs
        raise UserError(f"sample_rate {sample_rate!r}: below {MIN_SAMPLE_RATE} samples per second; give the rate in "
                        "Hz (16000, not 16)")
    array = np.asarray(samples)
    if array.dtype.kind not in "iuf" or array.ndim not in (1, 2) or array.size == 0:
        raise UserError(f"audio array of shape {array.shape} ({array.dtype}): expected numbers, (samples,) or "
                        "(samples, channels)")
    if array.ndim == 2 and array.shape[1] > array.shape[0]:
        raise UserError(f"audio array of shape {array.shape}: more channels than samples; (samples, channels) is "
                        "expected, as soundfile reads a file: pass a (channels, samples) array transposed (.T)")
    if array.dtype.kind in "iu" and array.dtype.itemsize > 4:  # no PCM is 64-bit: np.array(a list) makes int64
        raise UserError(f"audio array of {array.dtype}: no PCM format holds 64-bit samples, so its full scale is "
                        "unknown (int16 values divided by 2^63 were all silence); give int16 or int32 PCM "
                        "(np.asarray(samples, dtype=np.int16)) or floats in [-1, 1]")
    if array.dtype.kind in "iu":  # full scale 2^(bits - 1); unsigned PCM is centred on it
        full_scale = 2.0 ** (8 * array.dtype.itemsize - 1)
        array = (array.astype(np.float64) - (full_scale if array.dtype.kind == "u" else 0.0)) / full_scale
    signal = array.astype(np.float32)
    if not np.isfinite(signal).all():
        raise UserError(f"audio array of shape {array.shape}: holds NaN or Inf values")
    if signal.ndim == 2:  # (s, channels), soundfile's layout; librosa.load averages the channels
        signal = signal.mean(axis=1)
    if sample_rate != SAMPLE_RATE:
        signal = librosa.resample(signal, orig_sr=int(sample_rate), target_sr=SAMPLE_RATE)  # load's soxr_hq
    return signal


def centre(signal: np.ndarray, signal_length: int) -> np.ndarray:
    """Centred to exactly ``signal_length`` samples (SPEC §1.2): zero-padded around, or its middle cut: (L,)."""
    s = len(signal)
    if s < signal_length:  # zero-pad floor((L - s) / 2) on the left, the rest on the right
        left = (signal_length - s) // 2
        return np.pad(signal, (left, signal_length - s - left)).astype(np.float32)
    start = (s - signal_length) // 2  # crop the middle: signal[p : p + L], p = floor((s - L) / 2)
    return signal[start:start + signal_length].astype(np.float32)


def load_centered(path: str, signal_length: int) -> np.ndarray:
    """``librosa.load`` (mono, 22 050 Hz), then centred to exactly ``signal_length`` samples (SPEC §1.2): (L,)."""
    return centre(load_audio(path), signal_length)


def _hidden(name: str) -> bool:
    # macOS archives carry "._03a01Wa.wav" resource forks and __MACOSX/ copies that are not audio
    return name.startswith(".") or name == "__MACOSX"


def is_audio(name: str) -> bool:
    """The one rule for what counts as an audio file, in a folder as given one by one: a visible file whose
    extension libsndfile (wav, flac, ogg, opus, aiff) or librosa's fallback (mp3) decodes."""
    return name.lower().endswith(AUDIO_EXTENSIONS) and not _hidden(os.path.basename(name))


def audio_files(folder: str) -> list[str]:
    """Every audio file (``is_audio``) below ``folder``, hidden files and folders left out, in a fixed order; a
    linked folder is followed (it was skipped without a word), each real folder once (a link to a folder above
    would loop)."""
    return audio_and_other_files(folder)[0]


def audio_and_other_files(folder: str) -> tuple[list[str], list[str]]:
    """``audio_files`` of ``folder``, and the visible files it leaves out (an .m4a, a transcript), from one walk."""
    found = _visible_files(folder)
    return [path for path in found if is_audio(path)], [path for path in found if not is_audio(path)]


def _visible_files(folder: str) -> list[str]:
    found, walked = [], set()
    for root, dirs, names in os.walk(folder, followlinks=True):
        real = os.path.realpath(root)
        if real in walked:
            dirs[:] = []
            continue
        walked.add(real)
        dirs[:] = sorted(d for d in dirs if not _hidden(d))
        found += [os.path.join(root, n) for n in sorted(names) if not _hidden(n)]
    return found
