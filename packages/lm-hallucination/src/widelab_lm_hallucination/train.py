"""Training with optax: AdamW, warmup + cosine, clipping, checkpoints and exact resume.

A checkpoint holds the parameters, the optimizer state, the step, the PRNG key and the
data cursor ``(epoch, row)``; it is written to a temporary file and renamed, so an
interrupted write leaves the previous checkpoint intact, and the previous complete
checkpoint is kept as ``checkpoint.prev.npz``: when the newest is unreadable, training
resumes from the previous one with a warning. A torn last line of ``metrics.jsonl``
(a crash mid-write) is dropped with a warning. SIGINT during :func:`train` finishes the
current step, saves a checkpoint and raises :class:`TrainingInterrupted`. On CPU a
resumed run repeats the uninterrupted run's losses bit for bit: the stream is a pure
function of the cursor and the compiled step is the same.
"""

from __future__ import annotations

import dataclasses
import functools
import io
import json
import os
import signal
import threading
import time
import warnings
import zipfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from widelab_core.command import atomic_write

from .corpus import FactStream
from .model import (
    FAST_COMPILE,
    LMConfig,
    flops_per_token,
    init_lm,
    next_token_loss,
    peak_flops,
)
from .parallel import constrain, data_mesh, fsdp_sharding, to_host, to_mesh

CHECKPOINT = "checkpoint.npz"
PREVIOUS_CHECKPOINT = "checkpoint.prev.npz"
METRICS = "metrics.jsonl"


class RunFormatError(ValueError):
    """A run file (checkpoint, metrics, run description) is unreadable; the message
    names the file (and the line, for line-based files)."""


class TrainingInterrupted(KeyboardInterrupt):
    """SIGINT stopped :func:`train` after a completed step; a checkpoint was saved.

    Attributes:
        step: the step the saved checkpoint holds.
    """

    def __init__(self, step: int):
        self.step = step
        super().__init__(f"interrupted after step {step}; checkpoint saved")


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
        loss_on: ``"all"`` tokens or only the ``"answer"`` tokens (object and
            ``<EOS>``; see :func:`~widelab_lm_hallucination.answer_mask`).
        compute_dtype: ``"float32"`` or ``"bfloat16"``: the forward and backward pass
            run on parameters cast to this type; the optimizer keeps float32 master
            weights (mixed precision, Micikevicius et al. 2018).
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
    loss_on: str = "all"
    compute_dtype: str = "float32"

    def __post_init__(self):
        if self.compute_dtype not in ("float32", "bfloat16"):
            raise ValueError(
                f"TrainConfig: compute_dtype must be 'float32' or 'bfloat16', got "
                f"{self.compute_dtype!r}"
            )
        if self.loss_on not in ("all", "answer"):
            raise ValueError(
                f"TrainConfig: loss_on must be 'all' or 'answer', got {self.loss_on!r}"
            )
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


