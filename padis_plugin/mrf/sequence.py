"""Inversion-recovery FISP fingerprinting sequences: the flip-angle / TR train simulated by :mod:`.epg`.

The default train follows Jiang et al., "MR fingerprinting using fast imaging with steady state precession (FISP)
with spiral readout", MRM 74:1621 (2015): an ideal 180-degree inversion, 18 ms wait, then 1000 TRs whose flip angles
form five half-sine lobes, with a smoothly varying TR between 11.67 and 14.33 ms and TE 1.908 ms. MRF-DiPh keeps the
first 200 TRs ("cut 3").
"""
from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass

from ..errors import ConfigError

# Jiang et al. (2015), Fig. 1: lobe boundaries (TR index) and peak flip angles (degrees).
JIANG_LOBE_BOUNDS = (0, 200, 410, 620, 830, 1000)
JIANG_LOBE_PEAKS_DEG = (35.0, 43.0, 70.0, 45.0, 27.0)
JIANG_TR_RANGE_MS = (11.67, 14.33)
JIANG_TE_MS = 1.908
JIANG_INVERSION_DELAY_MS = 18.0


def _floats(values, name: str) -> tuple:
    try:
        out = tuple(float(v) for v in values)
    except (TypeError, ValueError) as e:
        raise ConfigError(f"FISPSequence: {name} must be a sequence of numbers ({e})") from None
    if not all(math.isfinite(v) for v in out):
        raise ConfigError(f"FISPSequence: {name} has a non-finite value")
    return out


