from importlib import metadata

import pytest

from padis_plugin.solvers import registry
from padis_plugin.errors import ConfigError
from padis_plugin.solvers.classical import WaveletL1, ZeroFilled


def test_builtin_by_name():
    assert {"zero-filled", "sense", "wavelet-l1"} <= set(registry.available_solvers())
    assert registry.available_solvers() == sorted(registry.available_solvers())
    solver = registry.build_solver("wavelet-l1", {"lambda": 0.01})
    assert isinstance(solver, WaveletL1) and solver.lam == 0.01


def test_errors():
    with pytest.raises(ConfigError, match="available: .*zero-filled"):
        registry.build_solver("no-such-solver")
    with pytest.raises(ConfigError, match="allowed"):
        registry.build_solver("sense", {"lambda": 1})


def test_no_registered_solver_says_to_install_the_package(monkeypatch):
    """A source tree on PYTHONPATH has no entry points: the error says why instead of 'available: ' (empty)."""
    monkeypatch.setattr(registry.metadata, "entry_points", lambda group: [])
    monkeypatch.setattr(registry, "_REGISTERED", {})
    with pytest.raises(ConfigError, match=r"no solver is registered.*pip install -e \."):
        registry.build_solver("padis-dds")


def test_third_party_entry_point_and_broken_one(monkeypatch):
    eps = metadata.EntryPoints([
        metadata.EntryPoint("zero-filled", "padis_plugin.solvers.classical:make_zero_filled", registry.GROUP),
        metadata.EntryPoint("my-zf", "padis_plugin.solvers.classical:make_zero_filled", registry.GROUP),
        metadata.EntryPoint("broken", "no_such_module_xyz:make", registry.GROUP),
    ])
    monkeypatch.setattr(registry.metadata, "entry_points", lambda group: eps if group == registry.GROUP else [])
    monkeypatch.setattr(registry, "_REGISTERED", {})  # other tests register in-process solvers
    assert registry.available_solvers() == ["broken", "my-zf", "zero-filled"]
    assert isinstance(registry.build_solver("my-zf"), ZeroFilled)
    with pytest.raises(ConfigError, match="no_such_module_xyz"):
        registry.build_solver("broken")


def test_register_solver(monkeypatch):
    monkeypatch.setattr(registry, "_REGISTERED", {})

    @registry.register_solver("mine")
    def make_mine(params, device):
        return ("mine", params, device)

    assert "mine" in registry.available_solvers()
    assert registry.build_solver("mine", {"a": 1}) == ("mine", {"a": 1}, "cpu")


def test_public_api_at_the_package_top():
    import padis_plugin
    from padis_plugin import DDS, DAPSExact, PaDISDenoiser, PaDISDPS, build_solver, cartesian_mask, load_prior  # noqa: F401

    for name in padis_plugin.__all__:
        assert getattr(padis_plugin, name) is not None
    with pytest.raises(AttributeError):
        padis_plugin.no_such_name  # noqa: B018
