"""ResultStore, the benchmark's results folder, without running any solver: records round-trip through the
partial files in the format results.json keeps, a torn last line is tolerated, earlier items are reused only
when the new config would compute them identically, and preparing a folder clears exactly what went stale."""
from __future__ import annotations

import dataclasses
import json
from types import SimpleNamespace

import pytest

from padis_plugin.bench.items import generator_seed, plan, uncertainty_key
from padis_plugin.bench.records import Record, UncertaintyRecord, from_json
from padis_plugin.bench.store import PARTIAL_DIR, RESOLVED, ResultStore
from padis_plugin.bench.config import BenchConfig
from padis_plugin.config import from_dict, to_dict
from padis_plugin.errors import ConfigError, DataError

SLICES = ["vol0:0", "vol1:0"]
ENV = {"versions": {"padis_plugin": "test"}, "device": {"type": "cpu", "cpu": "test", "world_size": 1}}
ITEM_KEYS = ["kind", "key", "id", "contrast", "patient", "solver", "name", "training_size", "R", "seed",
             "acs_lines", "generator_seed", "psnr", "ssim", "nrmse", "seconds", "nfe"]


def _cfg(lamda=0.01, seed=0, **extra) -> BenchConfig:
    solvers = [{"name": "zero-filled", "label": "ZF"},
               {"name": "wavelet-l1", "label": "WL", "params": {"lambda": lamda}, "training_size": 7}]
    return from_dict(BenchConfig, {"name": "t", "seed": seed, "device": "cpu", "data": {"path": "d.h5"},
                                   "masks": {"accelerations": [4], "acs_lines": 4, "seeds": [0, 1]},
                                   "solvers": solvers, **extra})


def _record(cfg: BenchConfig, item, psnr=30.0) -> Record:
    entry = next(e for e in cfg.solvers if e.display == item.label)
    return Record(id=item.slice_id, contrast="T1", patient="p0", solver=item.label, name=entry.name,
                  training_size=entry.training_size, R=item.acceleration, seed=item.seed, acs_lines=4,
                  generator_seed=generator_seed(cfg.seed, item.slice_id, item.acceleration, item.seed),
                  psnr=psnr, ssim=0.9, nrmse=0.1, seconds=0.5, nfe=3)


def _finished(tmp_path, cfg: BenchConfig) -> ResultStore:
    """A folder written under ``cfg`` with every item finished, as a run leaves it."""
    store = ResultStore(tmp_path / "out")
    store.prepare(cfg)
    for i, it in enumerate(plan(cfg, SLICES)):
        store.append(_record(cfg, it, psnr=30.0 + i))
    return store


def test_record_serialises_in_the_results_format():
    cfg = _cfg()
    rec = _record(cfg, plan(cfg, SLICES)[0])
    line = rec.to_json()
    assert list(line) == ITEM_KEYS and line["key"] == "vol0:0|ZF|R4|seed0"
    assert list(rec.row()) == ITEM_KEYS[2:]  # a results.json row: no kind/key, no reused_from unless taken over
    assert from_json(json.loads(json.dumps(line))) == rec
    moved = rec.relabelled("ZF here", 3, "elsewhere")
    assert list(moved.row())[-1] == "reused_from" and moved.key == "vol0:0|ZF here|R4|seed0"
    unc = UncertaintyRecord(id="vol0:0", contrast="T1", patient="p0", solver="WL", training_size=7, R=4.0,
                            seeds=[0, 1], mean_std_brain=0.1, mean_cv_brain=0.2, brain_pixels=9, map="u.npy")
    assert unc.key == uncertainty_key("vol0:0", "WL", 4) and from_json(unc.to_json()) == unc
    with pytest.raises(DataError, match="not a benchmark record"):
        from_json({"kind": "item", "key": "k", "id": "vol0:0"}, "rank0.jsonl")


def test_append_done_collect_round_trip(tmp_path):
    cfg = _cfg()
    items = plan(cfg, SLICES)
    assert len(items) == 2 * 2 * 2 and items[0].key == "vol0:0|ZF|R4|seed0"
    store, other_rank = ResultStore(tmp_path), ResultStore(tmp_path, rank=1)
    records = [_record(cfg, it, psnr=20.0 + i) for i, it in enumerate(items)]
    for rec in records[::-1]:  # two ranks, any order: collect restores the plan's order
        (store if rec.id == SLICES[0] else other_rank).append(rec)
    assert sorted(p.name for p in (tmp_path / PARTIAL_DIR).iterdir()) == ["rank0.jsonl", "rank1.jsonl"]
    assert store.done() == {r.key: r for r in records}
    ds = SimpleNamespace(ids=SLICES, size=32)
    results = store.collect(cfg, items, ds, "d.h5", ENV)
    assert results["results"] == [r.row() for r in records]
    assert results["dataset"] == {"path": "d.h5", "size": 32, "n_slices": 2, "ids": SLICES, "contrasts": ["T1"]}
    assert results["device"] == ENV["device"] and results["uncertainty"] is None
    assert {m["solver"] for m in results["means"]} == {"ZF", "WL"}
    with pytest.raises(DataError, match="1 item.s. missing after the run"):
        store.collect(cfg, items + plan(cfg, ["vol2:0"])[:1], ds, "d.h5", ENV)


