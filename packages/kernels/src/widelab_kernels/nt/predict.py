"""Neural Tangents 0.6.5's ``predict`` names and calling forms over widelab's inference.

The mathematics is in :mod:`widelab_kernels.inference`; this module only maps NT's
argument order and return conventions onto it:

* ``gp_inference(k_train_train, y_train, diag_reg, diag_reg_absolute_scale,
  trace_axes)`` returns ``predict_fn(get=None, k_test_train=None, k_test_test=None)``;
  ``k_test_train=None`` gives the training-set predictions ``y_train`` (and the
  zero covariance when ``k_test_test`` is not ``None``), as NT does.
* ``gradient_descent_mse(...)`` returns ``predict_fn(t=None, fx_train_0=0.,
  fx_test_0=None, k_test_train=None)``.
* ``gradient_descent_mse_ensemble(kernel_fn, x_train, y_train, ...)`` (NT's argument
  order) returns ``predict_fn(t=None, x_test=None, get=None, compute_cov=False,
  **kernel_fn_test_test_kwargs)``.
* ``gradient_descent(loss, k_train_train, y_train, learning_rate, momentum,
  trace_axes)`` returns ``predict_fn(t=None, fx_train_0=0., fx_test_0=None,
  k_test_train=None)``.
* ``max_learning_rate`` is widelab's.
"""

from __future__ import annotations

from collections.abc import Sequence

import jax.numpy as jnp

from .. import inference as _inf
from .._inference_utils import _regularized, _select
from ..inference import Gaussian, max_learning_rate

_GETS = ("nngp", "ntk")


def _trace(trace_axes, where: str) -> tuple[int, ...]:
    t = (trace_axes,) if isinstance(trace_axes, int) else tuple(trace_axes)
    if t not in ((-1,), ()):
        raise NotImplementedError(
            f"{where}: trace_axes={trace_axes!r} is not supported; use (-1,) (one kernel "
            "shared by the output channels) or () (a kernel per pair of channels)"
        )
    return t


def _get_names(get) -> tuple[str, ...]:
    names = _GETS if get is None else ((get,) if isinstance(get, str) else tuple(get))
    bad = [g for g in names if g not in _GETS]
    if bad or not names:
        extra = " ('ntkgp' is not supported)" if "ntkgp" in bad else ""
        raise ValueError(
            f"predict_fn: get must be 'nngp', 'ntk' or a tuple of them{extra}, got {get!r}"
        )
    return names


def gp_inference(
    k_train_train,
    y_train,
    diag_reg: float = 0.0,
    diag_reg_absolute_scale: bool = False,
    trace_axes: int | Sequence[int] = (-1,),
):
    """Exact Bayesian NNGP / infinite-ensemble NTK posterior (NT's ``predict.gp_inference``).

    See :func:`widelab_kernels.gp_inference` for the equations (Rasmussen & Williams 2006,
    eq. 2.25-2.26; Lee et al. 2019, eq. 16).

    Args:
        k_train_train: train-train kernel(s): an array, a named tuple or a ``Kernel``.
        y_train: ``(n, k)`` targets.
        diag_reg: diagonal regulariser, relative to the mean diagonal.
        diag_reg_absolute_scale: ``diag_reg`` in absolute units.
        trace_axes: ``(-1,)`` only (one kernel shared by the outputs).

    Returns:
        ``predict_fn(get=None, k_test_train=None, k_test_test=None)``: the mean (or a
        :class:`Gaussian` when ``k_test_test`` is given) for ``get`` a string, a named
        tuple of them for a tuple or ``None`` (both ``nngp`` and ``ntk``).
    """
    if _trace(trace_axes, "gp_inference") != (-1,):
        raise NotImplementedError("gp_inference: only trace_axes=(-1,) is supported")
    inner = _inf.gp_inference(
        k_train_train,
        y_train,
        diag_reg=diag_reg,
        diag_reg_absolute_scale=diag_reg_absolute_scale,
    )
    y = jnp.asarray(y_train)

    def predict_fn(get=None, k_test_train=None, k_test_test=None):
        names = _get_names(get)
        if k_test_train is None:
            out = {}
            for g in names:
                if k_test_test is None:
                    out[g] = y
                else:
                    out[g] = Gaussian(y, jnp.zeros((y.shape[0], y.shape[0]), y.dtype))
            return _select(get if get is not None else names, out)
        tt = None if k_test_test is None or k_test_test is True else k_test_test
        return inner(get if get is not None else names, k_test_train, tt)

    return predict_fn


def gradient_descent_mse(
    k_train_train,
    y_train,
    learning_rate: float = 1.0,
    diag_reg: float = 0.0,
    diag_reg_absolute_scale: bool = False,
    trace_axes: int | Sequence[int] = (-1,),
):
    """Outputs of a wide network trained by gradient flow on MSE (NT's
    ``predict.gradient_descent_mse``; Lee et al. 2019, eq. 9-11).

    Returns:
        ``predict_fn(t=None, fx_train_0=0., fx_test_0=None, k_test_train=None)`` giving
        ``fx_train_t``, ``fx_test_t`` (when ``fx_train_0`` is ``None``) or both.
    """
    return _inf.gradient_descent_mse(
        k_train_train,
        y_train,
        learning_rate=learning_rate,
        diag_reg=diag_reg,
        diag_reg_absolute_scale=diag_reg_absolute_scale,
        trace_axes=_trace(trace_axes, "gradient_descent_mse"),
    )