def _warmup_steps(tc: TrainConfig) -> tuple[int, int]:
    """Warmup steps (at least 1, at most a tenth of the run) and schedule length."""
    warm = max(1, min(tc.warmup, tc.steps // 10))
    return warm, max(tc.steps, warm + 1)


def _optimizer(tc: TrainConfig, learning_rate) -> optax.GradientTransformation:
    mask = lambda p: jax.tree.map(lambda x: x.ndim >= 2, p)
    return optax.chain(
        optax.clip_by_global_norm(tc.clip),
        optax.adamw(learning_rate, b1=0.9, b2=0.98, weight_decay=tc.weight_decay, mask=mask),
    )


def make_optimizer(tc: TrainConfig) -> optax.GradientTransformation:
    """``clip_by_global_norm`` then AdamW under a warmup + cosine schedule
    (Loshchilov & Hutter 2019; Hoffmann et al. 2022 use the same schedule shape)."""
    warm, total = _warmup_steps(tc)
    sched = optax.warmup_cosine_decay_schedule(
        0.0, tc.lr, warm, total, end_value=tc.lr * tc.min_lr_ratio
    )
    return _optimizer(tc, sched)


def schedule_args(tc: TrainConfig) -> dict[str, jax.Array]:
    """The learning-rate schedule of ``tc`` as arrays: the compiled training step takes
    them as arguments, so runs that differ only in ``lr``, ``warmup``, ``steps`` or
    ``min_lr_ratio`` share one compilation (see :func:`schedule_value`)."""
    warm, total = _warmup_steps(tc)
    return {
        "lr": jnp.asarray(tc.lr, jnp.float32),
        "alpha": jnp.asarray(tc.min_lr_ratio, jnp.float32),
        "warm": jnp.asarray(warm, jnp.int32),
        "total": jnp.asarray(total, jnp.int32),
    }


def schedule_value(count: jax.Array, args: dict[str, jax.Array]) -> jax.Array:
    """Learning rate at optimizer step ``count`` from :func:`schedule_args`: linear warmup
    from 0 to ``lr`` over ``warm`` steps, then cosine decay to ``alpha * lr`` at
    ``total`` (Loshchilov & Hutter 2017, Eq. 5); the same values as
    ``optax.warmup_cosine_decay_schedule`` with those settings, but traceable in every
    setting.

    Example:
        >>> a = schedule_args(TrainConfig(steps=100, lr=1.0, warmup=10, min_lr_ratio=0.1))
        >>> [round(float(schedule_value(jnp.asarray(c), a)), 4) for c in (0, 5, 10, 100)]
        [0.0, 0.5, 1.0, 0.1]
    """
    lr, alpha, warm, total = args["lr"], args["alpha"], args["warm"], args["total"]
    ramp = jnp.clip(count, 0, warm) / warm
    warm_value = -lr * (1 - ramp) + lr
    decay = (total - warm).astype(jnp.float32)
    t = jnp.minimum((count - warm).astype(jnp.float32), decay)
    cosine = 0.5 * (1 + jnp.cos(jnp.pi * t / decay))
    return jnp.where(count < warm, warm_value, lr * ((1 - alpha) * cosine + alpha))


def _static(tc: TrainConfig) -> TrainConfig:
    """``tc`` with every field that the compiled step does not bake in set to a default
    (bookkeeping, and the schedule, which :func:`schedule_args` passes as arrays)."""
    return dataclasses.replace(
        tc,
        steps=1,
        lr=1.0,
        warmup=0,
        min_lr_ratio=0.1,
        seed=0,
        log_every=1,
        checkpoint_every=0,
        batch_size=1,
    )


@functools.lru_cache(maxsize=32)
def _make_train_step(cfg: LMConfig, tc: TrainConfig, pad_id: int, mesh=None):
    """The compiled step; with a ``mesh``, the new parameters and optimizer state keep
    :func:`~widelab_lm_hallucination.parallel.fsdp_sharding`'s layout (the layout of
    the donated inputs, so their buffers are reused)."""

    def step(params, opt_state, rows, key, sched):
        answer_only = tc.loss_on == "answer"
        dtype = jnp.dtype(tc.compute_dtype)
        optimizer = _optimizer(tc, lambda count: schedule_value(count, sched))

        def loss_fn(p):
            p = jax.tree.map(lambda x: x.astype(dtype), p)  # master weights stay float32
            return next_token_loss(cfg, p, rows, pad_id, key, answer_only)

        loss, grads = jax.value_and_grad(loss_fn)(params)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        params, opt_state = constrain((optax.apply_updates(params, updates), opt_state), mesh)
        return params, opt_state, loss, optax.tree.norm(grads)

    return jax.jit(step, donate_argnums=(0, 1))


def make_train_step(cfg: LMConfig, tc: TrainConfig, pad_id: int = 0, mesh=None):
    """A jit-compiled ``step(params, opt_state, rows, key, sched) -> (params, opt_state,
    loss, gnorm)``; ``key`` drives dropout and ``sched`` is :func:`schedule_args` of the
    run's settings.

    One compiled step serves every configuration that differs only in the schedule
    (``lr``, ``warmup``, ``steps``, ``min_lr_ratio``) or bookkeeping (``seed``,
    ``batch_size``, ``log_every``, ``checkpoint_every``): a grid of runs of one model
    shape with different epochs compiles its training step once per shape of the rows.
    With a ``mesh`` (a ``"data"`` mesh), the returned parameters and optimizer state are
    split as :func:`~widelab_lm_hallucination.parallel.fsdp_sharding` says.

    Example:
        >>> # step = make_train_step(cfg, tc)
        >>> # params, opt_state, loss, gnorm = step(params, opt_state, rows, key,
        >>> #                                       schedule_args(tc))
    """
    return _make_train_step(cfg, _static(tc), pad_id, mesh)


def init_state(cfg: LMConfig, tc: TrainConfig, params=None) -> TrainState:
    """Fresh state (or one starting from given ``params``, for fine-tuning)."""
    key = jax.random.key(tc.seed)
    k_init, key = jax.random.split(key)
    if params is None:
        params = init_lm(cfg, k_init)
    else:
        params = jax.tree.map(jnp.array, params)  # own copy: the step donates its buffers
    return TrainState(params, _opt_init(_static(tc))(params), 0, key, (0, 0))


@functools.lru_cache(maxsize=32)
def _opt_init(tc: TrainConfig):
    """The optimizer's jitted ``init``, one per static configuration (the state's
    structure does not depend on the schedule)."""
    return jax.jit(make_optimizer(tc).init, compiler_options=FAST_COMPILE)


# ---------------------------------------------------------------------------
# Checkpoints


def save_checkpoint(path: str | Path, state: TrainState, *, keep_previous: bool = False) -> None:
    """Write ``state`` atomically (temporary file + rename) as one ``.npz``.

    Args:
        path: the checkpoint file.
        state: what to save.
        keep_previous: first move an existing ``path`` to ``checkpoint.prev.npz`` in
            the same folder (the fallback of :func:`load_latest_checkpoint`).
    """
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
    path = Path(path)
    if keep_previous and path.exists():
        os.replace(path, path.with_name(PREVIOUS_CHECKPOINT))
    atomic_write(path, buf.getvalue())


def load_checkpoint(path: str | Path, template: TrainState) -> TrainState:
    """Read a checkpoint into the structure of ``template`` (a fresh state).

    Raises:
        RunFormatError: the file is not a readable checkpoint (truncated, not a zip).
        ValueError: the file does not match the template's model/optimizer structure.
    """
    try:
        return _load_checkpoint(path, template)
    except (zipfile.BadZipFile, EOFError, KeyError, OSError, UnicodeDecodeError) as e:
        if isinstance(e, FileNotFoundError):
            raise
        raise RunFormatError(f"{path}: unreadable checkpoint ({type(e).__name__}: {e})") from e
    except json.JSONDecodeError as e:
        raise RunFormatError(f"{path}: unreadable checkpoint metadata ({e})") from e


def load_latest_checkpoint(run_dir: str | Path, template: TrainState) -> TrainState | None:
    """The newest readable checkpoint of ``run_dir`` (None when there is none).

    Falls back to ``checkpoint.prev.npz`` with a warning when ``checkpoint.npz`` is
    missing or unreadable.

    Raises:
        RunFormatError: neither checkpoint is readable.
    """
    run_dir = Path(run_dir)
    newest, prev = run_dir / CHECKPOINT, run_dir / PREVIOUS_CHECKPOINT
    if not newest.exists():
        if not prev.exists():
            return None
        warnings.warn(f"{newest} is missing; resuming from {prev}", RuntimeWarning, stacklevel=2)
        return load_checkpoint(prev, template)
    try:
        return load_checkpoint(newest, template)
    except RunFormatError as e:
        if not prev.exists():
            raise
        warnings.warn(f"{e}; resuming from {prev}", RuntimeWarning, stacklevel=2)
        return load_checkpoint(prev, template)


def _load_checkpoint(path, template: TrainState) -> TrainState:
    try:
        archive = np.load(io.BytesIO(Path(path).read_bytes()))  # no file handle to leak
    except ValueError as e:  # not an .npz (numpy refuses to unpickle it)
        raise RunFormatError(f"{path}: unreadable checkpoint ({e})") from e
    with archive as z:
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
    callback: Callable[[TrainState, jax.Array], None] | None = None,
    progress: bool = False,
    devices: Sequence[jax.Device] | None = None,
    shard_params: bool = False,
) -> TrainResult:
    """Train a language model on a fact stream.

    Args:
        cfg: model shape.
        tc: optimisation settings (``tc.steps`` is the schedule length).
        stream: packed training rows; its ``seq_len`` must equal ``cfg.seq_len``.
        run_dir: folder for checkpoints and ``metrics.jsonl`` (None: in memory).
        resume: continue from ``run_dir``'s newest readable checkpoint when one
            exists; False starts over (old checkpoints and metrics are removed).
        init_params: start from these parameters (fine-tuning) instead of a fresh init.
        stop_after: stop (with a checkpoint) after this many total steps, as if
            interrupted; the schedule still spans ``tc.steps``.
        callback: called as ``callback(state, loss)`` after every step; ``state``
            holds arrays the callback may keep (the next step does not reuse them)
            and ``loss`` is a device scalar (``float(loss)`` waits for the step).
        progress: show a tqdm bar with loss, tokens/s and MFU.
        devices: data-parallel devices (default: the default device only; pass
            ``jax.local_devices()`` for all). With more than one, each batch is split
            along its rows over a ``jax.sharding`` mesh and parameters and optimizer
            state are replicated; the compiled step then all-reduces the gradients.
            ``tc.batch_size`` must divide evenly. Multi-host: after
            ``widelab_core.devices.initialize_distributed`` on every process, pass
            ``jax.devices()`` (all processes' devices) and call :func:`train` with the
            same arguments everywhere; each process computes the same global batch
            from the stream and transfers only the rows its own devices hold, and only
            process 0 writes ``run_dir`` (every process reads it to resume, so it must
            be on a shared file system).
        shard_params: with several ``devices``, split the parameters and the optimizer
            state over them instead of replicating them (fully sharded data
            parallelism: each array's largest axis divisible by the device count is
            split, arrays without one are replicated; see
            :func:`~widelab_lm_hallucination.parallel.fsdp_sharding`); the compiled step
            gathers the weights and sums the gradients onto the slices. Checkpoints keep the
            same layout (gathered to the host), so a run may resume sharded from a
            replicated checkpoint and the other way round. No effect on one device.
            Over several processes, SIGINT is not caught (a checkpoint needs every
            process): the run resumes from the last ``checkpoint_every`` checkpoint.

    Returns:
        A :class:`TrainResult`.

    Raises:
        ValueError: mismatched sequence lengths or an incompatible checkpoint.
        RunFormatError: unreadable checkpoints or metrics in ``run_dir``.
        TrainingInterrupted: SIGINT arrived (in the main thread, with a ``run_dir``);
            the last completed step was checkpointed.
    """
    if stream.seq_len != cfg.seq_len:
        raise ValueError(f"stream rows hold seq_len={stream.seq_len}, model has {cfg.seq_len}")
    run_dir = Path(run_dir) if run_dir is not None else None
    devices = list(jax.local_devices()[:1] if devices is None else devices)
    if not devices or tc.batch_size % len(devices):
        raise ValueError(
            f"data-parallel training over {len(devices)} devices needs a batch_size divisible "
            f"by it, got batch_size={tc.batch_size}"
        )
    # a mesh over several processes: every process reads run_dir, process 0 writes it
    spans = any(d.process_index != jax.process_index() for d in devices)
    writes = run_dir is not None and (not spans or jax.process_index() == 0)
    state = init_state(cfg, tc, init_params)
    ckpt = run_dir / CHECKPOINT if writes else None
    if run_dir is not None and resume:
        loaded = load_latest_checkpoint(run_dir, state)
        if loaded is not None:
            state = loaded
            if writes:
                _trim_metrics(run_dir / METRICS, state.step)
    elif writes:
        for name in (CHECKPOINT, PREVIOUS_CHECKPOINT, METRICS):
            (run_dir / name).unlink(missing_ok=True)
    # the schedule and bookkeeping fields do not change the compiled step: share one
    step_fn = make_train_step(cfg, tc)
    sched = schedule_args(tc)
    end = tc.steps if stop_after is None else min(tc.steps, stop_after)
    tok_step = tc.batch_size * cfg.seq_len
    fpt, peak = flops_per_token(cfg), peak_flops()
    losses: list[jax.Array] = []
    from tqdm.auto import tqdm

    bar = tqdm(total=end - state.step, disable=not progress, leave=False, desc="train")
    params, opt_state, key, cursor = state.params, state.opt_state, state.key, state.cursor
    put_rows = jnp.asarray
    shard = shard_params and len(devices) > 1
    if len(devices) > 1:
        mesh = data_mesh(devices)
        replicated = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec())
        by_row = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("data"))
        layout = fsdp_sharding((params, opt_state), mesh) if shard else replicated
        params, opt_state = to_mesh((params, opt_state), layout)
        sched = to_mesh(sched, replicated)
        key = jax.random.wrap_key_data(to_mesh(jax.random.key_data(key), replicated))
        put_rows = lambda rows: to_mesh(rows, by_row)  # noqa: E731
        if shard:
            step_fn = make_train_step(cfg, tc, mesh=mesh)
    # sharded over processes, a checkpoint gathers collectively: every process takes part
    gather = shard and spans and run_dir is not None
    t_first = None
    first_step = state.step
    tps = mfu = 0.0
    stop = _SigintFlag(enabled=run_dir is not None and not gather)
    with stop:
        for step in range(state.step, end):
            rows, cursor = stream.next_batch(cursor)
            key, k_step = jax.random.split(key)
            params, opt_state, loss, gnorm = step_fn(
                params, opt_state, put_rows(rows), k_step, sched
            )
            losses.append(loss)
            done = step + 1
            if t_first is None:
                loss.block_until_ready()  # the first step includes the compile: untimed
                t_first = time.perf_counter()
            state = TrainState(params, opt_state, done, key, cursor)
            if callback is not None:
                # the next step donates params and opt_state: hand over copies
                kept = jax.tree.map(jnp.copy, (params, opt_state))
                callback(state._replace(params=kept[0], opt_state=kept[1]), loss)
            log = done % tc.log_every == 0 or done == end
            if log:
                loss_f = float(loss)  # waits for this step: the clock is honest here
                if done - 1 > first_step:
                    tps = (done - 1 - first_step) * tok_step / (time.perf_counter() - t_first)
                    mfu = tps * fpt / peak
                bar.set_postfix(loss=f"{loss_f:.3f}", tok_s=f"{tps:.0f}", mfu=f"{mfu:.2%}")
            bar.update(1)
            if writes and log:
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
            due = done == end or (tc.checkpoint_every and done % tc.checkpoint_every == 0)
            if (ckpt is not None or gather) and (due or stop.raised):
                host = to_host((params, opt_state)) if gather else (params, opt_state)
                if ckpt is not None:
                    saved = state._replace(params=host[0], opt_state=host[1])
                    save_checkpoint(ckpt, saved, keep_previous=True)
            if stop.raised:
                bar.close()
                raise TrainingInterrupted(done)
    bar.close()
    host_losses = [float(x) for x in jax.device_get(losses)]
    return TrainResult(state, host_losses, tps, mfu)


