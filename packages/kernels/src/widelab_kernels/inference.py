"""GP inference and gradient-descent predictions from NNGP and NTK matrices.

Owned by the kernels-predict engineer; import from here rather than rewriting.

Conventions (those of Neural Tangents' ``predict`` module, Novak et al. 2020):

* Kernels are ``(n, n)`` matrices shared by the ``k`` output columns of the targets
  ``Y`` (``(n, k)``), i.e. traced over the output axis (``trace_axes=(-1,)``).
  :func:`gradient_descent_mse` and :func:`gradient_descent` also take the untraced
  layout ``trace_axes=()``: kernels ``(n, k, n, k)`` with targets ``(n, k)``.
* The MSE loss is ``L = ||f(X) - Y||^2 / (2 Y.size)`` and time ``t`` counts training
  steps of size ``learning_rate``: gradient flow ``df/dt = -lr * Theta dL/df``, so
  ``f_t(X) = Y + exp(-lr t Theta / Y.size) (f_0(X) - Y)`` (Lee et al. 2019, "Wide neural
  networks of any depth evolve as linear models under gradient descent", eq. 9-11).
* ``diag_reg`` adds ``diag_reg * trace(K) / n`` to the diagonal of the training kernel
  (``diag_reg_absolute_scale=True``: ``diag_reg`` itself).
* Kernel arguments may be a :class:`~widelab_kernels.Kernel`, the named tuple returned by
  ``kernel_fn(..., get=("nngp", "ntk"))``, a mapping ``{"nngp": ..., "ntk": ...}`` or a
  plain matrix (then it is taken to be the kernel that ``get`` names).
* Factorisations (Cholesky for ``t = inf``, eigendecompositions for finite ``t``) are
  computed on first use and cached inside the returned function, under
  ``jax.ensure_compile_time_eval`` when called inside ``jit`` so the returned functions
  can be jitted.
* Value checks (finite entries, symmetry, positive semi-definiteness) run when the
  inputs are concrete; inside ``jit`` only shapes are checked.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import jax.scipy.linalg as jsl
import numpy as np
from widelab_core.validate import require_float

from ._inference_utils import (
    _GETS,
    _as_float,
    _cholesky,
    _compile_time,
    _concrete,
    _concrete_eval,
    _eigh,
    _field,
    _field_or_none,
    _in_eigenbasis,
    _is_plain,
    _kernel_of,
    _Layout,
    _lead,
    _matrix_fn,
    _names,
    _outputs,
    _phi,
    _regularized,
    _select,
    _square,
    _targets,
    _times,
)
from .inference_ode import (
    GradientDescentState,
    cross_entropy_loss_grad,
    gradient_descent,
    mse_loss_grad,
)


class Gaussian(NamedTuple):
    """Mean and covariance of a Gaussian prediction.

    Attributes:
        mean: ``(..., m, k)`` predicted outputs (leading axes: times).
        covariance: ``(..., m, m)`` covariance between test points, shared by the ``k``
            outputs.
    """

    mean: jax.Array
    covariance: jax.Array


def _check_hyper(fn: str, learning_rate=None, diag_reg=None) -> None:
    """Reject a non-positive or non-finite ``learning_rate`` and a negative or
    non-finite ``diag_reg`` (concrete values only: traced ones pass through)."""
    if learning_rate is not None and not isinstance(learning_rate, jax.core.Tracer):
        require_float(learning_rate, f"{fn}: learning_rate", min=0, min_open=True)
    if diag_reg is not None and not isinstance(diag_reg, jax.core.Tracer):
        require_float(diag_reg, f"{fn}: diag_reg", min=0)


# GP inference -----------------------------------------------------------------------


@jax.jit
@jax.jit
def _cho_solve(chol, rhs):
    """``(L L^T)^{-1} rhs`` from the lower Cholesky factor, as one compiled function (a
    hand-blocked substitution compiled several times slower and ran no faster)."""
    return jsl.cho_solve((chol, True), rhs)


def gp_inference(
    k_train_train,
    y_train,
    *,
    diag_reg: float = 0.0,
    diag_reg_absolute_scale: bool = False,
) -> Callable[..., Any]:
    r"""Exact GP posterior of the NNGP, and the NTK-GP of the infinitely trained ensemble.

    ``get="nngp"``: Bayesian posterior of the NNGP prior ``K`` (Rasmussen & Williams 2006,
    eq. 2.25-2.26): mean ``K_xX K^{-1} Y``, covariance ``K_xx - K_xX K^{-1} K_Xx``.
    ``get="ntk"``: the ``t = inf`` limit of an infinite ensemble of wide networks trained
    by gradient descent on MSE (Lee et al. 2019, eq. 16): mean ``Theta_xX Theta^{-1} Y``,
    covariance ``K_xx - A K_Xx - K_xX A^T + A K_XX A^T`` with ``A = Theta_xX Theta^{-1}``.
    ``get="ntkgp"``: the posterior of a GP whose prior covariance is the NTK (He et al.
    2020, "Bayesian deep ensembles via the neural tangent kernel", eq. 6; the limit of
    their ensembles with an added function-space randomisation): the NTK mean and
    covariance ``Theta_xx - Theta_xX Theta^{-1} Theta_Xx``.
    ``diag_reg`` is added to ``K_XX`` or ``Theta_XX`` where inverted (not in ``A K_XX A^T``).

    Args:
        k_train_train: training kernel(s): a Kernel, a ``(nngp, ntk)`` named tuple, a
            mapping, or a plain ``(n, n)`` matrix (used as whichever ``get`` names).
        y_train: ``(n, k)`` targets.
        diag_reg: diagonal regulariser, relative to ``trace(K) / n`` unless
            ``diag_reg_absolute_scale``.
        diag_reg_absolute_scale: ``diag_reg`` in absolute units.

    Returns:
        ``predict(get, k_test_train, k_test_test=None)``: for each name in ``get``
        (``"nngp"``, ``"ntk"``, ``"ntkgp"``), the mean ``(m, k)``, or :class:`Gaussian`
        ``(mean, covariance (m, m))`` when the test-test kernel ``k_test_test`` is given
        (its NNGP for ``"nngp"`` and ``"ntk"``, its NTK for ``"ntkgp"``; a plain matrix is
        the one needed when ``get`` names one mode). ``get`` a string gives one result, a
        tuple a named tuple of results. Cholesky factors are cached.

    Raises:
        ValueError: shapes do not fit; a kernel is non-finite, asymmetric or (with the
            regulariser) not positive definite; a needed kernel is missing.

    Example:
        >>> import jax.numpy as jnp
        >>> k = jnp.array([[2.0, 1.0], [1.0, 2.0]])
        >>> predict = gp_inference(k, jnp.array([[1.0], [0.0]]))
        >>> [round(float(v), 4) for v in predict("nngp", k)[:, 0]]
        [1.0, 0.0]
    """
    _check_hyper("gp_inference", diag_reg=diag_reg)
    y = _targets(y_train, "gp_inference")
    n = y.shape[0]
    train = {}

    def train_matrix(g: str, plain_ok: bool = True) -> jax.Array:
        with _concrete_eval():
            return _train_matrix(g, plain_ok)

    def _train_matrix(g: str, plain_ok: bool) -> jax.Array:
        if g not in train:
            k = _field(k_train_train, g, "gp_inference: k_train_train", plain_ok=plain_ok)
            train[g] = _square(k, n, f"gp_inference: k_train_train.{g}")
        return train[g]

    @functools.cache
    def solver(g: str) -> jax.Array:
        with _concrete_eval():
            return _cholesky(
                train_matrix(g),
                f"gp_inference: k_train_train.{g} + diag_reg",
                diag_reg,
                diag_reg_absolute_scale,
            )

    for g in _GETS:  # validate what was given now, not at the first prediction
        if _is_plain(k_train_train) or _field_or_none(k_train_train, g) is not None:
            train_matrix(g)
            if _is_plain(k_train_train):
                break

    def solve(g: str, rhs: jax.Array) -> jax.Array:
        return _cho_solve(solver(g), rhs)

    def predict(get, k_test_train, k_test_test=None):
        names = _names(get)
        out = {}
        for g in names:
            kg = _kernel_of(g)
            # NNGP and NTK-GP covariances need only their own kernel, so a plain
            # matrix is unambiguous there; the NTK covariance needs both kernels.
            plain = len(names) == 1 and (g != "ntk" or k_test_test is None)
            if not plain:
                _field(k_train_train, kg, "gp_inference: k_train_train", plain_ok=False)
            kt = _as_float(
                _field(k_test_train, kg, "gp_inference: k_test_train", plain_ok=plain),
                f"gp_inference: k_test_train.{kg}",
            )
            if kt.ndim != 2 or kt.shape[1] != n:
                raise ValueError(
                    f"gp_inference: k_test_train.{kg} must be (n_test, {n}), got {kt.shape}"
                )
            mean = kt @ solve(kg, y.astype(kt.dtype))
            if k_test_test is None:
                out[g] = mean
                continue
            m = kt.shape[0]
            prior = "nngp" if g == "ntk" else kg  # the prior the test-test kernel gives
            ktt = _square(
                _field(k_test_test, prior, "gp_inference: k_test_test", plain_ok=True),
                m,
                f"gp_inference: k_test_test.{prior}",
            )
            if g != "ntk":
                cov = ktt - kt @ solve(kg, kt.T)
            else:
                kx = _as_float(
                    _field(k_test_train, "nngp", "gp_inference: k_test_train", plain_ok=False),
                    "gp_inference: k_test_train.nngp",
                )
                if kx.shape != kt.shape:
                    raise ValueError(
                        f"gp_inference: k_test_train.nngp has shape {kx.shape}, "
                        f"k_test_train.ntk {kt.shape}"
                    )
                a = solve(g, kt.T).T
                cov = ktt - a @ kx.T - kx @ a.T + a @ train_matrix("nngp", False) @ a.T
            out[g] = Gaussian(mean, 0.5 * (cov + cov.T))
        return _select(get if get is not None else names, out)

    return predict


# Gradient descent on MSE: one network -------------------------------------------------


def gradient_descent_mse(
    k_train_train,
    y_train,
    learning_rate: float = 1.0,
    diag_reg: float = 0.0,
    diag_reg_absolute_scale: bool = False,
    trace_axes: Sequence[int] = (-1,),
) -> Callable[..., Any]:
    r"""Outputs of one wide network trained by gradient flow on MSE, at any time ``t``.

    The linearised network (Lee et al. 2019, eq. 9-11) with NTK ``Theta``, loss
    ``||f - Y||^2 / (2 Y.size)`` and ``tau = lr t / Y.size``:
    ``f_t(X) = Y + e^{-tau Theta}(f_0(X) - Y)`` and
    ``f_t(x) = f_0(x) + Theta_xX Theta^{-1}(I - e^{-tau Theta})(Y - f_0(X))``.

    Args:
        k_train_train: NTK on the training inputs, ``(n, n)`` (or ``(n, k, n, k)`` with
            ``trace_axes=()``); a plain matrix.
        y_train: ``(n, k)`` targets.
        learning_rate: step size; ``t`` counts steps of this size.
        diag_reg: diagonal regulariser (see the module docstring).
        diag_reg_absolute_scale: ``diag_reg`` in absolute units.
        trace_axes: ``(-1,)`` (kernel shared by outputs) or ``()``.

    Returns:
        ``predict(t=None, fx_train_0=0., fx_test_0=None, k_test_train=None)``. ``t`` is a
        scalar or an array of times (they become leading axes of the result); ``None``
        or ``inf`` is the converged network (Cholesky solve; finite ``t`` uses a cached
        eigendecomposition). ``fx_train_0=None`` skips the training set. Test outputs are
        computed when ``k_test_train`` (``(m, n)``) is given (``fx_test_0`` defaults to 0).
        Returns ``fx_train_t``, ``fx_test_t`` or ``(fx_train_t, fx_test_t)``.

    Raises:
        ValueError: bad shapes, negative ``t``, non-finite or non-PSD kernels.

    Example:
        >>> import jax.numpy as jnp
        >>> k = jnp.array([[2.0, 1.0], [1.0, 2.0]])
        >>> predict = gradient_descent_mse(k, jnp.array([[1.0], [0.0]]))
        >>> [round(float(v), 4) for v in predict(None, 0.0)[:, 0]]
        [1.0, 0.0]
    """
    _check_hyper("gradient_descent_mse", learning_rate, diag_reg)
    y = _targets(y_train, "gradient_descent_mse")
    lay = _Layout(y, trace_axes, "gradient_descent_mse")
    k = _regularized(
        lay.matrix(k_train_train, None, "k_train_train"), diag_reg, diag_reg_absolute_scale
    )
    yf = lay.flat(y)
    what = "gradient_descent_mse: k_train_train + diag_reg"
    chol = functools.cache(_compile_time(lambda: _cholesky(k, what)))
    eig = functools.cache(_compile_time(lambda: _eigh(k, what)))

    def predict(t=None, fx_train_0=0.0, fx_test_0=None, k_test_train=None):
        if fx_test_0 is not None and k_test_train is None:
            raise ValueError("gradient_descent_mse: fx_test_0 given without k_test_train")
        f0 = 0.0 if fx_train_0 is None else fx_train_0
        f0 = lay.flat(_outputs(f0, y.shape, y.dtype, "gradient_descent_mse: fx_train_0"))
        kt = None
        if k_test_train is not None:
            kt = lay.matrix(k_test_train, 0, "k_test_train")
            m = kt.shape[0] // (1 if lay.traced else lay.k)
            ft0 = 0.0 if fx_test_0 is None else fx_test_0
            ft0 = lay.flat(_outputs(ft0, (m, lay.k), y.dtype, "gradient_descent_mse: fx_test_0"))
        resid = yf - f0
        if t is None or (_concrete(t) is not None and np.all(np.isinf(_concrete(t)))):
            lead = () if t is None else jnp.shape(t)
            f_tr = jnp.broadcast_to(yf, lead + yf.shape)
            f_te = None
            if kt is not None:
                d = kt @ _cho_solve(chol(), resid)
                f_te = jnp.broadcast_to(ft0 + d, lead + ft0.shape)
        else:
            evals, evecs = eig()
            tau = _times(t, learning_rate, y.size, y.dtype)
            lam = jnp.reshape(evals, (1,) * tau.ndim + evals.shape)
            tt = jnp.reshape(tau, tau.shape + (1,))
            decay = jnp.where(lam > 0, jnp.exp(-jnp.where(lam > 0, lam, 0.0) * tt), 1.0)
            f_tr = _lead(yf, decay.ndim + 1) - _in_eigenbasis(evecs, decay, resid)
            f_te = None
            if kt is not None:
                d = _in_eigenbasis(evecs, _phi(evals, tau), resid)
                f_te = _lead(ft0, d.ndim) + jnp.einsum("mn,...nc->...mc", kt, d)
        f_tr = lay.unflat(f_tr)
        if kt is None:
            return f_tr
        f_te = lay.unflat(f_te)
        return f_te if fx_train_0 is None else (f_tr, f_te)

    return predict


def max_learning_rate(
    ntk_train_train,
    y_train_size: int | None = None,
    momentum: float = 0.0,
    eps: float = 1e-12,
) -> float:
    r"""Largest stable learning rate of full-batch gradient descent on MSE.

    With loss ``||f - Y||^2 / (2 S)`` (``S = y_train_size``) a step maps the residual by
    ``I - lr Theta / S`` (linearised network, Lee et al. 2019, eq. 7), a contraction iff
    ``lr < 2 S / lambda_max(Theta)``; with heavy-ball momentum ``m`` the bound is
    ``2 (1 + m) S / lambda_max`` (Goh 2017, "Why momentum really works"). Same convention
    as Neural Tangents' ``max_learning_rate``.

    Args:
        ntk_train_train: NTK on the training set, ``(n, n)`` or ``(n, k, n, k)``.
        y_train_size: ``S``, the number of terms the loss averages over; defaults to the
            rows of the flattened kernel (``n``, or ``n k`` for ``(n, k, n, k)``). Pass
            ``y_train.size`` for an ``(n, n)`` kernel shared by ``k`` outputs with the loss
            averaged over all ``n k`` entries.
        momentum: heavy-ball momentum in ``[0, 1)``.
        eps: added to ``lambda_max`` to avoid dividing by zero.

    Returns:
        The critical learning rate (a Python float).

    Raises:
        ValueError: the kernel is not square, not finite, not positive semi-definite or
            zero; ``momentum`` is outside ``[0, 1)``; ``y_train_size`` is below 1.

    Example:
        >>> import numpy as np
        >>> round(max_learning_rate(np.diag([1.0, 4.0])), 6)
        1.0
    """
    if not 0.0 <= momentum < 1.0:
        raise ValueError(f"max_learning_rate: momentum must be in [0, 1), got {momentum}")
    k = np.asarray(ntk_train_train, dtype=np.float64)
    if k.ndim == 4 and k.shape[:2] == k.shape[2:]:
        k = k.reshape(k.shape[0] * k.shape[1], -1)
    if k.ndim != 2 or k.shape[0] != k.shape[1]:
        raise ValueError(
            f"max_learning_rate: ntk_train_train must be (n, n) or (n, k, n, k), got {k.shape}"
        )
    if k.shape[0] == 0:
        raise ValueError("max_learning_rate: ntk_train_train is empty (0 training points)")
    if not np.all(np.isfinite(k)):
        raise ValueError("max_learning_rate: ntk_train_train has non-finite entries")
    size = k.shape[0] if y_train_size is None else int(y_train_size)
    if size < 1 or (y_train_size is not None and size != y_train_size):
        raise ValueError(
            f"max_learning_rate: y_train_size must be a positive integer, got {y_train_size!r}"
        )
    evals = np.linalg.eigvalsh(0.5 * (k + k.T))
    top = float(np.max(np.abs(evals)))
    dtype = np.asarray(ntk_train_train).dtype
    eps_dtype = np.finfo(dtype if dtype.kind == "f" else np.float64).eps
    tol = 10 * max(k.shape[0], 10) * eps_dtype * top
    if top == 0.0 or evals[-1] <= tol:
        raise ValueError(
            "max_learning_rate: ntk_train_train has no positive eigenvalue (largest "
            f"{evals[-1]:.3g}): every learning rate is stable, so there is no critical one; "
            "an NTK is positive semi-definite with a positive trace"
        )
    if evals[0] < -tol:
        raise ValueError(
            "max_learning_rate: ntk_train_train is not positive semi-definite: smallest "
            f"eigenvalue {evals[0]:.3g} (largest {evals[-1]:.3g})"
        )
    lam = float(evals[-1])
    return 2.0 * (1.0 + momentum) * size / (lam + eps)


# Gradient descent on MSE: infinite ensemble -------------------------------------------


def gradient_descent_mse_ensemble(
    kernel_fn_or_matrices,
    y_train,
    *,
    x_train=None,
    learning_rate: float = 1.0,
    diag_reg: float = 0.0,
    diag_reg_absolute_scale: bool = False,
    **kernel_fn_kwargs,
) -> Callable[..., Any]:
    r"""Mean and covariance of an infinite ensemble of wide networks trained on MSE.

    With ``tau = lr t / Y.size`` and ``P_t = Theta^{-1}(I - e^{-tau Theta})`` (Lee et al.
    2019, eq. 15-16), ``get="ntk"`` (all layers trained):
    mean ``Theta_xX P_t Y``, covariance ``K_xx - A K_Xx - K_xX A^T + A K_XX A^T``,
    ``A = Theta_xX P_t``. ``get="nngp"`` (only the readout trained, the NNGP as the
    tangent kernel): mean ``K_xX K^{-1}(I - e^{-tau K}) Y``, covariance
    ``K_xx - K_xX K^{-1}(I - e^{-2 tau K}) K_Xx``. ``get="ntkgp"`` (He et al. 2020: the
    linearised networks start from the NTK prior, ``f_0 ~ GP(0, Theta)``): the NTK mean
    and covariance ``Theta_xx - Theta_xX Theta^{-1}(I - e^{-2 tau Theta}) Theta_Xx``.
    ``t = None`` is :func:`gp_inference`.

    Args:
        kernel_fn_or_matrices: either ``kernel_fn(x1, x2, get=..., **kwargs)`` (as
            returned by ``widelab_kernels.kernel_fn(net)``; needs ``x_train``), or the
            training kernels (Kernel, named tuple or mapping with ``nngp``/``ntk``).
        y_train: ``(n, k)`` targets.
        x_train: training inputs (with a ``kernel_fn``).
        learning_rate: step size; ``t`` counts steps.
        diag_reg: regulariser added to the inverted training kernel.
        diag_reg_absolute_scale: ``diag_reg`` in absolute units.
        **kernel_fn_kwargs: passed to every ``kernel_fn`` call (e.g. ``mask_constant``).

    Returns:
        ``predict(t=None, x_test=None, *, get=None, compute_cov=False, k_test_train=None,
        k_test_test=None)``: mean ``(*t.shape, m, k)`` or :class:`Gaussian` with covariance
        ``(*t.shape, m, m)`` per name in ``get`` (a string: one result; ``None``: both,
        as a named tuple). Test kernels come from ``kernel_fn(x_test, x_train)`` or are
        passed as ``k_test_train``/``k_test_test``; with neither, predictions are for the
        training inputs (regulariser included).

    Raises:
        ValueError: missing inputs, bad shapes, non-PSD kernels, ``learning_rate <= 0``
            or ``diag_reg < 0`` (NaN and inf included).

    Example:
        >>> import jax.numpy as jnp
        >>> k = {"nngp": jnp.eye(2), "ntk": 2.0 * jnp.eye(2)}
        >>> predict = gradient_descent_mse_ensemble(k, jnp.ones((2, 1)))
        >>> [round(float(v), 4) for v in predict(None, get="ntk")[:, 0]]
        [1.0, 1.0]
    """
    _check_hyper("gradient_descent_mse_ensemble", learning_rate, diag_reg)
    y = _targets(y_train, "gradient_descent_mse_ensemble")
    n = y.shape[0]
    is_fn = callable(kernel_fn_or_matrices)
    if is_fn and x_train is None:
        raise ValueError("gradient_descent_mse_ensemble: a kernel_fn needs x_train")
    train: dict[str, jax.Array] = {}

    @_compile_time
    def train_kernels(names: Sequence[str]) -> dict:
        missing = tuple(g for g in names if g not in train)
        if missing:
            if is_fn:
                ks = kernel_fn_or_matrices(x_train, None, get=missing, **kernel_fn_kwargs)
            else:
                ks = kernel_fn_or_matrices
            for g in missing:
                k = _field(ks, g, "gradient_descent_mse_ensemble: train kernels", plain_ok=False)
                train[g] = _square(k, n, f"gradient_descent_mse_ensemble: k_train_train.{g}")
        return {g: train[g] for g in names}

    what = "gradient_descent_mse_ensemble: k_train_train.{} + diag_reg"

    @functools.cache
    @_compile_time
    def eig(g: str):
        k = _regularized(train_kernels((g,))[g], diag_reg, diag_reg_absolute_scale)
        return _eigh(k, what.format(g))

    @functools.cache
    def inference(deps: tuple[str, ...]):
        return gp_inference(
            train_kernels(deps),
            y,
            diag_reg=diag_reg,
            diag_reg_absolute_scale=diag_reg_absolute_scale,
        )

    def predict(
        t=None,
        x_test=None,
        *,
        get=None,
        compute_cov: bool = False,
        k_test_train=None,
        k_test_test=None,
    ):
        names = _names(get)
        kinds = {_kernel_of(g) for g in names}
        deps = tuple(
            g for g in _GETS if g in kinds or (g == "nngp" and compute_cov and "ntk" in names)
        )
        # The test-test prior: the NNGP for nngp and ntk, the NTK for ntkgp.
        tt_deps = tuple(
            g
            for g in _GETS
            if (g == "nngp" and ({"nngp", "ntk"} & set(names))) or (g == "ntk" and "ntkgp" in names)
        )
        kdd = train_kernels(deps)
        if x_test is not None:
            if not is_fn:
                raise ValueError(
                    "gradient_descent_mse_ensemble: x_test needs a kernel_fn; with matrices "
                    "pass k_test_train (and k_test_test)"
                )
            k_test_train = kernel_fn_or_matrices(x_test, x_train, get=deps, **kernel_fn_kwargs)
            if compute_cov:
                k_test_test = kernel_fn_or_matrices(x_test, None, get=tt_deps, **kernel_fn_kwargs)
        elif k_test_train is None:
            k_test_train = kdd
            if compute_cov and k_test_test is None:
                k_test_test = train_kernels(tt_deps)
        if compute_cov and k_test_test is None:
            raise ValueError("gradient_descent_mse_ensemble: compute_cov needs k_test_test")
        if not compute_cov:
            k_test_test = None
        ktd = {
            g: _as_float(
                _field(k_test_train, g, "k_test_train", plain_ok=len(deps) == 1),
                f"gradient_descent_mse_ensemble: k_test_train.{g}",
            )
            for g in deps
        }
        for g, v in ktd.items():
            if v.ndim != 2 or v.shape[1] != n:
                raise ValueError(
                    f"gradient_descent_mse_ensemble: k_test_train.{g} must be (m, {n}), "
                    f"got {v.shape}"
                )
        if t is None:
            res = inference(deps)(names, ktd, k_test_test)
            return _select(get, dict(zip(names, res)))
        out = {}
        for g in names:
            kg = _kernel_of(g)
            evals, evecs = eig(kg)
            tau = _times(t, learning_rate, y.size, y.dtype)
            a = jnp.einsum("mn,...nj->...mj", ktd[kg], _matrix_fn(evecs, _phi(evals, tau)))
            mean = jnp.einsum("...mn,nc->...mc", a, y)
            if k_test_test is None:
                out[g] = mean
                continue
            m = ktd[kg].shape[0]
            prior = "nngp" if g == "ntk" else kg
            ktt = _square(
                _field(k_test_test, prior, "k_test_test", plain_ok=len(tt_deps) == 1),
                m,
                f"gradient_descent_mse_ensemble: k_test_test.{prior}",
            )
            if g != "ntk":
                p2 = _matrix_fn(evecs, _phi(evals, 2.0 * tau))
                kx = ktd[kg]
                cov = _lead(ktt, p2.ndim) - jnp.einsum("mn,...nj,lj->...ml", kx, p2, kx)
            else:
                kx = ktd["nngp"]
                kxa = jnp.einsum("mn,...ln->...ml", kx, a)
                aka = jnp.einsum("...mn,nj,...lj->...ml", a, kdd["nngp"], a)
                cov = _lead(ktt, a.ndim) - kxa - jnp.swapaxes(kxa, -1, -2) + aka
            out[g] = Gaussian(mean, 0.5 * (cov + jnp.swapaxes(cov, -1, -2)))
        return _select(get, out)

    return predict


__all__ = [
    "Gaussian",
    "GradientDescentState",
    "cross_entropy_loss_grad",
    "gp_inference",
    "gradient_descent",
    "gradient_descent_mse",
    "gradient_descent_mse_ensemble",
    "max_learning_rate",
    "mse_loss_grad",
]
