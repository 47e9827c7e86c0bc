"""Training loop for every prior family (PaDIS, EDM, HFS, patch-HFS; :mod:`padis_plugin.prior.families`):
:class:`Trainer` and :func:`train`.

The configuration (:class:`.config.TrainConfig`) and its learning-rate / EMA schedules live in :mod:`.config`;
the process's place in a run in :mod:`.distributed`; random states, EMA update and stop flag in :mod:`.state`;
the log in :mod:`.run_log`; the checkpoint files, latest.json and keep-last pruning in :mod:`.checkpointing`.

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
import hashlib
import json
import sys
import time
import warnings
from dataclasses import asdict
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import yaml

from ..atomic import FolderLock, atomic_path, clean_stale_temps, write_json, write_text
from ..checkpoints import (get_group, load_checkpoint, load_state_into, optimizer_state_from_tensors,
                           optimizer_state_to_tensors, save_checkpoint)
from ..errors import CheckpointError, ConfigError, PadisError, where
from ..kspace import center_crop
from ..prior.families import get_family
from ..prior.network import build_unet
from ..prior.precond import EDMPrecond
from ..prior.preview import edm_heun_sample  # noqa: F401  (was defined here; kept importable)
from .checkpointing import (LATEST_NAME, checkpoint_stem, discard_unfinished, latest_checkpoint,
                            prune_checkpoints)
from .config import TrainConfig, ema_beta, learning_rate
from .data import TrainingImages, load_training_images
from .distributed import setup_distributed
from .run_log import LOG_NAME, loss_tenths, read_log, truncate_log  # noqa: F401  (loss_tenths: kept importable)
from .run_log import append_text as _append  # looked up here at each write (a test makes it fail)
from .state import StopFlag, rank_seed, rng_tensors, set_rng, update_ema
from ..ranks import require_same

MAX_SKIPPED_IN_A_ROW = 3  # non-finite gradient steps in a row that end a run as diverged


class TrainingDivergedError(PadisError, RuntimeError):
    """The loss stayed non-finite: the weights diverged (too large a learning rate, or bad data)."""

CONFIG_NAME = "resolved_config.yaml"


# ------------------------------------------------------------------------------------------------- train
class Trainer:
    """State of one training run (built by :func:`train`); kept as an object so tests can inspect it."""

    def __init__(self, cfg: TrainConfig, out_dir=None, progress: bool | None = None):
        cfg.validate()
        self.cfg = cfg
        self.out = Path(out_dir if out_dir is not None else cfg.run.out)
        self.progress = cfg.run.progress if progress is None else progress
        self.dist = setup_distributed(cfg.run.device)
        require_same(hashlib.sha256(json.dumps(asdict(cfg), sort_keys=True, default=str).encode()).hexdigest()[:16],
                     "training configs")
        dev, rank, world = self.dist.device, self.dist.rank, self.dist.world
        # bf16 autocast only on GPU: on CPU it measured ~35x slower than fp32 (padis-small, 2 cores)
        self.bf16 = cfg.run.precision == "bf16" and dev.type == "cuda"
        if cfg.run.precision == "bf16" and not self.bf16:
            warnings.warn("run.precision=bf16 applies on CUDA only; training in fp32 on the CPU")
        torch.manual_seed(rank_seed(cfg.run.seed, rank))      # dropout
        np.random.seed(rank_seed(cfg.run.seed, rank) % 2 ** 32)

        d = cfg.data
        self.data: TrainingImages = load_training_images(d.path, d.num_slices, d.seed, d.patients, d.contrasts,
                                                         d.one_per_patient)
        self.images = self.data.images.to(dev)
        N = self.images.shape[-1]
        self.model_config = cfg.model_config()
        channels = cfg.image_channels()
        if self.images.shape[1] != channels:
            raise ConfigError(where(self.data.path, f"the training images have {self.images.shape[1]} channels but "
                                                    f"'model.overrides.image_channels' is {channels} (2 when not set)"))
        self.family = get_family(cfg.kind)
        self.loss_fn = self.family.loss_class().from_config(cfg, N, world)
        self.pad = getattr(self.loss_fn, "pad", None)   # patch families: the training canvas padding

        self.net = EDMPrecond(build_unet(self.model_config), cfg.model.sigma_data).to(dev).train()
        self.ema = copy.deepcopy(self.net).eval().requires_grad_(False)
        self.optimizer = torch.optim.Adam(self.net.parameters(), lr=cfg.optim.lr, betas=tuple(cfg.optim.betas),
                                          eps=cfg.optim.eps)
        # shared: same stream on every rank (patch size); local: per rank (images, positions, sigma, noise)
        self.gens = {"shared": torch.Generator("cpu").manual_seed(cfg.run.seed),
                     "local": torch.Generator(dev).manual_seed(rank_seed(cfg.run.seed + 1, rank))}
        self.step, self.skipped, self.elapsed, self._in_step = 0, 0, 0.0, False
        self._skipped_in_a_row = 0
        self.ddp = self.net
        if self.dist.active:
            self.ddp = torch.nn.parallel.DistributedDataParallel(
                self.net, device_ids=[dev.index] if dev.type == "cuda" else None)

    # ---------------------------------------------------------------- checkpoints
    def checkpoint_config(self) -> dict:
        """JSON part of a checkpoint: loadable by :func:`padis_plugin.prior.families.load_prior`, plus provenance."""
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
        """Checkpoint the current step (all ranks take part: random states are gathered to rank 0). Weights
        that are no longer finite are never written: the run stops and the last checkpoint stays the good one."""
        if not all(bool(torch.isfinite(p).all()) for p in self.net.parameters()):  # same weights on every rank
            raise TrainingDivergedError(f"step {self.step}: the weights are no longer finite: training diverged "
                                        "(lower optim.lr); the checkpoints written so far are kept")
        rng, rng_meta = rng_tensors(self.gens, self.dist.device)
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
        rel = checkpoint_stem(self.step)
        try:
            save_checkpoint(self.out / rel, groups, config)
            write_json(self.out / LATEST_NAME, {"step": self.step, "checkpoint": rel})
        except BaseException:
            # latest.json still names the last complete checkpoint: remove what was written of this one
            discard_unfinished(self.out, self.out / rel)
            raise
        self.prune_checkpoints()
        return self.out / rel

    def prune_checkpoints(self) -> list[Path]:
        """Delete all but the newest ``run.keep_last`` checkpoints (:func:`.checkpointing.prune_checkpoints`)."""
        return prune_checkpoints(self.out, self.cfg.run.keep_last)

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
                set_rng({k[len(prefix):]: v for k, v in rng.items() if k.startswith(prefix)},
                         metas[self.dist.rank], self.gens, self.dist.device)
            else:  # cannot continue the same streams: reseed them deterministically from (seed, step, rank)
                warnings.warn(f"{path}: saved with {tr['world_size']} processes, resumed with {self.dist.world}: "
                              "random streams are reseeded, the run will not match an uninterrupted one")
                set_rng({k[len("rank0_"):]: v for k, v in rng.items() if k.startswith("rank0_")}, metas[0],
                         self.gens, self.dist.device)
                self.gens["local"].manual_seed(rank_seed(self.cfg.run.seed + 1 + self.step, self.dist.rank))
                torch.manual_seed(rank_seed(self.cfg.run.seed + self.step, self.dist.rank))
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
            update_ema(self.ema, self.net, ema_beta(self.step + 1, cfg.ema))
            self._skipped_in_a_row = 0
        else:  # an isolated overflow is skipped; a run of them is divergence (every rank sees the same norm)
            self.skipped += 1
            self._skipped_in_a_row += 1
            if self._skipped_in_a_row >= MAX_SKIPPED_IN_A_ROW:
                self._in_step = False
                raise TrainingDivergedError(
                    f"step {self.step + 1}: the loss is {float(loss.detach())} and the gradients non-finite for "
                    f"{self._skipped_in_a_row} steps in a row: training diverged (lower optim.lr, or check the "
                    "data); the checkpoints written so far are kept, --resume continues from the last one")
        self.step += 1
        self._in_step = False
        seconds = time.perf_counter() - t0
        self.elapsed += seconds
        return {"step": self.step, "loss": float(loss.detach()), "lr": lr, "seconds": round(seconds, 6),
                "elapsed": round(self.elapsed, 3), "skipped": self.skipped,
                "grad_norm": float(grad_norm) if finite else None, "patch_size": patch_size}

    # ---------------------------------------------------------------- preview
    def preview(self) -> Path:
        """Unconditional sample from the EMA weights (few Heun steps, small image) saved as a PNG of the root sum
        of squares of its channels (the magnitude of a 2-channel image)."""
        import matplotlib
        matplotlib.use("Agg", force=False)
        import matplotlib.pyplot as plt

        cfg, dev = self.cfg, self.dist.device
        size = cfg.run.sample_size or min(self.images.shape[-1], 128)
        g = torch.Generator(dev).manual_seed(cfg.run.seed)      # own generator: training streams untouched
        den = self.family.denoiser(self.ema, **self.loss_fn.preview_settings(size))
        reference = (torch.as_tensor(center_crop(self.images[:1].cpu().numpy(), (size, size)))
                     if self.family.hfs else None)   # the HFS preview keeps this image's low band
        shape = (1, self.net.image_channels, size, size)
        x = self.family.preview(den, shape, cfg.run.sample_steps, g, device=dev, reference=reference)
        mag = torch.linalg.vector_norm(x[0].float(), dim=0).cpu().numpy()   # root sum of squares of the channels
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
            truncate_log(log_path, self.step)
        from ..progress import progress_bar

        bar = progress_bar(total=cfg.run.steps, initial=self.step, enabled=bool(self.progress and main), desc="train",
                           unit="step")
        last_saved = self.step if resume else None
        try:
            # unbuffered: each record goes out in one write, nothing is left to flush at close
            log_file = open(log_path, "ab", buffering=0) if main else contextlib.nullcontext()
            with StopFlag() as stop, log_file as log:
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
