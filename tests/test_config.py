"""YAML -> dataclass loading: unknown keys, types, --set overrides, the shipped benchmark configs."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

from padis_plugin.bench.config import BenchConfig
from padis_plugin.config import (apply_overrides, config_kind, from_dict, load_config, load_yaml,
                                 parse_value, to_dict)
from padis_plugin.errors import ConfigError

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def _write(tmp_path, data, name="c.yaml"):
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data))
    return path


def test_unknown_key_names_dotted_key_and_file(tmp_path):
    path = _write(tmp_path, {"solvers": [{"name": "zero-filled"}], "masks": {"acceleration": [4]}})
    with pytest.raises(ConfigError, match=r"c\.yaml: unknown key 'masks\.acceleration'"):
        load_config(BenchConfig, path)
    path = _write(tmp_path, {"solvers": [{"name": "zero-filled", "param": {}}]})
    with pytest.raises(ConfigError, match=r"c\.yaml: unknown key 'solvers\.0\.param'"):
        load_config(BenchConfig, path)


def test_type_errors_name_the_key(tmp_path):
    path = _write(tmp_path, {"solvers": [{"name": "zero-filled"}], "data": {"max_slices": "two"}})
    with pytest.raises(ConfigError, match=r"'data\.max_slices' must be an integer"):
        load_config(BenchConfig, path)
    with pytest.raises(ConfigError, match="missing required key 'solvers.0.name'"):
        from_dict(BenchConfig, {"solvers": [{"label": "x"}]}, source="x.yaml")


def test_set_overrides_nested_keys_with_types(tmp_path):
    path = _write(tmp_path, {"solvers": [{"name": "zero-filled"}, {"name": "wavelet-l1", "params": {"lambda": 1}}],
                             "masks": {"accelerations": [4]}})
    cfg = load_config(BenchConfig, path, ["masks.accelerations=[4, 7.5]", "data.max_slices=3", "seed=12",
                                          "solvers.1.params.lambda=1e-3", "solvers.1.label=WL1",
                                          "data.contrasts=[T1]", "uncertainty.enabled=true", "crop=null",
                                          "data.path=some/file.h5"])
    assert cfg.acquisition.accelerations == [4.0, 7.5]
    assert cfg.data.max_slices == 3 and cfg.seed == 12
    assert cfg.solvers[1].params == {"lambda": 1e-3} and isinstance(cfg.solvers[1].params["lambda"], float)
    assert cfg.solvers[1].display == "WL1" and cfg.data.contrasts == ["T1"]
    assert cfg.uncertainty.enabled is True and cfg.crop is None and cfg.data.path == "some/file.h5"
    # the input dict is not modified
    raw = {"a": {"b": 1}}
    assert apply_overrides(raw, ["a.b=2"]) == {"a": {"b": 2}} and raw == {"a": {"b": 1}}


@pytest.mark.parametrize("bad", ["novalue", "=3", "a..b=1", "solvers.5.name=x"])
def test_bad_overrides(bad):
    with pytest.raises(ConfigError, match="--set"):
        apply_overrides({"solvers": [{"name": "a"}]}, [bad])


def test_yaml_scientific_floats_and_errors(tmp_path):
    assert parse_value("1e-4") == 1e-4 and parse_value("3") == 3 and parse_value("[1, 2]") == [1, 2]
    bad = tmp_path / "bad.yaml"
    bad.write_text("a: [1, 2\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml: invalid YAML"):
        load_yaml(bad)
    with pytest.raises(ConfigError, match="config file not found"):
        load_yaml(tmp_path / "missing.yaml")
    lst = _write(tmp_path, [1, 2], "list.yaml")
    with pytest.raises(ConfigError, match="must be a mapping"):
        load_yaml(lst)


def test_cross_field_checks(tmp_path):
    base = {"solvers": [{"name": "zero-filled"}, {"name": "zero-filled"}]}
    with pytest.raises(ConfigError, match="duplicate label"):
        from_dict(BenchConfig, base, source="x.yaml")
    ok = {"solvers": [{"name": "zero-filled"}, {"name": "sense"}]}
    with pytest.raises(ConfigError, match=r"x\.yaml: 'masks\.accelerations\.0': R=17 is outside \[1, 16\]"):
        from_dict(BenchConfig, {**ok, "masks": {"accelerations": [17]}}, source="x.yaml")
    with pytest.raises(ConfigError, match="unknown solver label 'EDM'"):
        from_dict(BenchConfig, {**ok, "pairs": [["sense", "EDM"]]}, source="x.yaml")
    with pytest.raises(ConfigError, match="'reference': unknown solver label"):
        from_dict(BenchConfig, {**ok, "reference": "nope"}, source="x.yaml")


@dataclass
class Inner:
    lr: float = 1e-3
    sizes: list[int] = field(default_factory=lambda: [16, 32])


@dataclass
class Outer:
    name: str
    inner: Inner = field(default_factory=Inner)
    extra: dict = field(default_factory=dict)


def test_generic_dataclasses_and_round_trip():
    obj = from_dict(Outer, {"name": "x", "inner": {"lr": 2}}, source="t.yaml")
    assert obj.inner.lr == 2.0 and isinstance(obj.inner.lr, float) and obj.inner.sizes == [16, 32]
    assert from_dict(Outer, to_dict(obj)) == obj
    with pytest.raises(ConfigError, match=r"t\.yaml: 'inner\.sizes\.1' must be an integer"):
        from_dict(Outer, {"name": "x", "inner": {"sizes": [1, "a"]}}, source="t.yaml")
    with pytest.raises(ConfigError, match=r"'inner\.lr' must be a number, got bool"):
        from_dict(Outer, {"name": "x", "inner": {"lr": True}}, source="t.yaml")


BENCH_CONFIGS = ["wavelet_l1_r4.yaml", "wavelet_l1_r7.yaml", "paper_table5_data_efficiency.yaml",
                 "paper_table3_acceleration.yaml", "paper_table4_cross_contrast.yaml", "paper_table1_uncertainty.yaml"]


@pytest.mark.parametrize("name", BENCH_CONFIGS)
def test_shipped_configs_load(name):
    from importlib.metadata import entry_points

    cfg = load_config(BenchConfig, CONFIGS / name)
    names = {ep.name for ep in entry_points(group="padis_plugin.solvers")}
    assert all(s.name in names for s in cfg.solvers)
    assert cfg.data.path == "bundled-demo"  # runnable as shipped; real data via --set data.path=...


REPO = CONFIGS.parent
# The records of measured experiments: experiments/<name>/config.yaml beside its results (and the results
# configs still in configs/ while a run reads them there).
RESULTS_CONFIGS = sorted(str(p.relative_to(REPO)) for p in [*REPO.glob("experiments/*/config.yaml"),
                                                            *CONFIGS.glob("results_*.yaml")]
                         if config_kind(p) == "bench")
# checkpoints an experiment names on purpose that are not shipped: the training runs' intermediate steps
UNSHIPPED = {"experiments/256_training_steps/config.yaml": "outputs/train256/"}
EXPERIMENTS = sorted(p.parent.name for p in REPO.glob("experiments/*/config.yaml"))


@pytest.mark.parametrize("name", RESULTS_CONFIGS)
def test_results_configs_name_registered_solvers_and_shipped_checkpoints(name):
    """The configs behind the measured results (docs/results.md) run as committed: every solver is registered
    and every checkpoint they name is shipped in the package."""
    from importlib.metadata import entry_points

    from padis_plugin.prior.denoiser import BUNDLED_CHECKPOINTS, resolve_checkpoint

    cfg = load_config(BenchConfig, REPO / name)
    names = {ep.name for ep in entry_points(group="padis_plugin.solvers")}
    assert all(s.name in names for s in cfg.solvers)
    for s in cfg.solvers:
        if "checkpoint" in s.params and not s.params["checkpoint"].startswith(UNSHIPPED.get(name, "\0")):
            assert resolve_checkpoint(s.params["checkpoint"]).parent == BUNDLED_CHECKPOINTS



@pytest.mark.parametrize("name", EXPERIMENTS)
def test_an_experiment_writes_beside_its_config(name):
    """experiments/<name>/config.yaml runs into its own folder, and every folder it reuses items from holds a
    readable resolved config (so a rerun resumes from the committed results instead of recomputing them)."""
    import json

    path = REPO / "experiments" / name / "config.yaml"
    if config_kind(path) == "train":  # the recipe of a shipped prior (padis_plugin/bundled/checkpoints/)
        from padis_plugin.train.config import TrainConfig

        assert load_config(TrainConfig, path).kind in {"padis", "edm", "hfs", "patch-hfs"}
        return
    cfg = load_config(BenchConfig, path)
    assert cfg.output.dir == f"experiments/{name}"
    for src in cfg.output.reuse_from:
        assert "hash" in json.loads((REPO / src.dir / "resolved_config.json").read_text()), src.dir


def test_configs_ships_only_generic_configs():
    """configs/ (what the wheel ships and --list-configs lists) holds no record of a finished experiment:
    those live in experiments/ beside their results."""
    assert not list(CONFIGS.glob("results_*.yaml"))
    assert not list(CONFIGS.glob("diagnosis_*.yaml"))

def test_recommended_config_runs_the_recommended_modes():
    """configs/recommended_256.yaml, the demo and padis-recon agree: its PaDIS and EDM rows are each prior's
    ``best`` mode of padis_plugin.recommended with the shipped 256 prior."""
    from padis_plugin.recommended import recommended

    cfg = load_config(BenchConfig, CONFIGS / "recommended_256.yaml")
    rows = {s.display: (s.name, dict(s.params)) for s in cfg.solvers}
    assert set(rows) == {"PaDIS", "EDM", "Wavelet-L1", "Zero-filled"}
    assert rows["PaDIS"] == recommended("padis", "best", size=256)
    assert rows["EDM"] == recommended("edm", "best", size=256)
    from padis_plugin.solvers.registry import resolved_params  # the settings the modes were measured with
    stock = {"sigma_max": 0.2, "sigma_min": 0.01, "stepsize": 50.0}
    assert resolved_params(*rows["PaDIS"]).items() >= {"algorithm": "DRS", "iterations": 40, **stock}.items()
    assert resolved_params(*rows["EDM"]).items() >= {"denoiser": "edm", "algorithm": "DRS", "iterations": 20,
                                                      **stock}.items()