def test_torn_last_line_is_dropped_and_the_next_append_starts_clean(tmp_path):
    cfg = _cfg()
    items = plan(cfg, SLICES)
    store = ResultStore(tmp_path)
    for it in items[:2]:
        store.append(_record(cfg, it))
    path = tmp_path / PARTIAL_DIR / "rank0.jsonl"
    path.write_text(path.read_text() + json.dumps(_record(cfg, items[2]).to_json())[:40])  # killed mid-write
    with pytest.warns(UserWarning, match="dropping the torn last line 3"):
        assert list(ResultStore(tmp_path).done()) == [it.key for it in items[:2]]
    with pytest.warns(UserWarning, match="torn"):
        ResultStore(tmp_path).append(_record(cfg, items[2]))
    assert [json.loads(x)["key"] for x in path.read_text().splitlines()] == [it.key for it in items[:3]]
    lines = path.read_text().splitlines()
    path.write_text("\n".join([lines[0], lines[1][:30], lines[2]]) + "\n")  # damage before the end
    with pytest.raises(DataError, match="line 2: corrupt record"):
        store.done()


def test_reuse_from_keeps_only_items_computed_identically(tmp_path):
    old = _cfg()
    store = _finished(tmp_path, old)
    store.append(UncertaintyRecord(id="vol0:0", contrast="T1", patient="p0", solver="ZF", training_size=None,
                                   R=4.0, seeds=[0, 1], mean_std_brain=0.1, mean_cv_brain=0.2, brain_pixels=9,
                                   map="u.npy"))
    before = store.done()
    # WL's lambda changes: only ZF's items stay, unchanged (uncertainty maps are recomputed, never reused)
    kept = store.reuse_from(to_dict(old), _cfg(lamda=0.05))
    assert set(kept) == {k for k, r in before.items() if isinstance(r, Record) and r.solver == "ZF"}
    assert all(kept[k] == before[k] for k in kept) and len(kept) == 4
    assert store.reuse_from(to_dict(old), _cfg(seed=1)) == {}  # the global seed changes every item
    assert store.reuse_from(None, old) == {}


def test_reuse_from_another_folder_relabels_and_refuses_changed_solvers(tmp_path):
    old = _cfg()
    store = _finished(tmp_path, old)
    mine = dataclasses.replace(_cfg(lamda=0.05), solvers=[
        dataclasses.replace(e, label=f"{e.label} here", training_size=25) for e in _cfg(lamda=0.05).solvers])
    labels = {"ZF here": "ZF", "WL here": "WL"}
    with pytest.warns(UserWarning, match="solver 'WL' differs from 'WL here' here; not reused"):
        taken = store.reuse_from(to_dict(old), mine, labels)
    assert len(taken) == 4 and {r.solver for r in taken.values()} == {"ZF here"}
    for rec in taken.values():
        theirs = store.done()[rec.key.replace("ZF here", "ZF")]
        assert rec == theirs.relabelled("ZF here", 25, str(store.dir)) and rec.psnr == theirs.psnr
    with pytest.raises(ConfigError, match="'nope' is not a solver of this config"):
        store.reuse_from(to_dict(old), mine, {"nope": "ZF"})


def _retrainable(tmp_path, tiny_checkpoints):
    """A config with a prior-free solver and a DDS whose checkpoint lives in ``tmp_path`` (so it can be retrained)."""
    import shutil
    from padis_plugin.checkpoints import checkpoint_paths

    for src in checkpoint_paths(tiny_checkpoints["edm"]):
        shutil.copy(src, tmp_path / src.name.replace(src.stem, "prior"))
    entries = [{"name": "zero-filled", "label": "ZF"},
               {"name": "dds", "label": "DDS", "params": {"checkpoint": str(tmp_path / "prior")}}]
    return from_dict(BenchConfig, {"name": "t", "seed": 0, "device": "cpu", "data": {"path": "d.h5"},
                                   "masks": {"accelerations": [4], "acs_lines": 4, "seeds": [0]}, "solvers": entries})


