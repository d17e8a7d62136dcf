"""Tone generation and analysis shared by unit and integration tests."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

Float = npt.NDArray[np.float64]


def tone(freq: float, rate: int, seconds: float, amplitude: float = 0.5) -> Float:
    """A sine wave of ``freq`` Hz as float64 samples."""
    t = np.arange(int(rate * seconds)) / rate
    return amplitude * np.sin(2 * np.pi * freq * t)


def s16_stereo_to_float(raw: bytes) -> Float:
    """Interleaved S16LE stereo bytes -> frames x 2 floats in [-1, 1]."""
    usable = len(raw) - len(raw) % 4
    return np.frombuffer(raw[:usable], dtype="<i2").reshape(-1, 2).astype(np.float64) / 32768.0


def dominant_frequency(samples: Float, rate: int) -> float:
    """The frequency (Hz) of the strongest spectral peak of a mono signal."""
    windowed = samples * np.hanning(len(samples))
    spectrum = np.abs(np.fft.rfft(windowed))
    spectrum[0] = 0.0
    peak = int(np.argmax(spectrum))
    # Parabolic interpolation around the peak bin for sub-bin accuracy.
    if 0 < peak < len(spectrum) - 1:
        a, b, c = np.log(spectrum[peak - 1 : peak + 2] + 1e-12)
        peak_f = peak + 0.5 * (a - c) / (a - 2 * b + c)
    else:
        peak_f = float(peak)
    return float(peak_f * rate / len(samples))


def band_energy(samples: Float, rate: int, freq: float, width: float = 20.0) -> float:
    """Fraction of the signal's energy within ``freq`` +- ``width`` Hz."""
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(len(samples)))) ** 2
    freqs = np.fft.rfftfreq(len(samples), 1 / rate)
    total = float(spectrum[1:].sum()) or 1e-30
    return float(spectrum[(freqs > freq - width) & (freqs < freq + width)].sum() / total)


def rms(samples: Float) -> float:
    return float(np.sqrt(np.mean(np.square(samples))))


def tone_amplitudes(
    samples: Float, rate: int, freqs: tuple[float, ...], window: int = 960
) -> npt.NDArray[np.float64]:
    """Per window of ``window`` samples, the amplitude of each of ``freqs`` (windows x freqs).

    A least-squares fit of a sine and cosine per frequency (and a constant):
    exact for steady tones whatever the window holds of their period.
    """
    count = len(samples) // window
    t = np.arange(window) / rate
    basis = np.column_stack(
        [f(2 * np.pi * freq * t) for freq in freqs for f in (np.sin, np.cos)] + [np.ones(window)]
    )
    pinv = np.linalg.pinv(basis)
    out = np.zeros((count, len(freqs)))
    for i in range(count):
        block = samples[i * window : (i + 1) * window]
        # The phase moves from window to window; the fit absorbs it.
        coef = pinv @ block
        out[i] = np.hypot(coef[0 : 2 * len(freqs) : 2], coef[1 : 2 * len(freqs) : 2])
    return out


def highband_peaks(samples: Float, rate: int, cutoff: float, window: int = 480) -> Float:
    """Per window, the peak of what lies above ``cutoff`` Hz: clicks, not tones below it."""
    spectrum = np.fft.rfft(samples)
    spectrum[np.fft.rfftfreq(len(samples), 1 / rate) < cutoff] = 0
    high = np.fft.irfft(spectrum, len(samples))
    count = len(high) // window
    peaks: Float = np.abs(high[: count * window]).reshape(count, window).max(axis=1)
    return peaks


def db(value: float) -> float:
    return float(20 * np.log10(max(value, 1e-12)))
