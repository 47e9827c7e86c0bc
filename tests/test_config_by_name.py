"""Configs by name (``--config wavelet_l1_r4``), ``--list-configs``, configs shipped in the wheel, the grid-scaled
default ACS and every config problem reported at once."""
from __future__ import annotations

import configparser
from pathlib import Path

import pytest
import yaml

from padis_plugin.solvers import registry
from padis_plugin.cli.bench import main as bench_main
from padis_plugin.cli.train import main as train_main
from padis_plugin.bench.config import BenchConfig
from padis_plugin.config import configs_dir, from_dict, load_config, resolve_config, shipped_configs
from padis_plugin.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]


def test_a_shipped_config_resolves_by_name_with_or_without_suffix():
    want = (configs_dir() / "paper_table5_data_efficiency.yaml").resolve()
    assert resolve_config("paper_table5_data_efficiency").resolve() == want
    assert resolve_config("paper_table5_data_efficiency.yaml").resolve() == want
    assert set(shipped_configs()) >= {"wavelet_l1_r4", "train_padis_cpu", "protocol_split"}


def test_an_existing_path_wins_over_a_shipped_name(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    Path("wavelet_l1_r4.yaml").write_text("solvers: [{name: zero-filled}]\n")
    assert resolve_config("wavelet_l1_r4.yaml") == Path("wavelet_l1_r4.yaml")
    assert resolve_config("wavelet_l1_r4") != Path("wavelet_l1_r4.yaml")  # no file of that exact name: shipped


def test_unknown_names_and_missing_paths_say_what_exists(tmp_path):
    with pytest.raises(ConfigError, match=r"paper_table5: no such config.*close matches: paper_table5_data_efficiency"):
        resolve_config("paper_table5")
    with pytest.raises(ConfigError, match=r"xyzzy: .*shipped: .*wavelet_l1_r4"):
        resolve_config("xyzzy")
    # a path is never swapped for a shipped file of the same name, but the error points at it
    with pytest.raises(ConfigError, match=r"config file not found; the shipped config of that name is --config "
                                          r"wavelet_l1_r4$"):
        resolve_config(tmp_path / "wavelet_l1_r4.yaml")


def test_cli_unknown_name_exits_2_with_the_matches(capsys):
    assert bench_main(["--config", "wavelet_l1_r5"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: wavelet_l1_r5:") and "wavelet_l1_r4" in err and "wavelet_l1_r7" in err
    assert train_main(["--config", "train_padis_cpux"]) == 2  # padis-train resolves through the same helper
    assert "close matches: train_padis_cpu" in capsys.readouterr().err


def test_list_configs_prints_names_and_first_comment_line(capsys):
    assert bench_main(["--list-configs"]) == 0
    lines = capsys.readouterr().out.splitlines()
    by_name = {line.split()[0]: line for line in lines}
    assert {"wavelet_l1_r4", "paper_table5_data_efficiency", "recommended_256"} <= set(by_name)
    assert "Wavelet-L1 (the paper's PICS-L1 baseline, untrained)" in by_name["wavelet_l1_r4"]
    assert not {"train_padis_cpu", "protocol_split"} & set(by_name)  # only benchmark configs
    assert "results_table5" not in by_name  # a record of an experiment: experiments/table5/config.yaml
    assert train_main(["--list-configs"]) == 0
    names = {line.split()[0] for line in capsys.readouterr().out.splitlines()}
    assert {"train_padis_cpu", "train_padis_s25"} <= names and "wavelet_l1_r4" not in names
    assert "results_train_padis_s25_256" not in names  # experiments/train_padis_s25_256/config.yaml


def test_setup_cfg_ships_the_configs_and_lists_every_subpackage():
    from setuptools import find_packages

    cfg = configparser.ConfigParser()
    cfg.read(REPO / "setup.cfg")
    listed = set(cfg["options"]["packages"].split())
    assert set(find_packages(str(REPO), include=["padis_plugin*"])) | {"padis_plugin.configs"} == listed
    assert cfg["options"]["package_dir"].split() == ["padis_plugin.configs", "=", "configs"]
    assert cfg["options.package_data"]["padis_plugin.configs"] == "*.yaml"


# ------------------------------------------------------------------------------- defaults, all problems at once
def _minimal(tmp_path, **keys):
    path = tmp_path / "minimal.yaml"
    path.write_text(yaml.safe_dump({"solvers": [{"name": "zero-filled"}], **keys}))
    return path


def test_minimal_config_with_default_acs_fits_w128_r7(tmp_path):
    from padis_plugin.bench.acquisitions import AcquisitionBank

    cfg = load_config(BenchConfig, _minimal(tmp_path))
    assert cfg.acquisition.acs_lines is None and cfg.acquisition.accelerations == [7.0]
    bank = AcquisitionBank(cfg, (128, 128), "minimal.yaml")  # was: acs_lines=24 exceeds floor(W/R)=18
    assert bank.acquisition(7).acs_on(128) == 8 and cfg.acquisition.acs_for(384) == 24 and cfg.acquisition.acs_for(256) == 16
    assert bank(7.0, 0)[0, 60:68].all()  # the 8 centre lines are sampled
    cfg.acquisition.acs_lines = 12  # an explicit value stays absolute
    assert AcquisitionBank(cfg, (128, 128)).acquisition(7).acs_on(128) == 12


def test_load_reports_every_problem_with_file_and_key(tmp_path):
    path = _minimal(tmp_path, masks={"accelerations": [20, 4], "seeds": []}, data={"max_slices": "two"},
                    solvers=[{"name": "no-such-solver"}, {"name": "sense"}])
    with pytest.raises(ConfigError) as info:
        load_config(BenchConfig, path)
    problems = info.value.problems
    assert str(info.value).startswith(f"{len(problems)} problems in the config:")
    for needle in ["'masks.accelerations.0': R=20 is outside", "'masks.seeds' must be", "'data.max_slices' must be",
                   "'solvers.0.name': unknown solver 'no-such-solver'"]:
        assert sum(p.startswith(f"{path}: {needle}") for p in problems) == 1, (needle, problems)
    with pytest.raises(ConfigError, match=r"x\.yaml: unknown key 'bogus'.*\n.*x\.yaml: unknown key 'masks\.acs'"):
        from_dict(BenchConfig, {"bogus": 1, "solvers": [{"name": "sense"}], "masks": {"acs": 3}}, source="x.yaml")


def test_mask_and_solver_problems_of_a_run_are_reported_together(monkeypatch):
    from padis_plugin.bench.run import acquisitions_and_solvers

    def bad_params(params, device):
        raise ConfigError(f"unknown parameter(s) {sorted(params)}")

    monkeypatch.setitem(registry._REGISTERED, "fussy", bad_params)
    cfg = from_dict(BenchConfig, {"masks": {"acs_lines": 24, "accelerations": [7, 8]},
                                  "solvers": [{"name": "fussy", "params": {"lamda": 1}}]}, source="run.yaml")
    with pytest.raises(ConfigError) as info:
        acquisitions_and_solvers(cfg, (128, 128), "cpu", "run.yaml")
    assert info.value.problems == [
        "run.yaml: 'acquisition.acs_lines': acs_lines=24 exceeds the floor(W/R)=18 lines of W=128, R=7",
        "run.yaml: 'acquisition.acs_lines': acs_lines=24 exceeds the floor(W/R)=16 lines of W=128, R=8",
        "run.yaml: 'solvers.0' (fussy): unknown parameter(s) ['lamda']"]