def _retrain(path):
    """Other weights under the same checkpoint name, as a longer training run leaves them."""
    import torch
    from padis_plugin.prior import EDMDenoiser, EDMPrecond, build_unet

    torch.manual_seed(1)
    EDMDenoiser(EDMPrecond(build_unet("edm-tiny"))).save_pretrained(path)


def _finished_with_records(out, cfg):
    from padis_plugin.bench.weights import run_records

    store = ResultStore(out)
    store.prepare(cfg, records=run_records(cfg))
    for it in plan(cfg, SLICES):
        store.append(_record(cfg, it))
    return store


def test_items_of_a_retrained_checkpoint_are_computed_afresh_under_the_same_config(tmp_path, tiny_checkpoints,
                                                                                     capsys):
    """A prior retrained under the same name leaves the config, and so every fingerprint, unchanged: the folder
    records the digest of each solver's weights and recomputes the items whose weights changed."""
    from padis_plugin.bench.weights import checkpoint_digests, run_records

    cfg = _retrainable(tmp_path, tiny_checkpoints)
    digests = checkpoint_digests(cfg)
    assert set(digests) == {"DDS"} and len(digests["DDS"]) == 64
    store = _finished_with_records(tmp_path / "out", cfg)
    written = json.loads((store.dir / RESOLVED).read_text())
    assert written["checkpoints"] == digests and set(written["settings"]) == {"ZF", "DDS"}
    assert written["settings"]["DDS"]["tau_scale"] == 0.5                        # the EDM family's tuned value
    ResultStore(store.dir).prepare(cfg, records=run_records(cfg))                # nothing changed: all kept
    assert len(ResultStore(store.dir).done()) == 4

    _retrain(tmp_path / "prior")
    now = run_records(cfg)
    assert now["checkpoints"]["DDS"] != digests["DDS"]
    ResultStore(store.dir).prepare(cfg, records=now)
    assert "weights or resolved settings (a changed default) of DDS changed" in capsys.readouterr().out
    assert {r.solver for r in ResultStore(store.dir).done().values()} == {"ZF"}
    assert json.loads((store.dir / RESOLVED).read_text())["checkpoints"] == now["checkpoints"]


def test_items_of_a_changed_default_are_computed_afresh_and_added_parameters_do_not_count(tmp_path,
                                                                                          tiny_checkpoints):
    """A config that leaves a parameter out runs whatever the default is: a changed default (or tuned value)
    recomputes that solver's items; a parameter added since (absent from the record) does not."""
    from padis_plugin.bench.weights import run_records

    cfg = _retrainable(tmp_path, tiny_checkpoints)
    store = _finished_with_records(tmp_path / "out", cfg)
    resolved = json.loads((store.dir / RESOLVED).read_text())
    resolved["settings"]["DDS"]["new_knob"] = 1                                  # as if added after the run
    (store.dir / RESOLVED).write_text(json.dumps(resolved))
    ResultStore(store.dir).prepare(cfg, records=run_records(cfg))
    assert len(ResultStore(store.dir).done()) == 4
    resolved = json.loads((store.dir / RESOLVED).read_text())
    resolved["settings"]["DDS"]["tau_scale"] = 1.0                               # the items ran with another default
    (store.dir / RESOLVED).write_text(json.dumps(resolved))
    ResultStore(store.dir).prepare(cfg, records=run_records(cfg))
    assert {r.solver for r in ResultStore(store.dir).done().values()} == {"ZF"}


def test_a_folder_without_records_is_reused_and_left_uncertified(tmp_path, tiny_checkpoints):
    """Items of a folder written before the records are kept, and their solvers stay unrecorded: the folder does
    not vouch for weights it cannot know the items ran with."""
    from padis_plugin.bench.weights import run_records

    cfg = _retrainable(tmp_path, tiny_checkpoints)
    store = _finished(tmp_path, cfg)                                               # no records
    ResultStore(store.dir).prepare(cfg, records=run_records(cfg))
    assert len(ResultStore(store.dir).done()) == 4
    written = json.loads((store.dir / RESOLVED).read_text())
    assert written["checkpoints"] == {} and written["settings"] == {}


