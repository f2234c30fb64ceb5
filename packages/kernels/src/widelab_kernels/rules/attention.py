"""Kernel rule of ``GlobalSelfAttention`` (Hron et al. 2020, "Infinite attention").

With linear (``1 / n_key``) logit scaling and tied query/key weights the logits of an
example converge to ``sigma_Q sigma_K C(x)``, ``C(x)`` the layer input's covariance
between positions (plus positional embeddings), so the attention weights
``G(x) = softmax(sigma_Q sigma_K C(x))`` become deterministic (Hron et al. 2020,
Sec. 3, eq. 9). The output is then a Gaussian process with

    nngp'(x, x') = sigma_O^2 sigma_V^2 G(x) K_V(x, x') G(x')^T + sigma_b^2,
    ntk'(x, x')  = sigma_O^2 sigma_V^2 G(x) Theta_V(x, x') G(x')^T + sigma_b^2
                   + 2 (nngp'(x, x') - sigma_b^2),

the last term from the value and output weights (the query/key weights' share of the
NTK vanishes in this limit). Padded keys are excluded from the softmax. "ABS" and
"RELU" apply ``|.|`` and ``max(., 0)`` to the same deterministic logits.

With ``1 / sqrt(n_key)`` scaling and independent query/key weights the logits stay
random; for the "IDENTITY" mechanism the output converges, as the number of heads
grows, to a Gaussian process (Hron et al. 2020, Sec. 3, Theorem 3). With
``K_k``/``K_v`` the (embedding-interpolated) covariances seen by keys/queries and by
values, and ``Theta_k``/``Theta_v`` their NTKs, per pair of positions ``(p, q)``:

    nngp'(p, q) = sigma^2 K_k(p, q) S[K_k K_v] + sigma_b^2,
    ntk'(p, q)  = sigma^2 (K_k(p, q) (S[K_k Theta_v] + S[Theta_k K_v])
                  + S[K_k K_v] (Theta_k(p, q) + 4 K_k(p, q))) + sigma_b^2,

``sigma = sigma_Q sigma_K sigma_O sigma_V`` and ``S[M] = sum_{s, t} M(s, t)`` over the
key positions (``s <= p, t <= q`` when ``causal``); the ``4 K_k`` term is the query,
key, value and output weights' own share. Padded positions contribute nothing.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from widelab_core import layers as L

from ..kernel import Kernel
from ..registry import KernelError, RuleContext, register_rule
from .linear import mask_weights


def _interp_weights(layer, k: Kernel) -> tuple[float, float]:
    """Weights of the input kernel and of the embedding covariance in ``X_k X_k^T / d_k``."""
    if layer.pos_emb_type == "NONE":
        return 1.0, 0.0
    d = k.shape1[-1]
    d_e = d if layer.n_chan_pos_emb is None else int(layer.n_chan_pos_emb)
    if layer.pos_emb_type == "SUM":
        if d_e != d:
            raise KernelError(
                layer,
                f"pos_emb_type='SUM' needs n_chan_pos_emb equal to the input's {d} channels, "
                f"got {d_e}",
            )
        return 1.0, layer.W_pos_emb_std**2
    total = d + d_e
    return d / total, layer.W_pos_emb_std**2 * d_e / total


def _weights(layer, cov, mask, qk_std, t):
    """Attention weights ``(n, T, T)`` from one example's position covariance."""
    logits = qk_std * cov
    hidden = None
    if mask is not None:
        hidden = jnp.reshape(mask, (mask.shape[0], 1, t))
    if layer.causal:
        pos = jnp.arange(t)
        future = jnp.reshape(pos[None, :] > pos[:, None], (1, t, t))
        hidden = future if hidden is None else hidden | future
    if layer.attention_mechanism == "SOFTMAX":
        if hidden is not None:
            logits = jnp.where(hidden, jnp.finfo(logits.dtype).min, logits)
        g = jax.nn.softmax(logits, axis=-1)
    elif layer.attention_mechanism == "ABS":
        g = jnp.abs(logits)
    elif layer.attention_mechanism == "RELU":
        g = jax.nn.relu(logits)
    else:
        g = logits
    if hidden is not None:
        g = jnp.where(hidden, jnp.zeros((), g.dtype), g)
    return g


