"""Decoder-only transformers built from the core layer algebra.

A pre-norm block is two residual branches, each written with ``FanOut(2)``,
``parallel(branch, Identity())`` and ``FanInSum()``: causal self-attention, then an MLP
(``Dense -> Gelu -> Dense``). Up to four blocks are chained with ``serial`` (faster to
compile); deeper stacks use ``repeat`` (one compiled loop),
and the network is ``serial(body, head)`` where the body ends in a ``LayerNorm`` and
the head is a ``Dense`` projection to the vocabulary. The body's output is the hidden
state the token-level detectors read.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import os

import jax
import jax.numpy as jnp
import numpy as np
from widelab_core import layers as L

from .layers import TokenEmbedding


def _attention(d_model: int, n_heads: int) -> L.Layer:
    hd = d_model // n_heads
    return L.GlobalSelfAttention(d_model, hd, hd, n_heads, linear_scaling=False, causal=True)


@dataclasses.dataclass(frozen=True)
class LMConfig:
    """Shape of a decoder-only transformer.

    Attributes:
        vocab_size: tokenizer vocabulary size.
        d_model: residual width.
        n_layers: number of blocks.
        n_heads: attention heads (``d_model`` must be divisible by it).
        seq_len: context length.
        mlp_ratio: MLP hidden width over ``d_model``.
        dropout: drop probability at the end of each residual branch during training
            (core ``Dropout``; 0 disables it).
    """

    vocab_size: int
    d_model: int = 128
    n_layers: int = 2
    n_heads: int = 4
    seq_len: int = 64
    mlp_ratio: int = 4
    dropout: float = 0.0

    def __post_init__(self):
        for f in ("vocab_size", "d_model", "n_layers", "n_heads", "seq_len", "mlp_ratio"):
            if int(getattr(self, f)) <= 0:
                raise ValueError(f"LMConfig.{f} must be positive, got {getattr(self, f)}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"LMConfig.dropout must be in [0, 1), got {self.dropout}")
        if self.d_model % self.n_heads:
            raise ValueError(
                f"LMConfig: d_model={self.d_model} is not divisible by n_heads={self.n_heads}"
            )

    def to_json(self) -> str:
        """Serialise (stored next to checkpoints)."""
        return json.dumps(dataclasses.asdict(self))

    @classmethod
    def from_json(cls, text: str) -> LMConfig:
        """Inverse of :meth:`to_json`."""
        return cls(**json.loads(text))


def block(cfg: LMConfig, training: bool = False) -> L.Layer:
    """One pre-norm transformer block: ``x + Attn(LN(x))`` then ``x + MLP(LN(x))``.

    With ``training`` the branches end in ``Dropout(cfg.dropout)`` (random, needs a
    key); otherwise the dropout layers are the identity. Parameters are the same.
    """
    d = cfg.d_model
    drop = L.Dropout(cfg.dropout, mode="train" if training else "test")
    attn = L.serial(L.LayerNorm(), _attention(d, cfg.n_heads), drop)
    mlp = L.serial(
        L.LayerNorm(),
        L.Dense(cfg.mlp_ratio * d, parameterization="standard"),
        L.Gelu(approximate=True),
        L.Dense(d, W_std=1.0 / math.sqrt(2 * cfg.n_layers), parameterization="standard"),
        drop,
    )
    return L.serial(
        L.FanOut(2),
        L.parallel(attn, L.Identity()),
        L.FanInSum(),
        L.FanOut(2),
        L.parallel(mlp, L.Identity()),
        L.FanInSum(),
    )


def transformer(cfg: LMConfig, training: bool = False) -> L.Serial:
    """The language model ``serial(body, head)``; ``body`` gives hidden states.

    ``training`` switches dropout on (then ``apply`` needs ``key=``).

    Example:
        >>> import jax, jax.numpy as jnp
        >>> cfg = LMConfig(vocab_size=11, d_model=16, n_layers=1, n_heads=2, seq_len=8)
        >>> net = transformer(cfg)
        >>> shape, params = net.init(jax.random.key(0), (2, 8))
        >>> shape
        (2, 8, 11)
    """
    body = L.serial(
        TokenEmbedding(cfg.vocab_size, cfg.d_model, cfg.seq_len),
        # shallow stacks compile faster unrolled; deep ones as one compiled loop
        *(
            [block(cfg, training)] * cfg.n_layers
            if cfg.n_layers <= 4
            else [L.repeat(block(cfg, training), cfg.n_layers)]
        ),
        L.LayerNorm(),
    )
    head = L.Dense(cfg.vocab_size, parameterization="standard")
    return L.serial(body, head)


def init_lm(cfg: LMConfig, key: jax.Array):
    """Parameters of :func:`transformer` for ``(batch, seq_len)`` inputs (one compiled
    call rather than many small eager ones)."""
    return _init_jit(cfg, key)


# Initialisation runs once per model: compile it cheaply (no LLVM optimisation).
FAST_COMPILE = {"xla_backend_optimization_level": 0, "xla_llvm_disable_expensive_passes": True}


@functools.partial(jax.jit, static_argnums=0, compiler_options=FAST_COMPILE)
def _init_jit(cfg: LMConfig, key: jax.Array):
    return transformer(cfg).init(key, (1, cfg.seq_len))[1]


def hidden_states(cfg: LMConfig, params, tokens: jax.Array) -> jax.Array:
    """Final (post-LayerNorm) hidden states ``(batch, seq, d_model)``."""
    net = transformer(cfg)
    return net.layers[0].apply(params[0], tokens)


def logits_fn(cfg: LMConfig, params, tokens: jax.Array) -> jax.Array:
    """Next-token logits ``(batch, seq, vocab)``."""
    return transformer(cfg).apply(params, tokens)


def param_counts(cfg: LMConfig) -> dict[str, int]:
    """Parameter counts: ``total``, ``embedding`` (token and position tables, output
    projection) and ``non_embedding`` (everything else, as in Kaplan et al. 2020)."""
    shapes = jax.eval_shape(
        lambda k: transformer(cfg).init(k, (1, cfg.seq_len))[1], jax.random.key(0)
    )
    total = int(sum(np.prod(x.shape) for x in jax.tree.leaves(shapes)))
    emb = (cfg.vocab_size + cfg.seq_len) * cfg.d_model + cfg.d_model * cfg.vocab_size
    return {"total": total, "embedding": emb, "non_embedding": total - emb}


def flops_per_token(cfg: LMConfig) -> float:
    """Training FLOPs per token, ``6 N + 12 L d T`` (Chowdhery et al. 2022, App. B).

    ``N`` counts the matmul parameters (non-embedding plus the output projection);
    the second term is the attention scores and weighted sum.
    """
    n = param_counts(cfg)["non_embedding"] + cfg.d_model * cfg.vocab_size
    return 6.0 * n + 12.0 * cfg.n_layers * cfg.d_model * cfg.seq_len


def size_family(
    n_sizes: int,
    vocab_size: int,
    *,
    d_min: int = 16,
    growth: float = 2.0,
    head_dim: int = 16,
    n_layers: int = 2,
    seq_len: int = 64,
) -> list[LMConfig]:
    """A geometric family: ``d_model = d_min * growth**i`` rounded to ``head_dim``.

    Non-embedding parameters grow about ``growth**2`` per step (``12 L d^2``).
    """
    if n_sizes < 1:
        raise ValueError(f"n_sizes must be >= 1, got {n_sizes}")
    out = []
    for i in range(n_sizes):
        d = max(head_dim, int(round(d_min * growth**i / head_dim)) * head_dim)
        out.append(LMConfig(vocab_size, d, n_layers, max(1, d // head_dim), seq_len))
    return out


def answer_mask(rows: jax.Array) -> jax.Array:
    """True at the answer tokens of packed rows: the object characters and the
    ``<EOS>`` of every ``<S> s <P> r <O> o <EOS>`` fact (the tokens after an ``<O>`` up
    to and including the next ``<EOS>``).

    Example:
        >>> import jax.numpy as jnp
        >>> answer_mask(jnp.array([[1, 9, 2, 30, 3, 7, 8, 4, 1, 9]])).astype(int).tolist()
        [[0, 0, 0, 0, 0, 1, 1, 1, 0, 0]]
    """
    opened = jnp.cumsum((rows == 3).astype(jnp.int32), axis=-1)
    closed = jnp.cumsum((rows == 4).astype(jnp.int32), axis=-1)
    before_open = opened - (rows == 3).astype(jnp.int32)
    before_closed = closed - (rows == 4).astype(jnp.int32)
    return (before_open > before_closed) & (rows != 3)


def next_token_loss(
    cfg: LMConfig,
    params,
    rows: jax.Array,
    pad_id: int = 0,
    key: jax.Array | None = None,
    answer_only: bool = False,
) -> jax.Array:
    """Mean cross-entropy of ``rows[:, 1:]`` given ``rows[:, :-1]``, pads excluded.

    With ``key`` (and ``cfg.dropout > 0``) the network runs in training mode. With
    ``answer_only`` only the answer tokens (:func:`answer_mask`: object characters and
    their ``<EOS>``) count, as in ReST-EM's fine-tuning on verified answers (Singh et
    al. 2023, Sec. 3: the loss of the output given the input).
    """
    x, y = rows[:, :-1], rows[:, 1:]
    if key is not None and cfg.dropout > 0:
        logits = transformer(cfg, training=True).apply(params, x, key=key)
    else:
        logits = logits_fn(cfg, params, x)
    logp = jax.nn.log_softmax(logits.astype(jnp.float32), axis=-1)
    nll = -jnp.take_along_axis(logp, y[..., None], axis=-1)[..., 0]
    w = (y != pad_id).astype(jnp.float32)
    if answer_only:
        w = w * answer_mask(rows)[:, 1:].astype(jnp.float32)
    return jnp.sum(nll * w) / jnp.maximum(jnp.sum(w), 1.0)


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