def gradient_descent_mse_ensemble(
    kernel_fn,
    x_train,
    y_train,
    learning_rate: float = 1.0,
    diag_reg: float = 0.0,
    diag_reg_absolute_scale: bool = False,
    trace_axes: int | Sequence[int] = (-1,),
    **kernel_fn_train_train_kwargs,
):
    """Mean and covariance of an infinite ensemble trained on MSE (NT's
    ``predict.gradient_descent_mse_ensemble``; Lee et al. 2019, eq. 15-16).

    Args:
        kernel_fn: ``kernel_fn(x1, x2, get, **kwargs)`` (analytic, empirical with
            ``params`` bound by the caller, or Monte Carlo).
        x_train: training inputs.
        y_train: ``(n, k)`` targets.
        learning_rate: step size; ``t`` counts steps.
        diag_reg: regulariser of the inverted training kernel.
        diag_reg_absolute_scale: ``diag_reg`` in absolute units.
        trace_axes: ``(-1,)`` only.
        **kernel_fn_train_train_kwargs: passed to every ``kernel_fn`` call.

    Returns:
        ``predict_fn(t=None, x_test=None, get=None, compute_cov=False, **kwargs)``.
    """
    if _trace(trace_axes, "gradient_descent_mse_ensemble") != (-1,):
        raise NotImplementedError(
            "gradient_descent_mse_ensemble: only trace_axes=(-1,) is supported"
        )

    def make(reg):
        return _inf.gradient_descent_mse_ensemble(
            kernel_fn,
            y_train,
            x_train=x_train,
            learning_rate=learning_rate,
            diag_reg=reg,
            diag_reg_absolute_scale=diag_reg_absolute_scale,
            **kernel_fn_train_train_kwargs,
        )

    inner = make(diag_reg)
    y = jnp.asarray(y_train)
    train: dict = {}

    def train_kernel(g: str):
        if g not in train:
            train[g] = kernel_fn(x_train, None, g, **kernel_fn_train_train_kwargs)
        return train[g]

    def on_train(t, g: str, compute_cov: bool):
        # NT: x_test=None predicts on the training inputs as if they were test inputs
        # whose test-train kernel is the regularised training kernel.
        if t is None:
            n = y.shape[0]
            return Gaussian(y, jnp.zeros((n, n), y.dtype)) if compute_cov else y
        reg = lambda k: _regularized(k, diag_reg, diag_reg_absolute_scale)
        if g == "nngp":
            kd = {"nngp": reg(train_kernel("nngp"))}
            tt = kd["nngp"]
        else:
            kd = {"ntk": reg(train_kernel("ntk"))}
            if compute_cov:
                kd["nngp"] = train_kernel("nngp")
            tt = kd.get("nngp")
        return inner(t, None, get=g, compute_cov=compute_cov, k_test_train=kd, k_test_test=tt)

    def predict_fn(t=None, x_test=None, get=None, compute_cov: bool = False, **kwargs):
        if kwargs:
            raise TypeError(
                "predict_fn: keyword arguments for the test-test kernel are not supported; "
                f"pass them to gradient_descent_mse_ensemble instead (got {sorted(kwargs)})"
            )
        names = _get_names(get)
        get = get if get is not None else names
        if x_test is None:
            out = {g: on_train(t, g, compute_cov) for g in names}
            return _select(get, out)
        return inner(t, x_test, get=get, compute_cov=compute_cov)

    return predict_fn


def gradient_descent(
    loss,
    k_train_train,
    y_train,
    learning_rate: float = 1.0,
    momentum: float | None = None,
    trace_axes: int | Sequence[int] = (-1,),
):
    """Outputs of a wide network trained by (momentum) gradient descent on any loss (NT's
    ``predict.gradient_descent``; Lee et al. 2019, eq. 6).

    Returns:
        ``predict_fn(t=None, fx_train_0=0., fx_test_0=None, k_test_train=None)``.
    """
    inner = _inf.gradient_descent(
        loss,
        k_train_train,
        y_train,
        learning_rate=learning_rate,
        momentum=momentum,
        trace_axes=_trace(trace_axes, "gradient_descent"),
    )

    def predict_fn(t=None, fx_train_0=0.0, fx_test_0=None, k_test_train=None):
        if t is None:
            raise ValueError(
                "predict_fn: t=None (infinite time) needs a closed form; give a finite t"
            )
        out = inner(t, fx_train_0, fx_test_0, k_test_train)
        if fx_train_0 is None and isinstance(out, tuple):
            return out[1]
        return out

    return predict_fn


__all__ = [
    "Gaussian",
    "gp_inference",
    "gradient_descent",
    "gradient_descent_mse",
    "gradient_descent_mse_ensemble",
    "max_learning_rate",
]