class _SigintFlag:
    """While active (main thread only), SIGINT sets ``raised`` instead of raising, so
    the loop can finish its step and checkpoint; a second SIGINT raises at once."""

    def __init__(self, enabled: bool):
        self.enabled = enabled and threading.current_thread() is threading.main_thread()
        self.raised = False
        self._old = None

    def _handle(self, signum, frame):
        if self.raised:
            raise KeyboardInterrupt
        self.raised = True

    def __enter__(self):
        if self.enabled:
            self._old = signal.signal(signal.SIGINT, self._handle)
        return self

    def __exit__(self, *exc):
        if self.enabled:
            signal.signal(signal.SIGINT, self._old)
        return False


def read_metrics(path: str | Path) -> list[dict]:
    """The records of a ``metrics.jsonl`` file.

    A torn last line (a crash in the middle of writing it) is dropped with a warning
    naming the file.

    Raises:
        RunFormatError: a line before the last is not a JSON record with a ``step``
            (file and line named), or the file is not UTF-8.
    """
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as e:
        raise RunFormatError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start})") from e
    out = []
    for n, ln in enumerate(lines, start=1):
        if not ln.strip():
            continue
        try:
            rec = json.loads(ln)
            if not isinstance(rec, dict) or not isinstance(rec.get("step"), int):
                raise ValueError("not a record with an integer 'step'")
        except ValueError as e:
            if n == len(lines):
                warnings.warn(
                    f"{path}:{n}: dropping a torn last line ({e})", RuntimeWarning, stacklevel=2
                )
                break
            raise RunFormatError(f"{path}:{n}: not a metrics record ({e})") from e
        out.append(rec)
    return out


def _trim_metrics(path: Path, step: int) -> None:
    """Drop metric lines past ``step`` (written after the checkpoint we resume from)."""
    if not path.exists():
        return
    keep = [rec for rec in read_metrics(path) if rec["step"] <= step]
    atomic_write(path, "".join(json.dumps(rec) + "\n" for rec in keep))
