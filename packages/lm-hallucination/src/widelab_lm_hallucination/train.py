"""Training with optax: AdamW, warmup + cosine, clipping, checkpoints and exact resume.

A checkpoint holds the parameters, the optimizer state, the step, the PRNG key and the
data cursor ``(epoch, row)``; it is written to a temporary file and renamed, so an
interrupted write leaves the previous checkpoint intact. On CPU a resumed run repeats
the uninterrupted run's losses bit for bit: the stream is a pure function of the
cursor and the compiled step is the same.
"""

from __future__ import annotations

import dataclasses
import functools
import io
import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from widelab_core.command import atomic_write

from .corpus import FactStream
from .model import FAST_COMPILE, LMConfig, flops_per_token, init_lm, next_token_loss

CHECKPOINT = "checkpoint.npz"
METRICS = "metrics.jsonl"


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Optimisation settings.

    Attributes:
        steps: number of optimizer steps.
        batch_size: packed rows per step.
        lr: peak learning rate.
        warmup: linear warmup steps (capped at a tenth of ``steps``).
        min_lr_ratio: final learning rate over peak (cosine decay).
        weight_decay: AdamW decoupled weight decay (matrices only).
        clip: global gradient-norm clip.
        seed: seed of parameters, data order and step keys.
        log_every: steps between JSONL metric lines.
        checkpoint_every: steps between checkpoints (0: only at the end).
    """

    steps: int = 200
    batch_size: int = 16
    lr: float = 3e-3
    warmup: int = 50
    min_lr_ratio: float = 0.1
    weight_decay: float = 0.01
    clip: float = 1.0
    seed: int = 0
    log_every: int = 10
    checkpoint_every: int = 0

    def __post_init__(self):
        if self.steps < 1 or self.batch_size < 1:
            raise ValueError(
                f"TrainConfig: steps and batch_size must be >= 1, got {self.steps}, "
                f"{self.batch_size}"
            )
        if not self.lr > 0:
            raise ValueError(f"TrainConfig: lr must be positive, got {self.lr}")


class TrainState(NamedTuple):
    """Everything needed to continue training."""

    params: Any
    opt_state: Any
    step: int
    key: jax.Array
    cursor: tuple[int, int]


def make_optimizer(tc: TrainConfig) -> optax.GradientTransformation:
    """``clip_by_global_norm`` then AdamW under a warmup + cosine schedule
    (Loshchilov & Hutter 2019; Hoffmann et al. 2022 use the same schedule shape)."""
    warm = max(1, min(tc.warmup, tc.steps // 10))
    sched = optax.warmup_cosine_decay_schedule(
        0.0, tc.lr, warm, max(tc.steps, warm + 1), end_value=tc.lr * tc.min_lr_ratio
    )
    mask = lambda p: jax.tree.map(lambda x: x.ndim >= 2, p)
    return optax.chain(
        optax.clip_by_global_norm(tc.clip),
        optax.adamw(sched, b1=0.9, b2=0.98, weight_decay=tc.weight_decay, mask=mask),
    )


@functools.lru_cache(maxsize=32)
def make_train_step(cfg: LMConfig, tc: TrainConfig, pad_id: int = 0):
    """A jit-compiled ``step(params, opt_state, rows, key) -> (params, opt_state, loss,
    gnorm)``; ``key`` drives dropout.

    Cached per ``(cfg, tc)``, so repeated runs of one configuration compile once.
    """
    optimizer = make_optimizer(tc)

    def step(params, opt_state, rows, key):
        loss, grads = jax.value_and_grad(lambda p: next_token_loss(cfg, p, rows, pad_id, key))(
            params
        )
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss, optax.tree.norm(grads)

    return jax.jit(step, donate_argnums=(0, 1))


def init_state(cfg: LMConfig, tc: TrainConfig, params=None) -> TrainState:
    """Fresh state (or one starting from given ``params``, for fine-tuning)."""
    key = jax.random.key(tc.seed)
    k_init, key = jax.random.split(key)
    if params is None:
        params = init_lm(cfg, k_init)
    else:
        params = jax.tree.map(jnp.array, params)  # own copy: the step donates its buffers
    opt_init = jax.jit(make_optimizer(tc).init, compiler_options=FAST_COMPILE)
    return TrainState(params, opt_init(params), 0, key, (0, 0))


# ---------------------------------------------------------------------------
# Checkpoints


def save_checkpoint(path: str | Path, state: TrainState) -> None:
    """Write ``state`` atomically (temporary file + rename) as one ``.npz``."""
    leaves = jax.tree.leaves((state.params, state.opt_state))
    meta = {
        "step": int(state.step),
        "cursor": [int(c) for c in state.cursor],
        "n_leaves": len(leaves),
    }
    arrays = {f"leaf_{i}": np.asarray(x) for i, x in enumerate(leaves)}
    arrays["key"] = np.asarray(jax.random.key_data(state.key))
    arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), np.uint8)
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    atomic_write(Path(path), buf.getvalue())


def load_checkpoint(path: str | Path, template: TrainState) -> TrainState:
    """Read a checkpoint into the structure of ``template`` (a fresh state).

    Raises:
        ValueError: the file does not match the template's model/optimizer structure.
    """
    with np.load(path) as z:
        meta = json.loads(bytes(z["meta"]).decode())
        treedef = jax.tree.structure((template.params, template.opt_state))
        if meta["n_leaves"] != treedef.num_leaves:
            raise ValueError(
                f"{path}: checkpoint has {meta['n_leaves']} arrays but the model and "
                f"optimizer need {treedef.num_leaves}; was it written for another config?"
            )
        ref = jax.tree.leaves((template.params, template.opt_state))
        leaves = []
        for i, r in enumerate(ref):
            a = z[f"leaf_{i}"]
            if a.shape != tuple(r.shape):
                raise ValueError(f"{path}: array {i} has shape {a.shape}, expected {r.shape}")
            leaves.append(jnp.asarray(a, dtype=r.dtype))
        key = jax.random.wrap_key_data(jnp.asarray(z["key"]))
    params, opt_state = jax.tree.unflatten(treedef, leaves)
    return TrainState(params, opt_state, meta["step"], key, tuple(meta["cursor"]))


# ---------------------------------------------------------------------------
# Throughput


_GPU_PEAK = {"h100": 989e12, "h200": 989e12, "a100": 312e12, "l4": 121e12, "v100": 125e12}


def peak_flops(device: jax.Device | None = None) -> float:
    """Peak FLOP/s used for MFU.

    ``WIDELAB_PEAK_FLOPS`` overrides. GPUs: dense bf16 tensor-core peak by device
    kind. CPUs: ``cores * clock * 32`` (two 8-wide float32 FMA units per core).
    """
    env = os.environ.get("WIDELAB_PEAK_FLOPS")
    if env:
        return float(env)
    device = device or jax.devices()[0]
    kind = device.device_kind.lower()
    if device.platform == "gpu":
        for k, v in _GPU_PEAK.items():
            if k in kind:
                return v
        return 100e12
    ghz = 2.5
    try:
        with open("/proc/cpuinfo") as f:
            mhz = [float(ln.split(":")[1]) for ln in f if ln.startswith("cpu MHz")]
        ghz = max(mhz) / 1000 if mhz else ghz
    except OSError:  # pragma: no cover - non-Linux
        pass
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return float(cores or 1) * ghz * 1e9 * 32.0


# ---------------------------------------------------------------------------
# Loop


@dataclasses.dataclass
class TrainResult:
    """Outcome of :func:`train`.

    Attributes:
        state: final state.
        losses: loss of every step run in this call (step order).
        tokens_per_s: throughput over the steps of this call after the first (compile).
        mfu: model FLOPs utilisation at that throughput.
    """

    state: TrainState
    losses: list[float]
    tokens_per_s: float
    mfu: float


def train(
    cfg: LMConfig,
    tc: TrainConfig,
    stream: FactStream,
    *,
    run_dir: str | Path | None = None,
    resume: bool = True,
    init_params=None,
    stop_after: int | None = None,
    callback: Callable[[TrainState, float], None] | None = None,
    progress: bool = False,
) -> TrainResult:
    """Train a language model on a fact stream.

    Args:
        cfg: model shape.
        tc: optimisation settings (``tc.steps`` is the schedule length).
        stream: packed training rows; its ``seq_len`` must equal ``cfg.seq_len``.
        run_dir: folder for ``checkpoint.npz`` and ``metrics.jsonl`` (None: in memory).
        resume: continue from ``run_dir``'s checkpoint when one exists.
        init_params: start from these parameters (fine-tuning) instead of a fresh init.
        stop_after: stop (with a checkpoint) after this many total steps, as if
            interrupted; the schedule still spans ``tc.steps``.
        callback: called as ``callback(state, loss)`` after every step.
        progress: show a tqdm bar with loss, tokens/s and MFU.

    Returns:
        A :class:`TrainResult`.

    Raises:
        ValueError: mismatched sequence lengths or an incompatible checkpoint.
    """
    if stream.seq_len != cfg.seq_len:
        raise ValueError(f"stream rows hold seq_len={stream.seq_len}, model has {cfg.seq_len}")
    run_dir = Path(run_dir) if run_dir is not None else None
    state = init_state(cfg, tc, init_params)
    ckpt = run_dir / CHECKPOINT if run_dir is not None else None
    if ckpt is not None and resume and ckpt.exists():
        state = load_checkpoint(ckpt, state)
        _trim_metrics(run_dir / METRICS, state.step)
    # bookkeeping fields do not change the compiled step: share one compile
    step_fn = make_train_step(
        cfg, dataclasses.replace(tc, seed=0, log_every=1, checkpoint_every=0, batch_size=1)
    )
    end = tc.steps if stop_after is None else min(tc.steps, stop_after)
    tok_step = tc.batch_size * cfg.seq_len
    fpt, peak = flops_per_token(cfg), peak_flops()
    losses: list[float] = []
    from tqdm.auto import tqdm

    bar = tqdm(total=end - state.step, disable=not progress, leave=False, desc="train")
    params, opt_state, key, cursor = state.params, state.opt_state, state.key, state.cursor
    t_first = None
    n_timed = 0
    tps = mfu = 0.0
    for step in range(state.step, end):
        rows, cursor = stream.next_batch(cursor)
        key, k_step = jax.random.split(key)
        params, opt_state, loss, gnorm = step_fn(params, opt_state, jnp.asarray(rows), k_step)
        loss_f = float(loss)
        losses.append(loss_f)
        if t_first is None:
            t_first = time.perf_counter()
        else:
            n_timed += 1
            tps = n_timed * tok_step / (time.perf_counter() - t_first)
            mfu = tps * fpt / peak
        state = TrainState(params, opt_state, step + 1, key, cursor)
        if callback is not None:
            callback(state, loss_f)
        bar.update(1)
        bar.set_postfix(loss=f"{loss_f:.3f}", tok_s=f"{tps:.0f}", mfu=f"{mfu:.2%}")
        done = step + 1
        if run_dir is not None and (done % tc.log_every == 0 or done == end):
            line = {
                "step": done,
                "loss": loss_f,
                "grad_norm": float(gnorm),
                "epoch": cursor[0] + cursor[1] / max(1, len(stream.epoch_rows(cursor[0]))),
                "tokens_per_s": tps,
                "mfu": mfu,
            }
            run_dir.mkdir(parents=True, exist_ok=True)
            with open(run_dir / METRICS, "a") as f:
                f.write(json.dumps(line) + "\n")
        if ckpt is not None and (
            done == end or (tc.checkpoint_every and done % tc.checkpoint_every == 0)
        ):
            save_checkpoint(ckpt, state)
    bar.close()
    return TrainResult(state, losses, tps, mfu)


def _trim_metrics(path: Path, step: int) -> None:
    """Drop metric lines past ``step`` (written after the checkpoint we resume from)."""
    if not path.exists():
        return
    keep = [ln for ln in path.read_text().splitlines() if ln and json.loads(ln)["step"] <= step]
    atomic_write(path, "".join(ln + "\n" for ln in keep))
