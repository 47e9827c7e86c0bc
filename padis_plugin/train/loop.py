"""Training loop for every prior family (PaDIS, EDM, HFS, patch-HFS; :mod:`padis_plugin.prior.families`):
:class:`Trainer` and :func:`train`.

The configuration (:class:`.config.TrainConfig`) and its learning-rate / EMA schedules live in :mod:`.config`.

One step: the family's loss (:mod:`.loss`; patch families draw a patch size and cut that many random
positioned patches, whole-image families draw a batch of images) averaged over the samples; backward; clip the gradient norm; skip the update if
the norm is not finite (counted as ``skipped``); Adam with a linear warm-up that ends after ``warmup_steps``
(then constant or cosine); EMA of the weights. Rank 0 writes a JSONL log, periodic checkpoints (safetensors +
JSON, never pickle, with optimizer, EMA and every random state, so ``resume=True`` continues step for step as if
never interrupted) and optional preview samples.

Scale-out: the same code runs under ``torchrun --nproc_per_node=K``: DistributedDataParallel on nccl (GPU) or
gloo (CPU), the configured batch split evenly over the ranks, the patch size shared by all ranks (a generator
seeded alike everywhere), positions, sigmas and noise drawn per rank.

Layout of an output folder::

    resolved_config.yaml   the configuration actually used
    train_log.jsonl        one line per step: step, loss, lr, seconds, elapsed, skipped, grad_norm, patch_size
    checkpoints/ckpt_step<N>.safetensors / .json    the newest ``run.keep_last`` of them (0 / null: all)
    latest.json            {"step": N, "checkpoint": "checkpoints/ckpt_step<N>"}, written after the checkpoint
    samples/step<N>.png    optional unconditional previews from the EMA weights
    .padis.lock            while a run writes the folder (rank 0's pid): a second run there is refused

Failures: a checkpoint that cannot be written completely is removed and latest.json keeps pointing at the
last complete one; a torn last line of the log (a kill during a write) is dropped with a warning on resume; a
folder whose run stopped before its first checkpoint is started afresh.
"""
from __future__ import annotations

import contextlib
import copy
import json
import os
import re
import signal
import sys
import threading
import time
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import yaml

from ..atomic import FolderLock, atomic_path, clean_stale_temps, read_jsonl, write_json, write_text
from ..checkpoints import (get_group, load_checkpoint, load_state_into, optimizer_state_from_tensors,
                           optimizer_state_to_tensors, save_checkpoint)
from ..errors import CheckpointError, ConfigError, PadisError, where
from ..kspace import center_crop
from ..prior.families import get_family
from ..prior.network import build_unet
from ..prior.precond import EDMPrecond
from ..prior.preview import edm_heun_sample  # noqa: F401  (was defined here; kept importable)
from .config import TrainConfig, ema_beta, learning_rate
from .data import TrainingImages, load_training_images

LOG_NAME, LATEST_NAME, CONFIG_NAME = "train_log.jsonl", "latest.json", "resolved_config.yaml"


# ------------------------------------------------------------------------------------------- distribution
@dataclass
class _Dist:
    rank: int = 0
    world: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")
    owns_group: bool = False               # we initialised the process group, so we destroy it

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world > 1