def test_reuse_from_another_folder_refuses_items_of_other_weights(tmp_path, tiny_checkpoints):
    """Through prepare, with other labels here than there: the retrained solver's items stay behind."""
    from padis_plugin.bench.config import ReuseSource
    from padis_plugin.bench.weights import run_records

    cfg = _retrainable(tmp_path, tiny_checkpoints)
    _finished_with_records(tmp_path / "there", cfg)
    _retrain(tmp_path / "prior")
    mine = dataclasses.replace(cfg, solvers=[dataclasses.replace(e, label=f"{e.label} here") for e in cfg.solvers])
    mine = dataclasses.replace(mine, output=dataclasses.replace(mine.output, reuse_from=[
        ReuseSource(dir=str(tmp_path / "there"), solvers={"ZF here": "ZF", "DDS here": "DDS"})]))
    with pytest.warns(UserWarning, match="solver 'DDS' ran with other checkpoint weights or resolved settings"):
        ResultStore(tmp_path / "here").prepare(mine, records=run_records(mine))
    assert {r.solver for r in ResultStore(tmp_path / "here").done().values()} == {"ZF here"}


def test_prepare_keeps_reusable_items_and_clears_stale_outputs(tmp_path, capsys):
    old = _cfg()
    store = _finished(tmp_path, old)
    out = store.dir
    for name in ("recons/vol0_0/ZF_R4_seed0.npy", "figures/vol0_0_R4.png", "uncertainty/x_std.npy"):
        (out / name).parent.mkdir(parents=True, exist_ok=True)
        (out / name).write_bytes(b"x")
    store.save(store.collect(old, plan(old, SLICES), SimpleNamespace(ids=SLICES, size=32), "d.h5", ENV))
    new = _cfg(lamda=0.05)
    ResultStore(out).prepare(new)
    assert "reusing 4 finished item(s)" in capsys.readouterr().out
    assert {r.solver for r in ResultStore(out).done().values()} == {"ZF"}
    assert not (out / "results.json").exists() and not (out / "summary.md").exists()
    assert (out / "recons/vol0_0/ZF_R4_seed0.npy").is_file()          # a kept item's recon stays
    assert not (out / "figures").exists() and not (out / "uncertainty").exists()  # WL, shown there, changed
    assert json.loads((out / RESOLVED).read_text())["config"] == to_dict(new)


def test_other_ranks_read_the_folder_before_rank_0_rewrites_it(tmp_path):
    """Under torchrun, rank 0 rewrites a changed config's folder (removes the old resolved config, writes the
    new one) while the other ranks check it. Each rank reads all it needs before the barrier ``sync``, so a
    rank whose barrier returns into a half-rewritten folder (here: resolved config gone) still gets through.
    (Measured: without the barrier, rank 1 of a 2-process run stopped with 'unknown configuration'.)"""
    store = _finished(tmp_path, _cfg())
    out, new = store.dir, _cfg(lamda=0.05)
    calls = []

    def rank0_rewrites_meanwhile():
        calls.append("sync")
        (out / RESOLVED).unlink()

    ResultStore(out, rank=1).prepare(new, sync=rank0_rewrites_meanwhile)
    assert calls == ["sync"]
    # rank 0 waits at the same barrier before it changes anything
    store = _finished(tmp_path / "b", _cfg())
    old_hash = json.loads((store.dir / RESOLVED).read_text())["hash"]
    seen = []
    ResultStore(store.dir, rank=0).prepare(
        new, sync=lambda: seen.append(json.loads((store.dir / RESOLVED).read_text())["hash"]))
    assert seen == [old_hash]
    assert json.loads((store.dir / RESOLVED).read_text())["config"] == to_dict(new)


def test_prepare_rebuilds_partial_files_from_committed_results(tmp_path):
    cfg = _cfg()
    store = _finished(tmp_path, cfg)
    done = store.done()
    store.save(store.collect(cfg, plan(cfg, SLICES), SimpleNamespace(ids=SLICES, size=32), "d.h5", ENV))
    lines = (store.dir / PARTIAL_DIR / "rank0.jsonl").read_text()
    for p in (store.dir / PARTIAL_DIR).iterdir():  # a fresh clone: results.json, no partial files
        p.unlink()
    ResultStore(store.dir).prepare(cfg)
    assert ResultStore(store.dir).done() == done
    assert (store.dir / PARTIAL_DIR / "rank0.jsonl").read_text() == lines  # byte for byte


def test_prepare_refuses_a_folder_of_unknown_results(tmp_path):
    (tmp_path / "results.json").write_text("{}")
    with pytest.raises(ConfigError, match="unknown configuration"):
        ResultStore(tmp_path).prepare(_cfg())
    ResultStore(tmp_path).prepare(_cfg(), overwrite=True)
    assert not (tmp_path / "results.json").exists() and (tmp_path / RESOLVED).is_file()
