"""Neural Tangents 0.6.5's ``predict`` names and calling forms over widelab's inference.

The mathematics is in :mod:`widelab_kernels.inference`; this module only maps NT's
argument order, array layouts and return conventions onto it:

* Kernels are in NT's interleaved layout ``zip(S1, S2)`` where ``S`` is the targets'
  shape without ``trace_axes`` (e.g. ``(n, n)`` for ``y`` of shape ``(n, k)`` and
  ``trace_axes=(-1,)``, ``(n, n, k, k)`` for ``trace_axes=()``); any ``trace_axes`` not
  containing the batch axis is accepted, and covariances come back in the same layout.
* ``gp_inference(k_train_train, y_train, diag_reg, diag_reg_absolute_scale,
  trace_axes)`` returns ``predict_fn(get=None, k_test_train=None, k_test_test=None)``;
  ``get`` may name ``"nngp"``, ``"ntk"`` and ``"ntkgp"`` (He et al. 2020).
  ``k_test_train=None`` gives the training-set predictions ``y_train`` (and the zero
  covariance when ``k_test_test`` is not ``None``), as NT does.
* ``gradient_descent_mse(...)`` returns ``predict_fn(t=None, fx_train_0=0.,
  fx_test_0=None, k_test_train=None)``; ``t=None`` is infinite time. Test outputs are
  computed only when ``fx_test_0`` is given, as in NT.
* ``gradient_descent_mse_ensemble(kernel_fn, x_train, y_train, ...)`` (NT's argument
  order) returns ``predict_fn(t=None, x_test=None, get=None, compute_cov=False)``;
  ``get`` may also name ``"ntkgp"`` (NT 0.6.5 refuses it here; the finite-time NTK-GP
  follows from the linearised dynamics started at the NTK prior).
* ``gradient_descent(loss, k_train_train, y_train, learning_rate, momentum,
  trace_axes)`` returns ``predict_fn(t=None, fx_train_or_state_0=0., fx_test_0=None,
  k_test_train=None)``; ``t=None`` is the end of training. Given an :class:`ODEState`
  instead of outputs, it returns the :class:`ODEState` at ``t`` (outputs and, with
  momentum, NT's auxiliary variables ``qx``), to inspect or resume the flow.
* ``max_learning_rate(ntk_train_train, y_train_size=None, momentum=0., eps=1e-12)``.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp

from .. import inference as _inf
from .. import inference_ode as _ode
from .._inference_utils import _kernel_of, _names, _regularized, _select
from ..inference import Gaussian
from ._predict_layout import Layout, as_matrix, field

_GETS = ("nngp", "ntk")


def _both_none(fx_train_0, fx_test_0) -> None:
    if fx_train_0 is None and fx_test_0 is None:
        raise ValueError(
            "predict_fn: fx_train_0 and fx_test_0 are both None, so nothing would be "
            "predicted; give fx_train_0 (train set) and/or fx_test_0 with k_test_train"
        )


def _test_needs_kernel(fx_test_0, k_test_train) -> None:
    if fx_test_0 is not None and k_test_train is None:
        raise ValueError("predict_fn: fx_test_0 is given but k_test_train is None")


def _test_shape(k_test_train) -> tuple[int, ...]:
    first = next(v for v in (field(k_test_train, g) for g in _GETS) if v is not None)
    return tuple(jnp.shape(first)[0::2])


def gp_inference(
    k_train_train,
    y_train,
    diag_reg: float = 0.0,
    diag_reg_absolute_scale: bool = False,
    trace_axes: int | Sequence[int] = (-1,),
):
    """Exact GP posteriors of the NNGP, the NTK ensemble and the NTK-GP (NT's
    ``predict.gp_inference``).

    See :func:`widelab_kernels.gp_inference` for the equations (Rasmussen & Williams 2006,
    eq. 2.25-2.26; Lee et al. 2019, eq. 16; He et al. 2020, "Bayesian deep ensembles via
    the neural tangent kernel", for ``"ntkgp"``).

    Args:
        k_train_train: train-train kernel(s) in NT's layout: an array, a named tuple or a
            ``Kernel`` holding what ``get`` will need.
        y_train: targets, ``(n, ...)``.
        diag_reg: diagonal regulariser, relative to the mean diagonal.
        diag_reg_absolute_scale: ``diag_reg`` in absolute units.
        trace_axes: axes of ``y_train`` the kernels are shared over (not the batch axis).

    Returns:
        ``predict_fn(get=None, k_test_train=None, k_test_test=None)``: the mean (or a
        :class:`Gaussian` when ``k_test_test`` is given) for ``get`` a string, a named
        tuple of them for a tuple or ``None`` (both ``nngp`` and ``ntk``). ``k_test_test``
        holds the NNGP for ``"nngp"``/``"ntk"`` and the NTK for ``"ntkgp"``.

    Raises:
        ValueError: kernel shapes that do not fit ``y_train`` and ``trace_axes``; an
            unknown ``get``; see :func:`widelab_kernels.gp_inference`.

    Example:
        >>> import jax.numpy as jnp
        >>> k = jnp.array([[2.0, 1.0], [1.0, 2.0]])
        >>> predict_fn = gp_inference(k, jnp.array([[1.0], [0.0]]))
        >>> [round(float(v), 4) for v in predict_fn("ntkgp", k)[:, 0]]
        [1.0, 0.0]
    """
    lay = Layout(y_train, trace_axes, "gp_inference")
    inner = _inf.gp_inference(
        lay.kernels(k_train_train, "k_train_train"),
        lay.y2,
        diag_reg=diag_reg,
        diag_reg_absolute_scale=diag_reg_absolute_scale,
    )

    def predict_fn(get=None, k_test_train=None, k_test_test=None):
        names = _names(get)
        get = get if get is not None else names
        if k_test_train is None:
            out = {}
            for g in names:
                if k_test_test is None:
                    out[g] = lay.y
                else:
                    kdd = field(k_train_train, _kernel_of(g))
                    out[g] = Gaussian(lay.y, jnp.zeros(jnp.shape(kdd), lay.y.dtype))
            return _select(get, out)
        kept = _test_shape(k_test_train)
        ktd = lay.kernels(k_test_train, "k_test_train", rows_free=True)
        ktt = None
        if k_test_test is not None and k_test_test is not True:
            if any(field(k_test_test, g) is not None for g in _GETS):
                ktt = {
                    g: as_matrix(field(k_test_test, g), f"gp_inference: k_test_test.{g}")
                    for g in _GETS
                    if field(k_test_test, g) is not None
                }
            else:
                ktt = as_matrix(k_test_test, "gp_inference: k_test_test")
        res = inner(names, ktd, ktt)
        out = {}
        for g, r in zip(names, res):
            if isinstance(r, Gaussian):
                out[g] = Gaussian(lay.unflat(r.mean, kept), lay.covariance(r.covariance, kept))
            else:
                out[g] = lay.unflat(r, kept)
        return _select(get, out)

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

    Args:
        k_train_train: NTK on the training inputs in NT's layout ``zip(S, S)``.
        y_train: targets, ``(n, ...)``.
        learning_rate: step size; ``t`` counts steps of this size.
        diag_reg: diagonal regulariser, relative to the mean diagonal.
        diag_reg_absolute_scale: ``diag_reg`` in absolute units.
        trace_axes: axes of ``y_train`` the kernel is shared over.

    Returns:
        ``predict_fn(t=None, fx_train_0=0., fx_test_0=None, k_test_train=None)`` giving
        ``fx_train_t``, ``fx_test_t`` (when ``fx_train_0`` is ``None``) or both (when
        ``fx_test_0`` is given); times are leading axes; ``t=None`` is infinite time.

    Raises:
        ValueError: shapes that do not fit; both initial outputs ``None``; ``fx_test_0``
            without ``k_test_train``.

    Example:
        >>> import jax.numpy as jnp
        >>> predict_fn = gradient_descent_mse(jnp.eye(2), jnp.ones((2, 1)))
        >>> round(float(predict_fn(2.0, 0.0)[0, 0]), 4)  # 1 - exp(-2 / 2)
        0.6321
    """
    lay = Layout(y_train, trace_axes, "gradient_descent_mse")
    inner = _inf.gradient_descent_mse(
        lay.kernel(k_train_train, "k_train_train"),
        lay.y2,
        learning_rate=learning_rate,
        diag_reg=diag_reg,
        diag_reg_absolute_scale=diag_reg_absolute_scale,
    )

    def predict_fn(t=None, fx_train_0=0.0, fx_test_0=None, k_test_train=None):
        _both_none(fx_train_0, fx_test_0)
        _test_needs_kernel(fx_test_0, k_test_train)
        f0 = None if fx_train_0 is None else lay.flat(jnp.broadcast_to(fx_train_0, lay.y.shape))
        if fx_test_0 is None:
            return lay.unflat(inner(t, f0), lay.train_shape)
        kept = tuple(jnp.shape(k_test_train)[0::2])
        kt = lay.kernel(k_test_train, "k_test_train", rows_free=True)
        ft0 = lay.flat(jnp.broadcast_to(fx_test_0, lay.full_shape(kept)))
        out = inner(t, f0, ft0, kt)
        if fx_train_0 is None:
            return lay.unflat(out, kept)
        return lay.unflat(out[0], lay.train_shape), lay.unflat(out[1], kept)

    return predict_fn


def gradient_descent_mse_ensemble(
    kernel_fn: Callable,
    x_train,
    y_train,
    learning_rate: float = 1.0,
    diag_reg: float = 0.0,
    diag_reg_absolute_scale: bool = False,
    trace_axes: int | Sequence[int] = (-1,),
    **kernel_fn_train_train_kwargs,
):
    """Mean and covariance of an infinite ensemble trained on MSE (NT's
    ``predict.gradient_descent_mse_ensemble``; Lee et al. 2019, eq. 15-16; He et al.
    2020 for ``"ntkgp"``).

    Args:
        kernel_fn: ``kernel_fn(x1, x2, get, **kwargs)`` returning NT-layout kernels
            (analytic, empirical with ``params`` bound by the caller, or Monte Carlo).
        x_train: training inputs.
        y_train: targets, ``(n, ...)``.
        learning_rate: step size; ``t`` counts steps.
        diag_reg: regulariser of the inverted training kernel.
        diag_reg_absolute_scale: ``diag_reg`` in absolute units.
        trace_axes: axes of ``y_train`` the kernels are shared over.
        **kernel_fn_train_train_kwargs: passed to every ``kernel_fn`` call.

    Returns:
        ``predict_fn(t=None, x_test=None, get=None, compute_cov=False)``: per name in
        ``get`` (``"nngp"``, ``"ntk"``, ``"ntkgp"``) the mean, or a :class:`Gaussian` with
        ``compute_cov``; times are leading axes; ``t=None`` is infinite time;
        ``x_test=None`` predicts on the training inputs (regulariser included).

    Raises:
        ValueError: kernel shapes that do not fit; an unknown ``get``.
        TypeError: keyword arguments given to ``predict_fn``.

    Example:
        >>> import jax.numpy as jnp
        >>> kernel_fn = lambda x1, x2, get, **kw: {"nngp": jnp.eye(2), "ntk": jnp.eye(2)}
        >>> x_train, y_train = jnp.zeros((2, 3)), jnp.ones((2, 1))
        >>> predict_fn = gradient_descent_mse_ensemble(kernel_fn, x_train, y_train)
        >>> round(float(predict_fn(2.0, get="ntkgp")[0, 0]), 4)  # 1 - exp(-2 / 2)
        0.6321
    """
    lay = Layout(y_train, trace_axes, "gradient_descent_mse_ensemble")
    train: dict = {}

    def train_kernels(names: tuple[str, ...]) -> dict:
        missing = tuple(g for g in names if g not in train)
        if missing:
            # NT passes one name as a string, several as a tuple.
            get = missing[0] if len(missing) == 1 else missing
            ks = kernel_fn(x_train, None, get, **kernel_fn_train_train_kwargs)
            for g in missing:
                k = field(ks, g)
                if k is None:
                    raise ValueError(
                        f"gradient_descent_mse_ensemble: kernel_fn gave no {g!r} kernel"
                    )
                train[g] = lay.kernel(k, f"kernel_fn(x_train, None).{g}")
        return {g: train[g] for g in names}

    def flat_fn(x1, x2=None, get=None, **kwargs):
        if x1 is x_train and x2 is None:
            return train_kernels(_names(get, _GETS))
        raise AssertionError("test kernels are computed by predict_fn")  # pragma: no cover

    inner = _inf.gradient_descent_mse_ensemble(
        flat_fn,
        lay.y2,
        x_train=x_train,
        learning_rate=learning_rate,
        diag_reg=diag_reg,
        diag_reg_absolute_scale=diag_reg_absolute_scale,
    )
    reg = lambda k: _regularized(k, diag_reg, diag_reg_absolute_scale)  # noqa: E731

    def on_train(t, g: str, compute_cov: bool):
        # NT: x_test=None predicts on the training inputs as if they were test inputs
        # whose test-train kernel is the regularised training kernel.
        kept = lay.train_shape
        if t is None:
            mean = lay.y
            if not compute_cov:
                return mean
            return Gaussian(mean, jnp.zeros(_zipped(kept), lay.y.dtype))
        kg = _kernel_of(g)
        kd = {kg: reg(train_kernels((kg,))[kg])}
        tt = None
        if compute_cov:
            if g == "ntk":
                kd["nngp"] = train_kernels(("nngp",))["nngp"]
                tt = {"nngp": kd["nngp"]}
            else:
                tt = {kg: kd[kg]}
        r = inner(t, None, get=g, compute_cov=compute_cov, k_test_train=kd, k_test_test=tt)
        if compute_cov:
            return Gaussian(lay.unflat(r.mean, kept), lay.covariance(r.covariance, kept))
        return lay.unflat(r, kept)

    def predict_fn(t=None, x_test=None, get=None, compute_cov: bool = False, **kwargs):
        if kwargs:
            raise TypeError(
                "predict_fn: keyword arguments for the test-test kernel are not supported; "
                f"pass them to gradient_descent_mse_ensemble instead (got {sorted(kwargs)})"
            )
        names = _names(get)
        get = get if get is not None else names
        if x_test is None:
            return _select(get, {g: on_train(t, g, compute_cov) for g in names})
        kinds = {_kernel_of(g) for g in names}
        deps = tuple(
            g for g in _GETS if g in kinds or (g == "nngp" and compute_cov and "ntk" in names)
        )
        ktd_nt = kernel_fn(x_test, x_train, deps, **kernel_fn_train_train_kwargs)
        kept = _test_shape(ktd_nt if len(deps) > 1 else {deps[0]: _pick(ktd_nt, deps[0])})
        ktd = {
            g: lay.kernel(_pick(ktd_nt, g), f"kernel_fn(x_test, x_train).{g}", rows_free=True)
            for g in deps
        }
        ktt = None
        if compute_cov:
            tt_deps = tuple(
                g
                for g in _GETS
                if (g == "nngp" and {"nngp", "ntk"} & set(names))
                or (g == "ntk" and "ntkgp" in names)
            )
            get_tt = tt_deps[0] if len(tt_deps) == 1 else tt_deps
            ktt_nt = kernel_fn(x_test, None, get_tt, **kernel_fn_train_train_kwargs)
            ktt = {g: as_matrix(_pick(ktt_nt, g), f"kernel_fn(x_test, None).{g}") for g in tt_deps}
        res = inner(t, None, get=names, compute_cov=compute_cov, k_test_train=ktd, k_test_test=ktt)
        out = {}
        for g, r in zip(names, res):
            if compute_cov:
                out[g] = Gaussian(lay.unflat(r.mean, kept), lay.covariance(r.covariance, kept))
            else:
                out[g] = lay.unflat(r, kept)
        return _select(get, out)

    return predict_fn


def _pick(k, g: str):
    """Kernel ``g`` of a ``kernel_fn`` result (an array when one kernel was asked for)."""
    v = field(k, g)
    if v is None:
        raise ValueError(f"gradient_descent_mse_ensemble: kernel_fn gave no {g!r} kernel")
    return v


def _zipped(kept: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(d for s in kept for d in (s, s))


@jax.tree_util.register_dataclass
@dataclasses.dataclass
class ODEState:
    """The state of NT's gradient-descent flow (NT's ``predict.ODEState``).

    Pass one as ``fx_train_or_state_0`` of ``gradient_descent``'s ``predict_fn`` to get
    the state at ``t`` back (e.g. to resume training from it); ``ODEState(fx_train_0,
    fx_test_0)`` starts from outputs at rest.

    Attributes:
        fx_train: training-set outputs (``None``: zeros).
        fx_test: test-set outputs (``None``: not computed).
        qx_train: with momentum, the velocity of ``fx_train`` in NT's units,
            ``d fx / d(t sqrt(learning_rate))`` (``None``: zero; must be ``None``
            without momentum).
        qx_test: the same for ``fx_test``.
    """

    fx_train: Any = None
    fx_test: Any = None
    qx_train: Any = None
    qx_test: Any = None


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

    Args:
        loss: ``loss(fx_train, y_train) -> scalar`` on NT-shaped outputs.
        k_train_train: NTK on the training inputs in NT's layout ``zip(S, S)``.
        y_train: targets, ``(n, ...)``.
        learning_rate: step size; ``t`` counts steps.
        momentum: heavy-ball momentum in ``[0, 1)`` or ``None``.
        trace_axes: axes of ``y_train`` the kernel is shared over.

    Returns:
        ``predict_fn(t, fx_train_or_state_0=0., fx_test_0=None, k_test_train=None)``
        giving ``fx_train_t``, ``fx_test_t`` (when ``fx_train_or_state_0`` is ``None``)
        or both; ``t`` a scalar or 1-D non-decreasing array of times, or ``None`` for
        the end of training (``t -> inf``, found by integrating until the outputs
        settle; where NT's solver may silently not converge, a flow without a limit is
        an error). An :class:`ODEState` as ``fx_train_or_state_0`` gives the
        :class:`ODEState` at ``t`` (``fx_test`` only when the state has one; ``qx_*``
        only with momentum), as in NT.

    Raises:
        ValueError: ``t=None`` on a loss without a finite minimiser along the flow;
            shapes that do not fit; both initial outputs ``None``; an ``ODEState``
            together with ``fx_test_0``, or with ``qx_*`` but no momentum.

    Example:
        >>> import jax.numpy as jnp
        >>> mse = lambda f, y: 0.5 * jnp.mean((f - y) ** 2)
        >>> predict_fn = gradient_descent(mse, jnp.eye(2), jnp.ones((2, 1)))
        >>> round(float(predict_fn(2.0, 0.0)[0, 0]), 4)
        0.6321
    """
    lay = Layout(y_train, trace_axes, "gradient_descent")
    train_shape = lay.train_shape
    inner = _ode.gradient_descent(
        lambda f2, _y2: loss(lay.unflat(f2, train_shape), lay.y),
        lay.kernel(k_train_train, "k_train_train"),
        lay.y2,
        learning_rate=learning_rate,
        momentum=momentum,
    )

    # NT integrates momentum in time t * sqrt(learning_rate): its qx are velocities per
    # that unit; widelab's are per step.
    per_step = None if momentum is None else math.sqrt(learning_rate)

    def predict_fn(t=None, fx_train_or_state_0=0.0, fx_test_0=None, k_test_train=None):
        state = fx_train_or_state_0 if isinstance(fx_train_or_state_0, ODEState) else None
        q_tr = q_te = None
        if state is not None:
            if fx_test_0 is not None:
                raise ValueError(
                    "predict_fn: fx_test_0 must be None when an ODEState is given (the test "
                    "outputs are its fx_test)"
                )
            if momentum is None and (state.qx_train is not None or state.qx_test is not None):
                raise ValueError(
                    "predict_fn: the ODEState has momentum variables qx_train/qx_test but "
                    "gradient_descent was built with momentum=None"
                )
            fx_train_0, fx_test_0 = state.fx_train, state.fx_test
            q_tr, q_te = state.qx_train, state.qx_test
        else:
            fx_train_0 = fx_train_or_state_0
        _both_none(fx_train_0, fx_test_0)
        _test_needs_kernel(fx_test_0, k_test_train)
        f0 = 0.0 if fx_train_0 is None else fx_train_0
        f0 = lay.flat(jnp.broadcast_to(f0, lay.y.shape))
        kw = {"return_state": True}
        if per_step is not None:
            q = 0.0 if q_tr is None else q_tr
            kw["velocity_train_0"] = per_step * lay.flat(jnp.broadcast_to(q, lay.y.shape))
        kept = kt = None
        if fx_test_0 is None:
            out = inner(t, f0, **kw)
        else:
            kept = tuple(jnp.shape(k_test_train)[0::2])
            kt = lay.kernel(k_test_train, "k_test_train", rows_free=True)
            ft0 = lay.flat(jnp.broadcast_to(fx_test_0, lay.full_shape(kept)))
            if per_step is not None:
                q = 0.0 if q_te is None else q_te
                q = lay.flat(jnp.broadcast_to(q, lay.full_shape(kept)))
                kw["velocity_test_0"] = per_step * q
            out = inner(t, f0, ft0, kt, **kw)
        tr = lay.unflat(out.fx_train, train_shape)
        te = None if kept is None else lay.unflat(out.fx_test, kept)
        if state is not None:
            qs = [
                None if v is None else lay.unflat(v / per_step, shape)
                for v, shape in ((out.velocity_train, train_shape), (out.velocity_test, kept))
            ]
            return ODEState(tr, te, *qs)
        if te is None:
            return tr
        if fx_train_0 is None:
            return te
        return tr, te

    return predict_fn


def max_learning_rate(
    ntk_train_train,
    y_train_size: int | None = None,
    momentum: float = 0.0,
    eps: float = 1e-12,
) -> float:
    """Largest stable learning rate of gradient descent on MSE (NT's
    ``predict.max_learning_rate``; Lee et al. 2019, eq. 7; Goh 2017 for momentum).

    Args:
        ntk_train_train: NTK on the training set in NT's layout (``(n, n)``, or
            ``(n, n, k, k)`` for ``trace_axes=()``).
        y_train_size: the number of terms the MSE averages over; default: the rows of
            the kernel made 2-D.
        momentum: heavy-ball momentum in ``[0, 1)``.
        eps: added to the top eigenvalue.

    Returns:
        ``2 (1 + momentum) y_train_size / (lambda_max + eps)``.

    Raises:
        ValueError: see :func:`widelab_kernels.max_learning_rate`.

    Example:
        >>> import numpy as np
        >>> round(max_learning_rate(np.diag([1.0, 4.0])), 6)
        1.0
    """
    k = as_matrix(ntk_train_train, "max_learning_rate: ntk_train_train")
    return _inf.max_learning_rate(k, y_train_size, momentum, eps)


__all__ = [
    "Gaussian",
    "ODEState",
    "gp_inference",
    "gradient_descent",
    "gradient_descent_mse",
    "gradient_descent_mse_ensemble",
    "max_learning_rate",
]