@dataclass(frozen=True)
class FISPSequence:
    """One fingerprinting train: TR ``t`` applies an RF pulse of ``flip_angles_deg[t]``, samples the echo at
    ``te_ms`` and ends after ``tr_ms[t]`` with one unit of unbalanced-gradient dephasing (FISP).

    If ``inversion``, an ideal 180-degree pulse precedes the train by ``inversion_delay_ms`` (the wait between the
    inversion and the first RF pulse; transverse magnetisation is spoiled during it).
    """

    flip_angles_deg: tuple
    tr_ms: tuple
    te_ms: float
    inversion_delay_ms: float
    inversion: bool = True

    def __post_init__(self):
        fa = _floats(self.flip_angles_deg, "flip_angles_deg")
        tr = _floats(self.tr_ms, "tr_ms")
        object.__setattr__(self, "flip_angles_deg", fa)
        object.__setattr__(self, "tr_ms", tr)
        te = _floats([self.te_ms], "te_ms")[0]
        delay = _floats([self.inversion_delay_ms], "inversion_delay_ms")[0]
        object.__setattr__(self, "te_ms", te)
        object.__setattr__(self, "inversion_delay_ms", delay)
        object.__setattr__(self, "inversion", bool(self.inversion))
        if len(fa) == 0:
            raise ConfigError("FISPSequence: needs at least one frame (flip_angles_deg is empty)")
        if len(fa) != len(tr):
            raise ConfigError(f"FISPSequence: {len(fa)} flip angles but {len(tr)} TRs (need one TR per frame)")
        if not all(0.0 <= a <= 180.0 for a in fa):
            raise ConfigError(f"FISPSequence: flip angles must lie in [0, 180] degrees "
                              f"(got {min(fa):g} .. {max(fa):g})")
        if te <= 0:
            raise ConfigError(f"FISPSequence: te_ms must be > 0 (got {te:g})")
        if min(tr) <= te:
            raise ConfigError(f"FISPSequence: every TR must exceed TE = {te:g} ms (shortest TR {min(tr):g} ms)")
        if delay < 0:
            raise ConfigError(f"FISPSequence: inversion_delay_ms must be >= 0 (got {delay:g})")

    @property
    def frames(self) -> int:
        """Number of TRs (= time frames, one echo each)."""
        return len(self.flip_angles_deg)

    def truncated(self, n: int) -> "FISPSequence":
        """The first ``n`` TRs of the train (1 <= n <= frames)."""
        if not 1 <= int(n) <= self.frames:
            raise ConfigError(f"FISPSequence.truncated: n must be in 1..{self.frames} (got {n})")
        n = int(n)
        return FISPSequence(self.flip_angles_deg[:n], self.tr_ms[:n], self.te_ms, self.inversion_delay_ms,
                            self.inversion)

    def to_dict(self) -> dict:
        """Plain JSON-able dict (lists of floats); :meth:`from_dict` inverts it."""
        return {"flip_angles_deg": list(self.flip_angles_deg), "tr_ms": list(self.tr_ms), "te_ms": self.te_ms,
                "inversion_delay_ms": self.inversion_delay_ms, "inversion": self.inversion}

    @classmethod
    def from_dict(cls, d: dict) -> "FISPSequence":
        keys = {"flip_angles_deg", "tr_ms", "te_ms", "inversion_delay_ms"}
        if not isinstance(d, dict) or not keys <= set(d):
            missing = sorted(keys - set(d)) if isinstance(d, dict) else sorted(keys)
            raise ConfigError(f"FISPSequence.from_dict: missing keys {missing}")
        extra = set(d) - keys - {"inversion"}
        if extra:
            raise ConfigError(f"FISPSequence.from_dict: unknown keys {sorted(extra)}")
        return cls(d["flip_angles_deg"], d["tr_ms"], d["te_ms"], d["inversion_delay_ms"], d.get("inversion", True))

    def key(self) -> str:
        """Stable short hash (16 hex digits of sha256 over canonical JSON, floats by ``repr``) for cache names."""
        text = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def _smooth_tr_ms(n: int) -> list:
    """Deterministic smooth TR curve over ``n`` TRs spanning exactly ``JIANG_TR_RANGE_MS``.

    Jiang et al. drew TR from Perlin noise; we use a fixed sum of three sinusoids with incommensurate periods
    (about 310, 170 and 95 TRs), rescaled to [11.67, 14.33] ms over the full 1000-TR train, which is smooth
    and non-periodic over the train like the published curve (the exact published values are not reproduced).
    """
    raw = [math.sin(2 * math.pi * t / 310.0) + 0.6 * math.sin(2 * math.pi * t / 170.0 + 1.0)
           + 0.35 * math.sin(2 * math.pi * t / 95.0 + 2.0) for t in range(n)]
    lo, hi = min(raw), max(raw)
    a, b = JIANG_TR_RANGE_MS
    return [a + (b - a) * (r - lo) / (hi - lo) for r in raw]


def jiang_fisp(frames: int = 200) -> FISPSequence:
    """The Jiang et al. (2015) IR-FISP train, first ``frames`` of its 1000 TRs (default 200: MRF-DiPh "cut 3").

    Flip angle in lobe ``l`` (TR indices ``b_l <= t < b_{l+1}``) is ``peak_l * sin(pi (t - b_l + 0.5) / len_l)``:
    half-sine lobes sampled at TR mid-points, so no flip angle is exactly zero. TR: see :func:`_smooth_tr_ms`.
    """
    total = JIANG_LOBE_BOUNDS[-1]
    if not 1 <= int(frames) <= total:
        raise ConfigError(f"jiang_fisp: frames must be in 1..{total} (got {frames})")
    fa = []
    for lo, hi, peak in zip(JIANG_LOBE_BOUNDS[:-1], JIANG_LOBE_BOUNDS[1:], JIANG_LOBE_PEAKS_DEG):
        fa += [peak * math.sin(math.pi * (t - lo + 0.5) / (hi - lo)) for t in range(lo, hi)]
    seq = FISPSequence(tuple(fa), tuple(_smooth_tr_ms(total)), JIANG_TE_MS, JIANG_INVERSION_DELAY_MS, True)
    return seq.truncated(int(frames))
