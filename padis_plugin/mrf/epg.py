"""Extended-phase-graph (EPG) simulation of inversion-recovery FISP fingerprints (Weigel, JMRI 41:266, 2015).

Conventions
-----------
* Times: T1 / T2 in **seconds**, sequence times in ms (:class:`.sequence.FISPSequence`).
* RF pulses rotate about the **y** axis (RF phase 90 degrees in Weigel's eq. 15, right-handed): from equilibrium a
  pulse of angle a gives ``Mx = sin a``. All EPG transition coefficients are then real, and so are all states of
  a FISP train: the returned signal is **real** (``F0`` at TE = ``Mx``, ``My = 0``) and carries the sign of the
  longitudinal magnetisation, so an inversion shows up as a negative early signal.
* M0 = 1: the fingerprint of a voxel with proton density PD is ``PD * simulate_fisp(...)``.

State storage (why it is fast): the FISP gradient shifts every ``F+_k`` to ``k + 1`` and every ``F-_k`` to ``k - 1``
each TR. Rather than moving data, ``F+`` lives in a buffer read through a window that slides down by one slot per
TR and ``F-`` in one whose window slides up, so the shift costs one copy (the new ``F+_0 = conj(F-_0)``).
Only the states that can be non-zero (order <= t after t TRs) and can still refocus before the last echo
(order < frames - t) are touched: at most frames / 2 + 1, a quarter of the full triangle's work, with no error.
"""
from __future__ import annotations

import math

import torch

from ..errors import ConfigError, DataError
from .sequence import FISPSequence


def _tissues(t1, t2=None, dtype=torch.float64):
    t1 = torch.as_tensor(t1, dtype=dtype)
    if t1.ndim != 1 or t1.numel() == 0:
        raise DataError(f"EPG: t1 must be a non-empty 1-D tensor (got shape {tuple(t1.shape)})")
    if not bool(torch.isfinite(t1).all()) or bool((t1 <= 0).any()):
        raise DataError("EPG: t1 must be finite and > 0 (seconds)")
    if t2 is None:
        return t1, None
    t2 = torch.as_tensor(t2, dtype=dtype, device=t1.device)
    if t2.shape != t1.shape:
        raise DataError(f"EPG: t1 and t2 must have the same shape (got {tuple(t1.shape)} and {tuple(t2.shape)})")
    if not bool(torch.isfinite(t2).all()) or bool((t2 <= 0).any()):
        raise DataError("EPG: t2 must be finite and > 0 (seconds)")
    return t1, t2


def _check_sequence(sequence):
    if not isinstance(sequence, FISPSequence):
        raise ConfigError(f"EPG: sequence must be a FISPSequence (got {type(sequence).__name__})")


def _initial_z0(sequence: FISPSequence, t1: torch.Tensor) -> torch.Tensor:
    """Z0 just before the first RF pulse: ideal inversion (Mz: 1 -> -1), then T1 recovery over the delay."""
    if not sequence.inversion:
        return torch.ones_like(t1)
    e1 = torch.exp(-sequence.inversion_delay_ms * 1e-3 / t1)
    return 1.0 - 2.0 * e1


def simulate_fisp(sequence: FISPSequence, t1, t2, *, dtype=torch.float64, max_states: int | None = None,
                  chunk: int = 1024) -> torch.Tensor:
    """IR-FISP fingerprints by EPG: (n_atoms, frames) real tensor of ``dtype`` on ``t1``'s device.

    ``t1``, ``t2``: (n_atoms,) seconds. Per TR: RF rotation (about y) of all (F+, F-, Z) states; the signal is
    ``F+_0`` after relaxation over TE; relaxation over the whole TR (exact: relaxation is linear, so TE and
    TR - TE compose) with Z0 recovering towards 1; then the FISP dephasing shift by one state.
    ``max_states`` caps the number of kept states (default: all that can affect an echo, exact; a cap of
    frames / 4 gives a relative error of about 1e-2 for Jiang's 200 TRs); ``chunk`` atoms are simulated at a time
    so the working set stays in cache.
    """
    _check_sequence(sequence)
    t1, t2 = _tissues(t1, t2, dtype)
    n, frames = t1.numel(), sequence.frames
    cap = frames if max_states is None else int(max_states)
    if cap < 1:
        raise ConfigError(f"simulate_fisp: max_states must be >= 1 (got {max_states})")
    out = torch.empty(n, frames, dtype=dtype, device=t1.device)
    for s in range(0, n, chunk):
        out[s:s + chunk] = _fisp_chunk(sequence, t1[s:s + chunk], t2[s:s + chunk], cap).T
    return out


