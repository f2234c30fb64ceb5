"""Hand-written layers (``@stax.layer``, ``@stax.requires``) in Neural Tangents 0.6.5 style.

Each function takes the library's modules (``nt``, ``stax``, ``predict``) and returns a
dict of arrays; ``benchmarks/nt_predict_reference.py`` saves NT's results in
``tests/data/nt_custom.npz`` and ``test_nt_custom.py`` compares widelab's with them.
The layers are written as an NT user would: ``kernel_fn`` edits the kernel's arrays in
NT's axis order ``(n1, n2, h, h', w, w')``.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np


def make_layers(stax):
    """A position-weighting layer (needs all pairs of positions) and a scaling one."""

    @stax.layer
    def PositionWeights(wh, ww):
        wh, ww = jnp.asarray(wh), jnp.asarray(ww)

        def init_fn(rng, input_shape):
            return input_shape, ()

        def apply_fn(params, x, **kwargs):
            return x * wh[None, :, None, None] * ww[None, None, :, None]

        @stax.requires(diagonal_spatial=stax.Diagonal(input=stax.Bool.NO))
        def kernel_fn(k, **kwargs):
            # pair weights w_h w_h' w_w w_w' over NT's (..., h, h', w, w') axes (NT keeps
            # convolution kernels with the spatial axes reversed, flagged by is_reversed)
            ph, pw = jnp.outer(wh, wh), jnp.outer(ww, ww)
            if getattr(k, "is_reversed", False):
                pair = pw[:, :, None, None] * ph[None, None, :, :]
            else:
                pair = ph[:, :, None, None] * pw[None, None, :, :]
            ntk = None if k.ntk is None else k.ntk * pair[None, None]
            cov2 = None if k.cov2 is None else k.cov2 * pair[None]
            return k.replace(
                nngp=k.nngp * pair[None, None], ntk=ntk, cov1=k.cov1 * pair[None], cov2=cov2
            )

        return init_fn, apply_fn, kernel_fn

    @stax.layer
    def Scale(c):
        def init_fn(rng, input_shape):
            return input_shape, ()

        def apply_fn(params, x, **kwargs):
            return c * x

        @stax.requires(diagonal_spatial=stax.Diagonal())
        def kernel_fn(k, **kwargs):
            ntk = None if k.ntk is None else c**2 * k.ntk
            cov2 = None if k.cov2 is None else c**2 * k.cov2
            return k.replace(nngp=c**2 * k.nngp, ntk=ntk, cov1=c**2 * k.cov1, cov2=cov2)

        return init_fn, apply_fn, kernel_fn

    return PositionWeights, Scale


def hand_written(nt, stax, predict) -> dict:
    PositionWeights, Scale = make_layers(stax)
    rng = np.random.default_rng(0)
    x1, x2 = rng.standard_normal((3, 4, 3, 2)), rng.standard_normal((2, 4, 3, 2))
    wh, ww = np.array([0.5, 1.0, 1.5, 2.0]), np.array([1.2, 0.7, 1.0])
    out = {}
    _, _, cnn = stax.serial(
        stax.Conv(8, (2, 2), padding="SAME", W_std=1.3, b_std=0.1),
        stax.Relu(),
        PositionWeights(wh, ww),
        stax.Conv(8, (2, 2), padding="VALID", W_std=1.1),
        Scale(0.8),
        stax.Relu(),
        stax.Flatten(),
        stax.Dense(1),
    )
    k = cnn(x1, x2, ("nngp", "ntk"))
    out["cnn_nngp"], out["cnn_ntk"] = k.nngp, k.ntk
    out["cnn_self_nngp"] = cnn(x1, None, "nngp")
    # Without a readout that pools, the spatial covariances come back in NT's layout.
    _, _, conv = stax.serial(stax.Conv(4, (2, 2), padding="SAME"), PositionWeights(wh, ww))
    out["conv_nngp"] = conv(x1, x2, "nngp")
    _, _, mlp = stax.serial(
        stax.Dense(16, W_std=1.4, b_std=0.2), Scale(1.5), stax.Erf(), stax.Dense(1)
    )
    k = mlp(x1.reshape(3, -1), x2.reshape(2, -1), ("nngp", "ntk"))
    out["mlp_nngp"], out["mlp_ntk"] = k.nngp, k.ntk
    return out


PROGRAMS = {"hand_written": hand_written}
