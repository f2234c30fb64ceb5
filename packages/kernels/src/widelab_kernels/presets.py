"""Convolutional architectures of the kernel papers, as layer values.

Each preset is an ordinary ``widelab_core.layers`` network: ``init``/``apply`` train it
at a finite number of channels, :func:`widelab_kernels.kernel_fn` gives its
infinite-channel NNGP and NTK. The channel count only matters for finite training.

Example:
    >>> import jax.numpy as jnp
    >>> from widelab_kernels import kernel_fn
    >>> from widelab_kernels.presets import myrtle, preset
    >>> net = myrtle(5, channels=8)
    >>> k = kernel_fn(net)(jnp.ones((2, 8, 8, 3)), None, get="nngp")
    >>> k.shape
    (2, 2)
    >>> preset("cnngp-3-flatten") is not None
    True
"""

from __future__ import annotations

import math
import re

from widelab_core import layers as L

__all__ = ["MYRTLE_STAGES", "PRESET_NAMES", "cnn_gp", "myrtle", "preset"]

#: Convolutions in each of the three resolution stages of Myrtle-5, -7 and -10.
MYRTLE_STAGES = {5: (2, 1, 1), 7: (2, 2, 2), 10: (3, 3, 3)}

_ACTIVATIONS = {"relu": L.Relu, "erf": L.Erf}


def myrtle(
    depth: int = 5,
    *,
    channels: int = 128,
    n_out: int = 10,
    W_std: float = math.sqrt(2.0),
    b_std: float | None = None,
    parameterization: str = "ntk",
):
    """The Myrtle network of depth 5, 7 or 10 (Shankar et al. 2020).

    Three stages of ``3 x 3`` SAME convolutions, each followed by a ReLU; the first two
    stages end in ``2 x 2`` average pooling with stride 2, the last one in a global
    average pool; a dense readout follows. Stage lengths are :data:`MYRTLE_STAGES`, so
    the depth counts the weight layers (convolutions plus the readout). On 32 x 32
    inputs the global pool averages the 8 x 8 map that the paper reduces with three
    more ``2 x 2`` poolings, which is the same average.

    Args:
        depth: 5, 7 or 10.
        channels: convolution channels (finite network only).
        n_out: readout width (classes).
        W_std: weight standard deviation of every layer (``sqrt(2)`` keeps ReLU
            activations at unit scale).
        b_std: bias standard deviation; ``None`` for no biases, as in the paper.
        parameterization: ``"ntk"`` or ``"standard"``.

    Returns:
        The network as a layer value (input ``(batch, height, width, channels)``, with
        height and width divisible by 4).

    Raises:
        ValueError: an unsupported depth.

    Reference:
        Shankar et al. 2020, "Neural Kernels Without Tangents" (ICML), Sec. 5 and
        Fig. 3 (Myrtle architectures).
    """
    if depth not in MYRTLE_STAGES:
        raise ValueError(f"myrtle: depth must be one of {sorted(MYRTLE_STAGES)}, got {depth!r}")
    conv = dict(W_std=W_std, b_std=b_std, padding="SAME", parameterization=parameterization)
    layers = []
    for stage, n_conv in enumerate(MYRTLE_STAGES[depth]):
        for _ in range(n_conv):
            layers += [L.Conv(channels, (3, 3), **conv), L.Relu()]
        if stage < 2:
            layers.append(L.AvgPool((2, 2), strides=(2, 2)))
    layers += [
        L.GlobalAvgPool(),
        L.Dense(n_out, W_std=W_std, b_std=b_std, parameterization=parameterization),
    ]
    return L.serial(*layers)


def cnn_gp(
    depth: int,
    *,
    channels: int = 128,
    readout: str = "pool",
    activation: str = "relu",
    filter_shape: tuple[int, int] = (3, 3),
    padding: str = "SAME",
    n_out: int = 10,
    W_std: float = math.sqrt(2.0),
    b_std: float | None = 0.0,
    parameterization: str = "ntk",
):
    """The CNN-GP family of Novak et al. 2019: ``depth`` convolutions, then a readout.

    ``depth`` convolutions with weight sharing (``filter_shape``, ``padding``), each
    followed by ``activation``, then either global average pooling (``"pool"``, the
    translation-equivariant "CNN-GP with pooling") or flattening (``"flatten"``, the
    vectorised readout whose NNGP only needs per-position variances) and a dense layer.

    Args:
        depth: number of convolutions, ``>= 1``.
        channels: convolution channels (finite network only).
        readout: ``"pool"`` or ``"flatten"``.
        activation: ``"relu"`` or ``"erf"``.
        filter_shape: convolution window.
        padding: ``"SAME"``, ``"VALID"`` or ``"CIRCULAR"``.
        n_out: readout width.
        W_std: weight standard deviation (the paper's ``sigma_w``).
        b_std: bias standard deviation (the paper's ``sigma_b``); ``None`` for none.
        parameterization: ``"ntk"`` or ``"standard"``.

    Returns:
        The network as a layer value.

    Raises:
        ValueError: a non-positive depth, an unknown readout or activation.

    Reference:
        Novak et al. 2019, "Bayesian Deep Convolutional Networks with Many Channels are
        Gaussian Processes" (ICLR), Sec. 2-3 (Eq. 7-8 for the conv recursion; Sec. 3.1
        for flatten vs global average pooling readouts).
    """
    if isinstance(depth, bool) or not isinstance(depth, int) or depth < 1:
        raise ValueError(f"cnn_gp: depth must be a positive integer, got {depth!r}")
    if readout not in ("pool", "flatten"):
        raise ValueError(f"cnn_gp: readout must be 'pool' or 'flatten', got {readout!r}")
    if activation not in _ACTIVATIONS:
        raise ValueError(
            f"cnn_gp: activation must be one of {sorted(_ACTIVATIONS)}, got {activation!r}"
        )
    conv = dict(W_std=W_std, b_std=b_std, padding=padding, parameterization=parameterization)
    layers = []
    for _ in range(depth):
        layers += [L.Conv(channels, filter_shape, **conv), _ACTIVATIONS[activation]()]
    layers.append(L.GlobalAvgPool() if readout == "pool" else L.Flatten())
    layers.append(L.Dense(n_out, W_std=W_std, b_std=b_std, parameterization=parameterization))
    return L.serial(*layers)


#: Names :func:`preset` understands (``<depth>`` is a positive integer).
PRESET_NAMES = ("myrtle5", "myrtle7", "myrtle10", "cnngp-<depth>-pool", "cnngp-<depth>-flatten")


def preset(name: str, **kwargs):
    """A preset network by name (the names of ``widelab kernels compute --net``).

    Args:
        name: ``"myrtle5"``, ``"myrtle7"``, ``"myrtle10"``, ``"cnngp-<depth>-pool"`` or
            ``"cnngp-<depth>-flatten"`` (e.g. ``"cnngp-8-pool"``).
        **kwargs: passed to :func:`myrtle` or :func:`cnn_gp` (e.g. ``channels``).

    Returns:
        The network as a layer value.

    Raises:
        ValueError: an unknown name (the message lists the known ones).
    """
    m = re.fullmatch(r"myrtle(5|7|10)", str(name))
    if m:
        return myrtle(int(m.group(1)), **kwargs)
    m = re.fullmatch(r"cnngp-([1-9][0-9]*)-(pool|flatten)", str(name))
    if m:
        return cnn_gp(int(m.group(1)), readout=m.group(2), **kwargs)
    raise ValueError(f"preset: unknown network {name!r}; known: {', '.join(PRESET_NAMES)}")
