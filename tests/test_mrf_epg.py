"""EPG simulation of IR-FISP fingerprints: limits (no RF, T2 -> 0), inversion sign, T1 ordering, and agreement with
an independent isochromat Bloch simulation written here."""
from __future__ import annotations

import math

import pytest
import torch

from padis_plugin.errors import ConfigError, DataError
from padis_plugin.mrf.epg import simulate_fisp, simulate_spoiled_flash
from padis_plugin.mrf.sequence import FISPSequence, jiang_fisp

F64 = torch.float64


def _t(*values):
    return torch.tensor(values, dtype=F64)


def bloch_isochromats(seq: FISPSequence, t1: float, t2: float, n_iso: int = 256) -> torch.Tensor:
    """(frames,) complex mean transverse magnetisation Mx + i My at TE of ``n_iso`` isochromats whose dephasing per
    TR is spread uniformly over 2 pi (the FISP gradient); RF about y; exact rotations and relaxation."""
    phi = torch.arange(n_iso, dtype=F64) * (2 * math.pi / n_iso)
    m = torch.zeros(n_iso, 3, dtype=F64)
    m[:, 2] = 1.0
    if seq.inversion:
        e1 = math.exp(-seq.inversion_delay_ms * 1e-3 / t1)
        m[:, 2] = -e1 + (1 - e1)

    def relax(m, tau_ms):
        e1, e2 = math.exp(-tau_ms * 1e-3 / t1), math.exp(-tau_ms * 1e-3 / t2)
        m = m * torch.tensor([e2, e2, e1], dtype=F64)
        m[:, 2] += 1 - e1
        return m

    out = torch.zeros(seq.frames, dtype=torch.complex128)
    for t, (a_deg, tr) in enumerate(zip(seq.flip_angles_deg, seq.tr_ms)):
        c, s = math.cos(math.radians(a_deg)), math.sin(math.radians(a_deg))
        rot_y = torch.tensor([[c, 0, s], [0, 1, 0], [-s, 0, c]], dtype=F64)
        m = relax(m @ rot_y.T, seq.te_ms)
        out[t] = torch.complex(m[:, 0].mean(), m[:, 1].mean())
        m = relax(m, tr - seq.te_ms)
        cp, sp = torch.cos(phi), torch.sin(phi)
        m = torch.stack([cp * m[:, 0] - sp * m[:, 1], sp * m[:, 0] + cp * m[:, 1], m[:, 2]], dim=1)
    return out


@pytest.mark.parametrize("t1,t2", [(1.0, 0.08), (0.3, 0.05), (4.0, 2.0)])
def test_epg_matches_isochromat_bloch(t1, t2):
    seq = jiang_fisp(60)  # 256 isochromats resolve all 60 dephasing orders exactly
    ref = bloch_isochromats(seq, t1, t2)
    sig = simulate_fisp(seq, _t(t1), _t(t2))[0]
    assert sig.dtype == F64 and sig.shape == (60,)
    assert ref.imag.abs().max() < 1e-12  # RF about y: the signal is real
    assert (ref.real - sig).abs().max() <= 1e-9 * ref.abs().max()


def test_zero_flip_angle_gives_zero_signal():
    seq = FISPSequence((0.0,) * 30, (12.0,) * 30, 2.0, 18.0)
    assert simulate_fisp(seq, _t(1.0, 0.5), _t(0.1, 0.04)).abs().max() == 0


def test_short_t2_equals_spoiled_flash():
    # T2 = 0.5 ms << TR kills the transverse coherences (exp(-24) per TR); TE = 0.1 ms keeps most of the echo.
    fa = jiang_fisp(80).flip_angles_deg
    seq = FISPSequence(fa, (12.0,) * 80, 0.1, 18.0)
    t1, t2 = _t(0.3, 1.0, 3.0), _t(5e-4, 5e-4, 5e-4)
    epg, flash = simulate_fisp(seq, t1, t2), simulate_spoiled_flash(seq, t1, t2)
    assert flash.abs().max() > 0.1
    assert (epg - flash).abs().max() <= 1e-6 * flash.abs().max()
    # Without t2 the FLASH signal ignores the decay at TE (T2* ignored).
    assert torch.allclose(simulate_spoiled_flash(seq, t1) * math.exp(-0.1e-3 / 5e-4), flash)