def _setup_distributed(device: str) -> _Dist:
    """Single process by default; under torchrun (WORLD_SIZE > 1) join the process group (nccl/gloo)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank, local_rank = int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = device.startswith("cuda") or (device == "auto" and torch.cuda.is_available())
    if use_cuda and not torch.cuda.is_available():
        raise ConfigError(f"run.device={device!r} but CUDA is not available")
    if use_cuda:
        dev = torch.device(device if device.startswith("cuda:") and world == 1 else f"cuda:{local_rank}")
        torch.cuda.set_device(dev)
    else:
        dev = torch.device("cpu")
    owns = world > 1 and not torch.distributed.is_initialized()
    if owns:
        torch.distributed.init_process_group("nccl" if use_cuda else "gloo")
    return _Dist(rank, world, local_rank, dev, owns)


# --------------------------------------------------------------------------------------- random states
def _rng_tensors(gens: dict[str, torch.Generator], device: torch.device) -> tuple[dict[str, torch.Tensor], dict]:
    """Every random state of this process as uint8/int64 tensors plus JSON (numpy's scalars)."""
    t = {name: g.get_state() for name, g in gens.items()}
    t["torch_cpu"] = torch.get_rng_state()
    if device.type == "cuda":
        t["torch_cuda"] = torch.cuda.get_rng_state(device)
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    t["numpy_keys"] = torch.from_numpy(keys.astype(np.int64))
    return t, {"numpy": [kind, int(pos), int(has_gauss), float(cached)]}


def _set_rng(t: dict[str, torch.Tensor], meta: dict, gens: dict[str, torch.Generator], device: torch.device):
    for name, g in gens.items():
        g.set_state(t[name].cpu())
    torch.set_rng_state(t["torch_cpu"].cpu())
    if device.type == "cuda" and "torch_cuda" in t:
        torch.cuda.set_rng_state(t["torch_cuda"].cpu(), device)
    kind, pos, has_gauss, cached = meta["numpy"]
    np.random.set_state((kind, t["numpy_keys"].numpy().astype(np.uint32), pos, has_gauss, cached))


def _rank_seed(seed: int, rank: int) -> int:
    return int(np.random.SeedSequence([int(seed), int(rank)]).generate_state(1)[0])


# ----------------------------------------------------------------------------------------------- helpers
class _StopFlag:
    """SIGINT/SIGTERM -> finish the current step, checkpoint, stop (a second signal interrupts at once)."""

    def __init__(self):
        self.raised = False
        self._old = {}

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._old[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, frame):
        if self.raised:
            raise KeyboardInterrupt
        self.raised = True

    def __exit__(self, *exc):
        for sig, old in self._old.items():
            signal.signal(sig, old)


def _update_ema(ema: torch.nn.Module, net: torch.nn.Module, beta: float) -> None:
    with torch.no_grad():
        for pe, p in zip(ema.parameters(), net.parameters()):
            pe.lerp_(p.detach().to(pe.dtype), 1.0 - beta)
        for be, b in zip(ema.buffers(), net.buffers()):
            be.copy_(b)


def _truncate_log(path: Path, step: int) -> None:
    """Drop log lines after ``step`` (written after the checkpoint being resumed from) and a torn last line."""
    if not path.is_file():
        return
    keep = [r for r in read_jsonl(path) if r["step"] <= step]
    write_text(path, "".join(json.dumps(r) + "\n" for r in keep))


def read_log(out_dir) -> list[dict]:
    """The JSONL training log of an output folder as a list of records (a torn last line is dropped with a
    warning; a damaged line before it raises :class:`DataError`)."""
    return read_jsonl(Path(out_dir) / LOG_NAME)


def _append(log, path: Path, text: str) -> None:
    """Write ``text`` to the unbuffered log file ``log``; a failed write names ``path``."""
    data = text.encode()
    try:
        while data:
            data = data[log.write(data):]
    except OSError as exc:
        raise OSError(exc.errno, exc.strerror or str(exc), str(path)) from exc


def _checkpoint_files(stem: Path) -> list[Path]:
    return [Path(str(stem) + ".safetensors"), Path(str(stem) + ".json")]


def loss_tenths(log: list[dict]) -> dict[str, float]:
    """Mean loss over the first, middle and last tenth of a run's log: a convergence summary."""
    losses = np.asarray([r["loss"] for r in log], dtype=float)
    n = max(1, len(losses) // 10)
    mid = len(losses) // 2 - n // 2
    return {"first_tenth": float(losses[:n].mean()), "middle_tenth": float(losses[mid:mid + n].mean()),
            "last_tenth": float(losses[-n:].mean())}


def latest_checkpoint(out_dir) -> Path | None:
    """Stem of the checkpoint ``latest.json`` points to (None when there is none); CheckpointError if broken."""
    pointer = Path(out_dir) / LATEST_NAME
    if not pointer.is_file():
        return None
    try:
        rel = json.loads(pointer.read_text())["checkpoint"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise CheckpointError(where(pointer, f"unreadable latest-checkpoint pointer ({exc})")) from None
    return Path(out_dir) / rel


# ------------------------------------------------------------------------------------------------- train
class Trainer:
    """State of one training run (built by :func:`train`); kept as an object so tests can inspect it."""

    def __init__(self, cfg: TrainConfig, out_dir=None, progress: bool | None = None):
        cfg.validate()
        self.cfg = cfg
        self.out = Path(out_dir if out_dir is not None else cfg.run.out)
        self.progress = cfg.run.progress if progress is None else progress
        self.dist = _setup_distributed(cfg.run.device)
        dev, rank, world = self.dist.device, self.dist.rank, self.dist.world
        # bf16 autocast only on GPU: on CPU it measured ~35x slower than fp32 (padis-small, 2 cores)
        self.bf16 = cfg.run.precision == "bf16" and dev.type == "cuda"
        if cfg.run.precision == "bf16" and not self.bf16:
            warnings.warn("run.precision=bf16 applies on CUDA only; training in fp32 on the CPU")
        torch.manual_seed(_rank_seed(cfg.run.seed, rank))      # dropout
        np.random.seed(_rank_seed(cfg.run.seed, rank) % 2 ** 32)

        d = cfg.data
        self.data: TrainingImages = load_training_images(d.path, d.num_slices, d.seed, d.patients, d.contrasts,
                                                         d.one_per_patient)
        self.images = self.data.images.to(dev)
        N = self.images.shape[-1]
        self.model_config = cfg.model_config()
        self.family = get_family(cfg.kind)
        self.loss_fn = self.family.loss_class().from_config(cfg, N, world)
        self.pad = getattr(self.loss_fn, "pad", None)   # patch families: the training canvas padding

        self.net = EDMPrecond(build_unet(self.model_config), cfg.model.sigma_data).to(dev).train()
        self.ema = copy.deepcopy(self.net).eval().requires_grad_(False)
        self.optimizer = torch.optim.Adam(self.net.parameters(), lr=cfg.optim.lr, betas=tuple(cfg.optim.betas),
                                          eps=cfg.optim.eps)
        # shared: same stream on every rank (patch size); local: per rank (images, positions, sigma, noise)
        self.gens = {"shared": torch.Generator("cpu").manual_seed(cfg.run.seed),
                     "local": torch.Generator(dev).manual_seed(_rank_seed(cfg.run.seed + 1, rank))}
        self.step, self.skipped, self.elapsed, self._in_step = 0, 0, 0.0, False
        self.ddp = self.net
        if self.dist.active:
            self.ddp = torch.nn.parallel.DistributedDataParallel(
                self.net, device_ids=[dev.index] if dev.type == "cuda" else None)

    # ---------------------------------------------------------------- checkpoints
    def checkpoint_config(self) -> dict:
        """JSON part of a checkpoint: loadable by :func:`padis_plugin.prior.denoiser.load_prior`, plus provenance."""
        cfg = self.cfg
        out = {"kind": cfg.kind, "model": self.model_config, "sigma_data": cfg.model.sigma_data}
        out.update(self.loss_fn.checkpoint_config())   # the family's denoiser settings
        out["training"] = {"step": self.step, "steps": cfg.run.steps, "skipped": self.skipped,
                           "elapsed_s": self.elapsed, "seed": cfg.run.seed, "world_size": self.dist.world,
                           "precision": cfg.run.precision, "loss": asdict(cfg.loss)}
        out["data"] = self.data.provenance()
        out["train_config"] = asdict(cfg)
        return out

    def save(self) -> Path | None:
        """Checkpoint the current step (all ranks take part: random states are gathered to rank 0)."""
        rng, rng_meta = _rng_tensors(self.gens, self.dist.device)
        if self.dist.active:
            gathered = [None] * self.dist.world
            torch.distributed.all_gather_object(gathered, ({k: v.cpu() for k, v in rng.items()}, rng_meta))
        else:
            gathered = [(rng, rng_meta)]
        if not self.dist.main:
            return None
        optim_t, optim_meta = optimizer_state_to_tensors(self.optimizer.state_dict())
        groups = {"model": self.net.unet.state_dict(), "ema": self.ema.unet.state_dict(), "optim": optim_t,
                  "rng": {f"rank{r}_{k}": v for r, (t, _) in enumerate(gathered) for k, v in t.items()}}
        config = self.checkpoint_config()
        config["resume"] = {"optimizer": optim_meta, "rng": [m for _, m in gathered]}
        rel = f"checkpoints/ckpt_step{self.step:07d}"
        try:
            save_checkpoint(self.out / rel, groups, config)
            write_json(self.out / LATEST_NAME, {"step": self.step, "checkpoint": rel})
        except BaseException:
            # latest.json still names the last complete checkpoint: remove what was written of this one
            try:
                pointed = latest_checkpoint(self.out)
            except CheckpointError:
                pointed = None
            if pointed != self.out / rel:
                for path in _checkpoint_files(self.out / rel):
                    path.unlink(missing_ok=True)
            raise
        self.prune_checkpoints()
        return self.out / rel

    def prune_checkpoints(self) -> list[Path]:
        """Delete all but the newest ``run.keep_last`` checkpoints (0 / None: keep all); never the one
        latest.json points to. Returns the deleted files; a file that cannot be deleted only warns."""
        keep = self.cfg.run.keep_last
        if not keep:
            return []
        latest = latest_checkpoint(self.out)
        by_step: dict[int, list[Path]] = {}
        for path in (self.out / "checkpoints").glob("ckpt_step*"):
            m = re.fullmatch(r"ckpt_step(\d+)\.(safetensors|json)", path.name)
            if m:
                by_step.setdefault(int(m[1]), []).append(path)
        deleted = []
        for step in sorted(by_step)[:-keep]:
            for path in by_step[step]:
                if latest is not None and path.name.startswith(latest.name + "."):
                    continue
                try:
                    path.unlink()
                    deleted.append(path)
                except FileNotFoundError:
                    pass
                except OSError as exc:
                    warnings.warn(f"{path}: cannot delete an old checkpoint ({exc})")
        return deleted

    def restore(self, stem: Path) -> None:
        """Load model, EMA, optimizer, step and random states from checkpoint ``stem`` (checked to match)."""
        groups, config = load_checkpoint(stem)
        path = Path(str(stem) + ".json")
        mine = json.loads(json.dumps(self.checkpoint_config()))   # tuples -> lists, as stored
        for key in ("kind", "model", "sigma_data", "patch_training", "band_width"):
            if config.get(key) != mine.get(key):
                raise CheckpointError(where(path, f"checkpoint {key!r} = {config.get(key)!r} does not match the "
                                                  f"config ({mine.get(key)!r})"))
        if config.get("data", {}).get("ids") != self.data.ids:
            raise CheckpointError(where(path, "checkpoint was trained on other slices than data.* selects"))
        try:
            load_state_into(self.net.unet, get_group(groups, "model", path), path)
            load_state_into(self.ema.unet, get_group(groups, "ema", path), path)
            self.optimizer.load_state_dict(optimizer_state_from_tensors(get_group(groups, "optim", path),
                                                                        config["resume"]["optimizer"]))
            tr = config["training"]
            self.step, self.skipped, self.elapsed = int(tr["step"]), int(tr["skipped"]), float(tr["elapsed_s"])
            rng = get_group(groups, "rng", path)
            metas = config["resume"]["rng"]
            prefix = f"rank{self.dist.rank}_"
            if tr["world_size"] == self.dist.world:
                _set_rng({k[len(prefix):]: v for k, v in rng.items() if k.startswith(prefix)},
                         metas[self.dist.rank], self.gens, self.dist.device)
            else:  # cannot continue the same streams: reseed them deterministically from (seed, step, rank)
                warnings.warn(f"{path}: saved with {tr['world_size']} processes, resumed with {self.dist.world}: "
                              "random streams are reseeded, the run will not match an uninterrupted one")
                _set_rng({k[len("rank0_"):]: v for k, v in rng.items() if k.startswith("rank0_")}, metas[0],
                         self.gens, self.dist.device)
                self.gens["local"].manual_seed(_rank_seed(self.cfg.run.seed + 1 + self.step, self.dist.rank))
                torch.manual_seed(_rank_seed(self.cfg.run.seed + self.step, self.dist.rank))
        except (KeyError, IndexError, TypeError, ValueError, RuntimeError) as exc:
            if isinstance(exc, PadisError):
                raise
            raise CheckpointError(where(path, f"cannot restore training state ({type(exc).__name__}: {exc})")) \
                from None

    # ---------------------------------------------------------------- one step
    def train_step(self) -> dict:
        cfg, dev = self.cfg, self.dist.device
        self._in_step = True
        t0 = time.perf_counter()
        lr = learning_rate(self.step, cfg.optim, cfg.run.steps)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        self.optimizer.zero_grad(set_to_none=True)
        autocast = torch.autocast(dev.type, dtype=torch.bfloat16, enabled=self.bf16)
        with autocast:
            losses = self.loss_fn(self.ddp, self.images, self.gens["local"], self.gens["shared"])
        patch_size = self.loss_fn.last_patch_size
        loss = losses.float().mean()
        loss.backward()
        params = [p for p in self.net.parameters() if p.grad is not None]
        grad_norm = torch.nn.utils.clip_grad_norm_(params, cfg.optim.grad_clip or float("inf"))
        # gradients are all-reduced, so every rank sees the same norm and takes the same decision
        finite = bool(torch.isfinite(grad_norm))
        if finite:
            self.optimizer.step()
            _update_ema(self.ema, self.net, ema_beta(self.step + 1, cfg.ema))
        else:
            self.skipped += 1
        self.step += 1
        self._in_step = False
        seconds = time.perf_counter() - t0
        self.elapsed += seconds
        return {"step": self.step, "loss": float(loss.detach()), "lr": lr, "seconds": round(seconds, 6),
                "elapsed": round(self.elapsed, 3), "skipped": self.skipped,
                "grad_norm": float(grad_norm) if finite else None, "patch_size": patch_size}

    # ---------------------------------------------------------------- preview
    def preview(self) -> Path:
        """Unconditional sample from the EMA weights (few Heun steps, small image) saved as a magnitude PNG."""
        import matplotlib
        matplotlib.use("Agg", force=False)
        import matplotlib.pyplot as plt

        cfg, dev = self.cfg, self.dist.device
        size = cfg.run.sample_size or min(self.images.shape[-1], 128)
        g = torch.Generator(dev).manual_seed(cfg.run.seed)      # own generator: training streams untouched
        den = self.family.denoiser(self.ema, **self.loss_fn.preview_settings(size))
        reference = (torch.as_tensor(center_crop(self.images[:1].cpu().numpy(), (size, size)))
                     if self.family.hfs else None)   # the HFS preview keeps this image's low band
        x = self.family.preview(den, (1, 2, size, size), cfg.run.sample_steps, g, device=dev, reference=reference)
        mag = torch.linalg.vector_norm(x[0].float(), dim=0).cpu().numpy()
        path = self.out / "samples" / f"step{self.step:07d}.png"
        with atomic_path(path) as tmp:
            plt.imsave(tmp, mag, cmap="gray", vmin=0, vmax=max(float(np.percentile(mag, 99.5)), 1e-6), format="png")
        return path

    # ---------------------------------------------------------------- loop
    def run(self, resume: bool = False, callback: Callable[[int, dict], None] | None = None) -> dict:
        lock = self._lock()
        try:
            return self._run(resume, callback)
        finally:
            if lock is not None:
                lock.release()

    def _lock(self) -> FolderLock | None:
        """Rank 0 takes the output folder's lock (and removes temporaries of killed writes there); under
        torchrun the other ranks share the folder and stop too when rank 0 cannot have it."""
        lock, problem = None, None
        if self.dist.main:
            try:
                lock = FolderLock(self.out, "training output folder").acquire()
                clean_stale_temps(self.out, recursive=True)
            except (PadisError, OSError) as exc:
                problem = exc
        if self.dist.active:
            told = [None if problem is None else str(problem)]
            torch.distributed.broadcast_object_list(told, src=0)
            if told[0] is not None and problem is None:
                raise ConfigError(f"rank 0: {told[0]}")
        if problem is not None:
            raise problem
        return lock

    def _run(self, resume: bool, callback) -> dict:
        cfg, main = self.cfg, self.dist.main
        log_path = self.out / LOG_NAME
        has_checkpoint = (self.out / LATEST_NAME).exists()
        # a run killed before its first checkpoint leaves a log / config but nothing to resume: start afresh
        stopped_early = not has_checkpoint and (log_path.exists() or (self.out / CONFIG_NAME).exists())
        if resume and has_checkpoint:
            self.restore(latest_checkpoint(self.out))
        elif resume and not stopped_early:
            raise CheckpointError(where(self.out / LATEST_NAME, "no checkpoint to resume from"))
        elif has_checkpoint:
            raise ConfigError(where(self.out, "output folder already holds a training run; pass --resume "
                                              "to continue it or choose another --out"))
        if stopped_early and main:
            print(f"{self.out}: the run here stopped before its first checkpoint; starting it afresh",
                  file=sys.stderr)
        if self.dist.active:
            torch.distributed.barrier()   # every rank has checked the folder before rank 0 writes to it
        if main:
            self.out.mkdir(parents=True, exist_ok=True)
            if stopped_early:  # its log, previews and any checkpoint files latest.json never named
                log_path.unlink(missing_ok=True)
                stale = [*(self.out / "checkpoints").glob("ckpt_step*"), *(self.out / "samples").glob("step*.png")]
                for path in stale:
                    path.unlink(missing_ok=True)
            write_text(self.out / CONFIG_NAME, yaml.safe_dump(asdict(cfg), sort_keys=False))
            _truncate_log(log_path, self.step)
        from tqdm.auto import tqdm

        bar = tqdm(total=cfg.run.steps, initial=self.step, disable=not (self.progress and main), desc="train",
                   dynamic_ncols=True)
        last_saved = self.step if resume else None
        try:
            # unbuffered: each record goes out in one write, nothing is left to flush at close
            log_file = open(log_path, "ab", buffering=0) if main else contextlib.nullcontext()
            with _StopFlag() as stop, log_file as log:
                while self.step < cfg.run.steps:
                    record = self.train_step()
                    if callback is not None:
                        callback(self.step, record)
                    stop_now = stop.raised
                    if self.dist.active:   # one all-reduce: mean loss for the log + anyone asked to stop
                        t = torch.tensor([record["loss"], float(stop_now)], device=self.dist.device)
                        torch.distributed.all_reduce(t)
                        record["loss"], stop_now = float(t[0]) / self.dist.world, bool(t[1] > 0)
                    if main and (self.step % cfg.run.log_every == 0 or self.step == cfg.run.steps):
                        _append(log, log_path, json.dumps(record) + "\n")
                    bar.update(1)
                    bar.set_postfix(loss=f"{record['loss']:.4g}", skipped=self.skipped, refresh=False)
                    if self.step % cfg.run.checkpoint_every == 0 or self.step == cfg.run.steps or stop_now:
                        self.save()
                        last_saved = self.step
                    if main and cfg.run.sample_every and self.step % cfg.run.sample_every == 0:
                        self.preview()
                    if stop_now:
                        raise KeyboardInterrupt(f"interrupted: checkpoint saved at step {self.step}")
        except KeyboardInterrupt:
            # raised between steps (e.g. by a callback) the state is consistent: keep it; raised inside a step
            # the random streams have moved on, so the last checkpoint stays the resume point
            if last_saved != self.step and self.step > 0 and not self._in_step and not self.dist.active:
                self.save()
            raise
        finally:
            bar.close()
        stem = latest_checkpoint(self.out) if main else None
        return {"out": str(self.out), "step": self.step, "skipped": self.skipped, "elapsed_s": self.elapsed,
                "checkpoint": str(stem) if stem else None}


def train(cfg: TrainConfig, out_dir=None, resume: bool = False, progress: bool | None = None,
          callback: Callable[[int, dict], None] | None = None) -> dict:
    """Train a prior as configured; return ``{"out", "step", "skipped", "elapsed_s", "checkpoint"}``.

    ``resume=True`` continues from ``<out>/latest.json`` exactly (weights, EMA, Adam, step, random states).
    SIGINT/SIGTERM finish the current step, write a checkpoint and raise :class:`KeyboardInterrupt`.
    ``callback(step, record)`` runs after every step (on every rank, before logging and checkpointing).
    """
    trainer = Trainer(cfg, out_dir, progress)
    try:
        return trainer.run(resume=resume, callback=callback)
    finally:
        if trainer.dist.owns_group and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()
