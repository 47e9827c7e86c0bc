"""Typed solver parameters (issue 12.3): each factory's dataclass is the one declaration of its keys, types and
defaults; a bench config's problems name the dotted key, all at once; ``--list-solvers -v`` shows them."""
import dataclasses
import inspect

import pytest

from padis_plugin.solvers import registry
from padis_plugin.bench.build import build_solvers
from padis_plugin.cli.bench import main
from padis_plugin.bench.config import BenchConfig
from padis_plugin.config import from_dict
from padis_plugin.errors import ConfigError, ParamsError
from padis_plugin.solvers.classical import SENSE, SENSEParams, WaveletL1
from padis_plugin.solvers.daps import DAPSExact, DAPSParams
from padis_plugin.solvers.dds import DDS, DDSParams
from padis_plugin.solvers.diffpir import DiffPIRParams, PaDISDiffPIR
from padis_plugin.solvers.dps import VEDPS, DPSParams
from padis_plugin.solvers.params import declared_params, takes_params
from padis_plugin.solvers.pnp import PnPParams, build_pnp


def _problems(solvers):
    cfg = from_dict(BenchConfig, {"solvers": solvers}, source="cfg.yaml")
    with pytest.raises(ConfigError) as info:
        build_solvers(cfg, "cpu", "cfg.yaml")
    return info.value.problems


def test_bench_names_each_bad_parameter_by_dotted_path_all_at_once():
    problems = _problems([{"name": "wavelet-l1", "params": {"lamda": 1, "iterations": "many"}},
                          {"name": "padis-dps", "params": {"zeta": "abc", "noise_convention": "x"}},
                          {"name": "edm-dds", "params": {"pad": 8}}])
    assert problems[0].startswith("cfg.yaml: 'solvers.0.params.lamda': unknown parameter; allowed: ")
    assert "iterations, lambda, level, wavelet" in problems[0]
    assert problems[1:4] == [
        "cfg.yaml: 'solvers.0.params.iterations' must be an integer, got 'many'",
        "cfg.yaml: 'solvers.1.params.zeta' must be a number, got 'abc'",
        "cfg.yaml: 'solvers.1.params.noise_convention' must be one of ['channel', 'complex'], got 'x'"]
    assert len(problems) == 5 and problems[4].startswith("cfg.yaml: 'solvers.2.params.pad' is a patch setting")


def test_range_checks_name_the_dotted_path_too():
    (problem,) = _problems([{"name": "sense", "params": {"iterations": 0}}])
    assert problem == "cfg.yaml: 'solvers.0.params.iterations' must be in [1, 100000], got 0"


def test_direct_call_names_the_solver_and_raises_params_error():
    with pytest.raises(ParamsError, match=r"^solver 'padis-daps': tau must be a number or one of \['auto'\], got 'x'$"):
        registry.build_solver("padis-daps", {"tau": "x"})
    with pytest.raises(ParamsError, match=r"^cfg\.yaml: 'solvers\.3\.params\.steps' must be an integer, got 2\.5$"):
        registry.build_solver("padis-dds", {"steps": 2.5}, source="cfg.yaml", prefix="solvers.3.params")


def _signature_defaults(fn, skip=()):
    return {k: v.default for k, v in inspect.signature(fn).parameters.items()
            if v.default is not inspect.Parameter.empty and k not in skip}


def _defaults(cls, keep):
    return {f.name: f.default for f in dataclasses.fields(cls) if f.name in keep}


@pytest.mark.parametrize("params, sampler, changed", [
    (DPSParams, VEDPS, {}),
    # The classes leave these to the denoiser's family (tuned values, else these fallbacks); the registry fills
    # the family's in before parsing, so its parameter classes hold the fallbacks
    (DAPSParams, DAPSExact, {"tau_scale": 1.0}),
    (DDSParams, DDS, {"gamma": 100.0, "tau": None, "tau_scale": 1.0}),
    (DiffPIRParams, PaDISDiffPIR, {"iterations": 100, "sigma": 0.05, "zeta": 0.3}),
])
def test_defaults_are_the_samplers_own(params, sampler, changed):
    # high_band is not a user parameter: hfs-dds sets it from its prior's band width; callback is set in code
    own = _signature_defaults(sampler.__init__, skip=("device", "sigmas", "high_band", "rng", "callback"))
    assert _defaults(params, set(own)) == {**own, **changed}


def test_defaults_of_the_other_solvers():
    assert registry.resolved_params("edm-dps")["skip_noise"] == "last"  # EDMDPS's own default
    assert _defaults(PnPParams, set(_signature_defaults(build_pnp))) == \
        {**_signature_defaults(build_pnp), "algorithm": "HQS", "iterations": 20}   # build_pnp: the family's
    assert _defaults(SENSEParams, {"iterations", "tol"}) == _signature_defaults(SENSE.__init__, skip=("device",))
    wl1 = registry.build_solver("wavelet-l1", {"iterations": None})  # null means the default
    assert isinstance(wl1, WaveletL1) and (wl1.lam, wl1.iterations) == (1e-3, 100)


def test_every_builtin_solver_declares_its_parameters():
    for name in ("zero-filled", "sense", "wavelet-l1", "padis-dps", "edm-dps", "padis-dds", "edm-dds",
                 "padis-daps", "edm-daps", "padis-diffpir", "deepinv-pnp"):
        assert declared_params(registry.get_factory(name)) is not None, name


def test_a_plugin_may_declare_a_dataclass_or_take_a_dict(monkeypatch):
    @dataclasses.dataclass
    class Params:
        lam: float = 0.5

    monkeypatch.setattr(registry, "_REGISTERED", {})
    registry.register_solver("typed")(takes_params(Params, "typed")(lambda p, device: p))
    registry.register_solver("untyped")(lambda params, device: params)
    assert registry.build_solver("typed", {"lam": 1}) == Params(1.0)
    assert registry.build_solver("untyped", {"lam": "x"}) == {"lam": "x"}
    with pytest.raises(ParamsError, match="lam must be a number"):
        registry.build_solver("typed", {"lam": "x"})
    assert registry.describe_solver("typed") == ["lam: float = 0.5"]
    assert "not declared" in registry.describe_solver("untyped")[0]


def test_list_solvers_verbose_prints_types_and_defaults(capsys):
    assert main(["--list-solvers"]) == 0
    plain = capsys.readouterr().out.splitlines()
    assert "padis-dps" in plain and not any(line.startswith(" ") for line in plain)
    assert main(["--list-solvers", "-v"]) == 0
    lines = capsys.readouterr().out.splitlines()
    dps = lines[lines.index("padis-dps") + 1:]
    dps = dps[:next(i for i, line in enumerate(dps) if not line.startswith(" "))]
    assert "  zeta: float = 3.0" in dps and "  pad_band: fresh | evolving = fresh" in dps
    assert "  patch_size: int = the checkpoint's own" in dps
    assert [line for line in lines if not line.startswith(" ")] == plain


def test_list_solvers_verbose_says_tuned_defaults_and_earlier_names(capsys):
    assert main(["--list-solvers", "-v"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[lines.index("dds") + 1].startswith("  (tuned over the defaults below, by the checkpoint's family: "
                                                    "padis: tau=auto, tau_scale=0.25; edm: tau=auto, tau_scale=0.5")
    assert lines[lines.index("padis-dds") + 1] == ("  (earlier name of 'dds' with its earlier defaults, kept for the "
                                                   "configs written for it)")