def _attention(layer: L.GlobalSelfAttention, k: Kernel, ctx: RuleContext) -> Kernel:
    if isinstance(k, list):
        raise KernelError(layer, f"expects one input, got {len(k)} branches", ctx.where)
    if not layer.linear_scaling and layer.attention_mechanism != "IDENTITY":
        raise KernelError(
            layer,
            "has no closed-form kernel with linear_scaling=False and attention_mechanism="
            f"{layer.attention_mechanism!r} (1/sqrt(n_chan_key) logit scaling gives random "
            "logits); use attention_mechanism='IDENTITY' or linear_scaling=True",
            ctx.where,
        )
    if k.n_spatial == 0:
        raise KernelError(
            layer, f"needs inputs with spatial (sequence) axes, got shape {k.shape1}", ctx.where
        )
    if k.diagonal_spatial:
        raise KernelError(layer, "needs the all-pairs spatial layout", ctx.where)
    sp = k.spatial1
    t = math.prod(sp)
    n1, n2 = k.nngp.shape[:2]
    dt = k.nngp.dtype
    kw, pw = _interp_weights(layer, k)
    flat_pair = lambda x: None if x is None else jnp.reshape(x, (x.shape[0], x.shape[1], t, t))
    flat_self = lambda x: None if x is None else jnp.reshape(x, (x.shape[0], t, t))
    nngp, ntk = flat_pair(k.nngp), flat_pair(k.ntk)
    cov1, cov2 = flat_self(k.cov1), flat_self(k.cov2)
    m1 = None if k.mask1 is None else jnp.reshape(k.mask1, (n1, t))
    m2 = m1 if k.x1_is_x2 else (None if k.mask2 is None else jnp.reshape(k.mask2, (n2, t)))
    w1 = jnp.ones((n1, t), dt) if m1 is None else mask_weights(m1, dt)
    w2 = jnp.ones((n2, t), dt) if m2 is None else mask_weights(m2, dt)
    pos_r = jnp.asarray(layer.pos_emb_covariance(sp), dt)
    eye = pos_r[None]
    r11 = eye * (w1[:, :, None] * w1[:, None, :])
    interp1 = cov1 if pw == 0.0 else kw * cov1 + pw * r11
    qk = layer.W_query_std * layer.W_key_std
    ov2 = (layer.W_out_std * layer.W_value_std) ** 2
    b2 = 0.0 if layer.b_std is None else layer.b_std**2
    if not layer.linear_scaling:
        r12 = pos_r[None, None] * (w1[:, None, :, None] * w2[None, :, None, :])
        r22 = None if cov2 is None else eye * (w2[:, :, None] * w2[:, None, :])
        mask12 = w1[:, None, :, None] * w2[None, :, None, :]
        mask11 = w1[:, :, None] * w1[:, None, :]
        mask22 = w2[:, :, None] * w2[:, None, :]
        pair_k = (
            kw * nngp * mask12 + pw * r12,
            None if ntk is None else kw * ntk * mask12 + pw * r12,
        )
        pair_v = (nngp * mask12, None if ntk is None else ntk * mask12)
        self1 = (kw * cov1 * mask11 + pw * r11, cov1 * mask11)
        self2 = None if cov2 is None else (kw * cov2 * mask22 + pw * r22, cov2 * mask22)
        val = layer.val_pos_emb or pw == 0.0
        new_nngp, new_ntk, new_cov1, new_cov2 = _sqrt_identity(
            layer, pair_k, pair_v, self1, self2, val, (qk**2) * ov2, b2
        )
        return _finish(layer, k, new_nngp, new_ntk, new_cov1, new_cov2, n1, n2, sp)
    g1 = _weights(layer, interp1, m1, qk, t)
    g2 = g1
    if cov2 is not None:
        r22 = eye * (w2[:, :, None] * w2[:, None, :])
        g2 = _weights(layer, kw * cov2 + pw * r22 if pw else cov2, m2, qk, t)
    else:
        r22 = None
    val = layer.val_pos_emb and pw != 0.0
    if val:
        r12 = pos_r[None, None] * (w1[:, None, :, None] * w2[None, :, None, :])
        nngp_v = kw * nngp + pw * r12
        ntk_v = None if ntk is None else kw * ntk + pw * r12
        cov1_v = kw * cov1 + pw * r11
        cov2_v = None if cov2 is None else kw * cov2 + pw * r22
    else:
        nngp_v, ntk_v, cov1_v, cov2_v = nngp, ntk, cov1, cov2

    pair = lambda x: jnp.einsum("aps,abst,bqt->abpq", g1, x, g2)
    new_nngp = ov2 * pair(nngp_v) + b2
    new_ntk = None
    if ntk_v is not None:
        new_ntk = ov2 * pair(ntk_v) + b2 + 2 * (new_nngp - b2)
    new_cov1 = ov2 * jnp.einsum("aps,ast,aqt->apq", g1, cov1_v, g1) + b2
    new_cov2 = None
    if cov2_v is not None:
        new_cov2 = ov2 * jnp.einsum("aps,ast,aqt->apq", g2, cov2_v, g2) + b2
    return _finish(layer, k, new_nngp, new_ntk, new_cov1, new_cov2, n1, n2, sp)