def _fisp_chunk(sequence: FISPSequence, t1, t2, cap: int) -> torch.Tensor:
    n, frames = t1.numel(), sequence.frames
    dev, dt = t1.device, t1.dtype
    te = sequence.te_ms * 1e-3
    # F+_k at fp[frames - t + k] and F-_k at fm[t + k] during TR t; states laid out (k, atom).
    fp = torch.zeros(frames + 1, n, dtype=dt, device=dev)
    fm = torch.zeros(2 * frames + 1, n, dtype=dt, device=dev)
    z = torch.zeros(frames + 1, n, dtype=dt, device=dev)
    z[0] = _initial_z0(sequence, t1)
    e2te = torch.exp(-te / t2)
    signal = torch.empty(frames, n, dtype=dt, device=dev)
    for t in range(frames):
        # States of order k >= frames - t cannot refocus to k = 0 before the last echo: dropping them is exact.
        k = min(t + 1, frames - t, cap)
        p, m, zz = fp[frames - t:frames - t + k], fm[t:t + k], z[:k]
        a = math.radians(sequence.flip_angles_deg[t])
        ca, sa = math.cos(a), math.sin(a)
        # Rotation about y (Weigel eq. 15, phi = 90 deg) in u = (F+ + F-)/2 ("Mx"), v = (F+ - F-)/2 ("i My"),
        # Z: v is unchanged and (u, Z) rotate like (Mx, Mz): u' = cos a u + sin a Z, Z' = -sin a u + cos a Z.
        v = torch.sub(p, m).mul_(0.5)
        u = p - v
        zn = torch.mul(zz, ca).sub_(u, alpha=sa)
        u.mul_(ca).add_(zz, alpha=sa)
        torch.add(u, v, out=p)
        torch.sub(u, v, out=m)
        signal[t] = p[0] * e2te
        tr = sequence.tr_ms[t] * 1e-3
        e1, e2 = torch.exp(-tr / t1), torch.exp(-tr / t2)
        p.mul_(e2)
        m.mul_(e2)
        torch.mul(zn, e1, out=zz)
        zz[0].add_(1.0 - e1)
        # FISP dephasing: F+_k -> F+_{k+1}, F-_k -> F-_{k-1} (window moves); the new F+_0 = conj(F-_1) = F-_1.
        if t + 1 < frames:
            fp[frames - t - 1] = fm[t + 1]
    return signal


def simulate_spoiled_flash(sequence: FISPSequence, t1, t2=None, *, dtype=torch.float64) -> torch.Tensor:
    """Ideal RF-spoiled FLASH on the same train: (n_atoms, frames) real, the same sign convention as
    :func:`simulate_fisp`.

    Only Mz is tracked: signal_t = Mz^-_t sin(a_t) (T2* ignored), then Mz^+ = Mz^- cos(a_t) relaxes over TR_t.
    If ``t2`` is given the signal is also multiplied by exp(-TE/T2), the decay at the echo of a train whose
    transverse coherences are all destroyed: this is what :func:`simulate_fisp` gives when T2 << TR.
    """
    _check_sequence(sequence)
    t1, t2 = _tissues(t1, t2, dtype)
    mz = _initial_z0(sequence, t1)
    scale = torch.ones_like(t1) if t2 is None else torch.exp(-sequence.te_ms * 1e-3 / t2)
    out = torch.empty(t1.numel(), sequence.frames, dtype=dtype, device=t1.device)
    for t in range(sequence.frames):
        a = math.radians(sequence.flip_angles_deg[t])
        out[:, t] = mz * math.sin(a) * scale
        e1 = torch.exp(-sequence.tr_ms[t] * 1e-3 / t1)
        mz = mz * math.cos(a) * e1 + (1.0 - e1)
    return out
