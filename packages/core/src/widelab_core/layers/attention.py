"""Multi-head global self-attention (Neural Tangents' ``stax.GlobalSelfAttention``)."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from ._base import Layer, ShapeError, check_single, zero_masked
from .dense import add_bias

MECHANISMS = ("SOFTMAX", "IDENTITY", "ABS", "RELU")
POS_EMB_TYPES = ("NONE", "SUM", "CONCAT")


@dataclasses.dataclass(frozen=True)
class GlobalSelfAttention(Layer):
    r"""Multi-head scaled dot-product self-attention over all spatial positions.

    Finite-width definition of Hron et al. 2020, "Infinite attention: NNGP and NTK for
    deep attention networks" (arXiv:2006.10540), as in Neural Tangents'
    ``stax.GlobalSelfAttention`` (NTK parameterization throughout). Inputs
    ``(batch, *spatial, d)`` are flattened to ``(batch, T, d)`` with ``T = prod(spatial)``.

    Positional embeddings (``pos_emb_type != "NONE"``): a raw ``E ~ N(0, 1)`` of shape
    ``(1, *spatial, d_e)`` (``d_e = n_chan_pos_emb``, default ``d``), zeroed at masked
    positions and scaled by ``W_pos_emb_std``. Keys/queries see ``X_k = X + E`` ("SUM",
    needs ``d_e = d``) or ``X_k = [X, E]`` ("CONCAT", ``d_k_in = d + d_e``); values see
    ``X_v = X_k`` if ``val_pos_emb`` else ``X``. Without embeddings ``X_k = X_v = X``.

    With raw weights ``W_Q^h, W_K^h ~ N(0, 1)`` of shape ``(d_k_in, n_chan_key)``,
    ``W_V^h ~ N(0, 1)`` of shape ``(d_v_in, n_chan_val)``, ``W_O ~ N(0, 1)`` of shape
    ``(n_heads * n_chan_val, n_chan_out)`` and ``b ~ N(0, 1)`` of shape ``(n_chan_out,)``:

    .. math::

        Q_h = \frac{\sigma_Q}{\sqrt{d_{k,in}}} X_k W_Q^h,\quad
        K_h = \frac{\sigma_K}{\sqrt{d_{k,in}}} X_k W_K^h,\quad
        V_h = \frac{\sigma_V}{\sqrt{d_{v,in}}} X_v W_V^h,

        A_h = \phi\big(Q_h K_h^\top / s\big),\qquad
        s = n_{key} \text{ if linear\_scaling else } \sqrt{n_{key}},

        Y = \frac{\sigma_O}{\sqrt{n_{heads} n_{val}}}
            [A_1 V_1, \dots, A_{n_{heads}} V_{n_{heads}}] W_O + \sigma_b b.

    ``phi`` is the softmax over keys ("SOFTMAX"), the identity ("IDENTITY"), ``|.|``
    ("ABS") or ``max(., 0)`` ("RELU").
    With ``linear_scaling=True`` the query and key weights are *tied*
    (``W_Q^h = W_K^h``, no ``"W_query"`` param): the logits then converge to
    ``sigma_Q sigma_K`` times the input covariance as ``n_chan_key -> infinity``
    (Hron et al. 2020, Sec. 3). Only the products ``W_query_std * W_key_std`` and
    ``W_out_std * W_value_std`` matter.

    With ``pos_emb_decay_fn`` the embeddings are correlated across positions:
    ``E = L E_raw`` over flattened positions, ``L L^T = R`` (Cholesky) with
    ``R[s, t] = pos_emb_decay_fn(sum_i |s_i - t_i|^pos_emb_p_norm)`` for positions
    ``s, t`` given by their spatial coordinates; without it ``R`` is the identity
    (independent embeddings per position).

    Masking: keys at padded positions get logit ``-inf`` before the softmax (weight 0
    for the other mechanisms); a query whose keys are all masked gets zero weights. The mask
    passes through unchanged. ``causal=True`` also masks keys after the query (in the
    flattened order): finite-width only, kernel packages may not support it.

    Params: ``{"W_key", "W_value", "W_out"}`` of shapes ``(n_heads, d_k_in, n_chan_key)``,
    ``(n_heads, d_v_in, n_chan_val)``, ``(n_heads * n_chan_val, n_chan_out)``, plus
    ``"W_query"`` (like ``"W_key"``) when ``linear_scaling=False``, ``"b"`` when
    ``b_std`` is set and ``"pos_emb"`` when ``pos_emb_type != "NONE"``.

    Args:
        n_chan_out: output channels.
        n_chan_key: channels of keys and queries per head.
        n_chan_val: channels of values per head.
        n_heads: number of heads.
        linear_scaling: logits scaled by ``1 / n_chan_key`` with tied query/key
            weights (True) or ``1 / sqrt(n_chan_key)`` with independent ones (False).
        W_key_std: key weight standard deviation.
        W_value_std: value weight standard deviation.
        W_query_std: query weight standard deviation.
        W_out_std: output weight standard deviation.
        b_std: bias standard deviation; ``None`` means no bias.
        attention_mechanism: ``"SOFTMAX"``, ``"IDENTITY"``, ``"ABS"`` or ``"RELU"``.
        pos_emb_type: ``"NONE"``, ``"SUM"`` or ``"CONCAT"``.
        W_pos_emb_std: positional embedding standard deviation.
        val_pos_emb: also feed positional embeddings to the values.
        n_chan_pos_emb: embedding channels (``None``: the input's; "SUM" needs that).
        causal: mask keys after each query (decoder-style, in the flattened order).
        pos_emb_p_norm: the ``p`` of the distance passed to ``pos_emb_decay_fn``.
        pos_emb_decay_fn: maps the distance between two positions to the correlation
            of their embeddings (e.g. ``lambda d: jnp.exp(-d)``); ``None``: independent.

    Raises:
        ValueError: bad hyperparameters (at construction).
        ShapeError: inputs without a spatial axis, or a mismatch with the params.

    Example:
        >>> import jax
        >>> from widelab_core import layers as L
        >>> att = L.GlobalSelfAttention(8, 4, 4, n_heads=2)
        >>> att.init(jax.random.key(0), (3, 5, 6))[0]
        (3, 5, 8)
    """

    n_chan_out: int
    n_chan_key: int
    n_chan_val: int
    n_heads: int
    linear_scaling: bool = True
    W_key_std: float = 1.0
    W_value_std: float = 1.0
    W_query_std: float = 1.0
    W_out_std: float = 1.0
    b_std: float | None = None
    attention_mechanism: str = "SOFTMAX"
    pos_emb_type: str = "NONE"
    W_pos_emb_std: float = 1.0
    val_pos_emb: bool = False
    n_chan_pos_emb: int | None = None
    causal: bool = False
    pos_emb_p_norm: float = 2.0
    pos_emb_decay_fn: Callable | None = None

    def __post_init__(self):
        for name in ("n_chan_out", "n_chan_key", "n_chan_val", "n_heads"):
            if int(getattr(self, name)) <= 0:
                raise ValueError(
                    f"GlobalSelfAttention: {name} must be positive, got {getattr(self, name)}"
                )
        for name, allowed in (("attention_mechanism", MECHANISMS), ("pos_emb_type", POS_EMB_TYPES)):
            value = str(getattr(self, name)).upper()
            if value not in allowed:
                raise ValueError(
                    f"GlobalSelfAttention: {name} must be one of {allowed}, "
                    f"got {getattr(self, name)!r}"
                )
            object.__setattr__(self, name, value)
        if self.pos_emb_decay_fn is not None and not callable(self.pos_emb_decay_fn):
            raise ValueError(
                "GlobalSelfAttention: pos_emb_decay_fn must be callable or None, got "
                f"{self.pos_emb_decay_fn!r}"
            )
        if not float(self.pos_emb_p_norm) > 0:
            raise ValueError(
                f"GlobalSelfAttention: pos_emb_p_norm must be positive, got {self.pos_emb_p_norm}"
            )
        if self.n_chan_pos_emb is not None and int(self.n_chan_pos_emb) <= 0:
            raise ValueError(
                f"GlobalSelfAttention: n_chan_pos_emb must be positive, got {self.n_chan_pos_emb}"
            )

    # Shapes -------------------------------------------------------------
    def _in_channels(self, shape) -> tuple[int, int, int]:
        """``(d_e, d_k_in, d_v_in)`` for an input shape."""
        d = shape[-1]
        d_e = d if self.n_chan_pos_emb is None else int(self.n_chan_pos_emb)
        if self.pos_emb_type == "SUM" and d_e != d:
            raise ShapeError(
                self,
                f"pos_emb_type='SUM' adds embeddings of {d_e} channels to inputs of {d} "
                f"channels (input shape {tuple(shape)}); use n_chan_pos_emb=None or 'CONCAT'",
            )
        d_k = d + d_e if self.pos_emb_type == "CONCAT" else d
        d_v = d_k if self.val_pos_emb else d
        return d_e, d_k, d_v

    def init(self, key, input_shape):
        shape = check_single(self, input_shape)
        if len(shape) < 3 or shape[-1] <= 0:
            raise ShapeError(
                self, f"needs inputs (batch, *spatial, channels) of rank >= 3, got {shape}"
            )
        d_e, d_k, d_v = self._in_channels(shape)
        h = self.n_heads
        shapes = {
            "W_key": (h, d_k, self.n_chan_key),
            "W_value": (h, d_v, self.n_chan_val),
            "W_out": (h * self.n_chan_val, self.n_chan_out),
        }
        if not self.linear_scaling:
            shapes["W_query"] = (h, d_k, self.n_chan_key)
        if self.b_std is not None:
            shapes["b"] = (self.n_chan_out,)
        if self.pos_emb_type != "NONE":
            shapes["pos_emb"] = (1, *shape[1:-1], d_e)
        # One draw split into pieces: independent N(0, 1) entries, and one random-bits
        # kernel for XLA to compile instead of one per parameter.
        sizes = [math.prod(s) for s in shapes.values()]
        flat = jax.random.normal(key, (sum(sizes),), jnp.zeros(()).dtype)
        params, start = {}, 0
        for (name, s), size in zip(shapes.items(), sizes):
            params[name] = jnp.reshape(flat[start : start + size], s)
            start += size
        return shape[:-1] + (self.n_chan_out,), params

    # Apply --------------------------------------------------------------
    def _check_apply(self, params, x):
        if x.ndim < 3:
            raise ShapeError(
                self, f"needs inputs (batch, *spatial, channels) of rank >= 3, got {x.shape}"
            )
        d_e, d_k, d_v = self._in_channels(x.shape)
        want = {"W_key": d_k, "W_value": d_v}
        for name, d in want.items():
            if params[name].shape[1] != d:
                raise ShapeError(
                    self,
                    f"input shape {tuple(x.shape)} gives {d} input channels for {name} but the "
                    f"params have shape {tuple(params[name].shape)}",
                )
        if "pos_emb" in params and params["pos_emb"].shape[1:] != (*x.shape[1:-1], d_e):
            raise ShapeError(
                self,
                f"positional embeddings of shape {tuple(params['pos_emb'].shape)} do not fit "
                f"input shape {tuple(x.shape)}",
            )

    def apply_masked(self, params, x, mask, key):
        self._check_apply(params, x)
        n, spatial = x.shape[0], x.shape[1:-1]
        t = math.prod(spatial)
        dtype = x.dtype
        x_k = x_v = x
        if self.pos_emb_type != "NONE":
            e = self.positional_embeddings(params, x, mask)
            x_k = x + e if self.pos_emb_type == "SUM" else jnp.concatenate([x, e], axis=-1)
            if self.val_pos_emb:
                x_v = x_k
        x_k = jnp.reshape(x_k, (n, t, x_k.shape[-1]))
        x_v = jnp.reshape(x_v, (n, t, x_v.shape[-1]))
        d_k, d_v = x_k.shape[-1], x_v.shape[-1]

        keys = jnp.einsum("btd,hdk->bhtk", x_k, params["W_key"].astype(dtype))
        if self.linear_scaling:
            queries = keys
        else:
            queries = jnp.einsum("btd,hdk->bhtk", x_k, params["W_query"].astype(dtype))
        values = jnp.einsum("btd,hdv->bhtv", x_v, params["W_value"].astype(dtype))

        scale = self.n_chan_key if self.linear_scaling else math.sqrt(self.n_chan_key)
        qk_std = self.W_query_std * self.W_key_std
        logits = jnp.einsum("bhqk,bhsk->bhqs", queries, keys) * (qk_std / (d_k * scale))

        key_masked = self._key_mask(mask, n, t)
        if self.attention_mechanism == "SOFTMAX":
            if key_masked is None:
                weights = jax.nn.softmax(logits, axis=-1)
            else:
                logits = jnp.where(key_masked, jnp.finfo(dtype).min, logits)
                weights = jax.nn.softmax(logits, axis=-1)
                weights = jnp.where(key_masked, jnp.zeros((), dtype), weights)
        else:
            weights = {"IDENTITY": logits, "ABS": jnp.abs(logits), "RELU": jax.nn.relu(logits)}[
                self.attention_mechanism
            ]
            if key_masked is not None:
                weights = jnp.where(key_masked, jnp.zeros((), dtype), weights)

        heads = jnp.einsum("bhqs,bhsv->bqhv", weights, values)
        heads = jnp.reshape(heads, (n, t, self.n_heads * self.n_chan_val))
        ov_std = self.W_out_std * self.W_value_std
        y = heads @ params["W_out"].astype(dtype)
        y = y * (ov_std / math.sqrt(self.n_chan_val * self.n_heads * d_v))
        if "b" in params:
            y = add_bias(y, params["b"], self.b_std)
        return jnp.reshape(y, (n, *spatial, self.n_chan_out)), mask

    def positional_embeddings(self, params, x, mask=None) -> jax.Array:
        """The scaled, masked embeddings ``(batch, *spatial, d_e)`` added to or
        concatenated with ``x`` (correlated across positions by ``pos_emb_decay_fn``)."""
        n, spatial = x.shape[0], x.shape[1:-1]
        pe = params["pos_emb"].astype(x.dtype)
        if self.pos_emb_decay_fn is not None:
            r = jnp.asarray(self.pos_emb_covariance(spatial), x.dtype)
            chol = jnp.linalg.cholesky(r)
            pe = jnp.reshape(chol @ jnp.reshape(pe, (math.prod(spatial), -1)), pe.shape)
        e = zero_masked(jnp.broadcast_to(pe, (n, *pe.shape[1:])), mask)
        return e * jnp.asarray(self.W_pos_emb_std, x.dtype)

    def pos_emb_covariance(self, spatial) -> np.ndarray:
        """``R`` of shape ``(T, T)``: the correlation of the embeddings of two positions
        (flattened order), ``pos_emb_decay_fn(sum_i |s_i - t_i|^p)``, or the identity."""
        t = math.prod(spatial)
        if self.pos_emb_decay_fn is None:
            return np.eye(t)
        coords = np.stack(np.meshgrid(*[np.arange(s) for s in spatial], indexing="ij"), -1)
        coords = np.reshape(coords, (t, len(spatial))).astype(float)
        dist = np.sum(np.abs(coords[:, None] - coords[None]) ** float(self.pos_emb_p_norm), -1)
        with jax.ensure_compile_time_eval():
            r = np.asarray(self.pos_emb_decay_fn(jnp.asarray(dist)), dtype=float)
        if r.shape != (t, t):
            raise ShapeError(
                self, f"pos_emb_decay_fn returned shape {r.shape} for distances of shape {(t, t)}"
            )
        return r

    def _key_mask(self, mask, n, t):
        """Boolean ``(batch or 1, 1, T_query or 1, T_key)``: True where a key is hidden."""
        out = None
        if mask is not None:
            out = jnp.reshape(mask, (n, 1, 1, t))
        if self.causal:
            pos = jnp.arange(t)
            future = jnp.reshape(pos[None, :] > pos[:, None], (1, 1, t, t))
            out = future if out is None else jnp.logical_or(out, future)
        return out