def _prefix_sum(m, causal: bool):
    """``S[M]`` over the last two (key position) axes: the total, kept as ``(.., 1, 1)``,
    or with ``causal`` the sums over ``s <= p, t <= q`` for every ``(p, q)``."""
    if causal:
        return jnp.cumsum(jnp.cumsum(m, axis=-2), axis=-1)
    return jnp.sum(m, axis=(-2, -1), keepdims=True)


def _sqrt_identity(layer, pair_k, pair_v, self1, self2, val: bool, std2, b2):
    """``1 / sqrt(n_key)`` scaling, "IDENTITY" mechanism (module docstring)."""
    kk, tk = pair_k
    kv, tv = (kk, tk) if val else pair_v
    s = lambda m: _prefix_sum(m, layer.causal)
    dot = s(kk * kv)
    nngp = std2 * dot * kk + b2
    ntk = None
    if tk is not None:
        cross = s(kk * tv) + s(tk * kv)
        ntk = std2 * (cross * kk + dot * (tk + 4 * kk)) + b2

    def self_cov(pair):
        if pair is None:
            return None
        kk_s, kv_s = pair
        kv_s = kk_s if val else kv_s
        return std2 * s(kk_s * kv_s) * kk_s + b2

    return nngp, ntk, self_cov(self1), self_cov(self2)


def _finish(layer, k: Kernel, new_nngp, new_ntk, new_cov1, new_cov2, n1, n2, sp) -> Kernel:
    unflat_pair = lambda x: None if x is None else jnp.reshape(x, (n1, n2, *sp, *sp))
    unflat_self = lambda x, n: None if x is None else jnp.reshape(x, (n, *sp, *sp))
    c = layer.n_chan_out
    return k.replace(
        nngp=unflat_pair(new_nngp),
        ntk=unflat_pair(new_ntk),
        cov1=unflat_self(new_cov1, n1),
        cov2=unflat_self(new_cov2, n2),
        shape1=k.shape1[:-1] + (c,),
        shape2=k.shape2[:-1] + (c,),
        is_gaussian=True,
        is_input=False,
    )


register_rule(L.GlobalSelfAttention, _attention, needs_full_spatial=True)