def test_inversion_flips_early_signal():
    seq = jiang_fisp(20)
    no_inv = FISPSequence(seq.flip_angles_deg, seq.tr_ms, seq.te_ms, seq.inversion_delay_ms, inversion=False)
    t1, t2 = _t(3.0), _t(0.3)
    a, b = simulate_fisp(seq, t1, t2)[0, :10], simulate_fisp(no_inv, t1, t2)[0, :10]
    assert (a < 0).all() and (b > 0).all()


def test_longer_t1_recovers_slower():
    # After inversion the longitudinal magnetisation recovers; longer T1 -> more negative early signal.
    seq = jiang_fisp(40)
    t1 = _t(0.3, 0.6, 1.2, 2.4, 4.8)
    sig = simulate_fisp(seq, t1, torch.full_like(t1, 0.1))
    early = sig[:, 5:15].sum(dim=1)
    assert (early[1:] < early[:-1]).all()
    assert (sig[:, 0] < 0).all()


def test_state_cap_and_chunking():
    seq = jiang_fisp(50)
    t1, t2 = _t(0.5, 1.5, 4.0), _t(0.05, 0.1, 1.5)
    full = simulate_fisp(seq, t1, t2)
    # At most frames / 2 orders can still refocus to an echo, so a cap there changes nothing; nor does chunking.
    assert torch.equal(simulate_fisp(seq, t1, t2, max_states=25, chunk=1), full)
    assert (simulate_fisp(seq, t1, t2, max_states=5) - full).abs().max() > 1e-4


def test_bad_inputs():
    seq = jiang_fisp(5)
    with pytest.raises(DataError, match="same shape"):
        simulate_fisp(seq, _t(1.0, 2.0), _t(0.1))
    with pytest.raises(DataError, match="t2 must be finite and > 0"):
        simulate_fisp(seq, _t(1.0), _t(0.0))
    with pytest.raises(ConfigError, match="FISPSequence"):
        simulate_fisp({"frames": 5}, _t(1.0), _t(0.1))


def test_sequence_validation_and_helpers():
    seq = jiang_fisp()
    assert seq.frames == 200 and seq.te_ms == 1.908 and seq.inversion_delay_ms == 18.0
    full = jiang_fisp(1000)
    assert max(full.flip_angles_deg[410:620]) == pytest.approx(70.0, abs=0.01)
    assert min(full.tr_ms) == pytest.approx(11.67) and max(full.tr_ms) == pytest.approx(14.33)
    assert full.truncated(200) == seq and seq.key() == jiang_fisp(200).key() != full.key()
    assert FISPSequence.from_dict(seq.to_dict()) == seq
    with pytest.raises(ConfigError, match="TR"):
        FISPSequence((10.0, 20.0), (12.0,), 2.0, 18.0)
    with pytest.raises(ConfigError, match="must exceed TE"):
        FISPSequence((10.0,), (2.0,), 2.0, 18.0)
    with pytest.raises(ConfigError, match=r"\[0, 180\]"):
        FISPSequence((190.0,), (12.0,), 2.0, 18.0)
    with pytest.raises(ConfigError, match="at least one frame"):
        FISPSequence((), (), 2.0, 18.0)
    with pytest.raises(ConfigError, match="non-finite"):
        FISPSequence((float("nan"),), (12.0,), 2.0, 18.0)
    with pytest.raises(ConfigError, match="missing keys"):
        FISPSequence.from_dict({"tr_ms": [12.0]})
