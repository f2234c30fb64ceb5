"""Repriorisation of the readout (Hron, Novak, Pennington, Sohl-Dickstein 2022).

Hron et al. 2022, "Wide Bayesian neural networks have a simple weight posterior:
theory and accelerated sampling" (ICML), Sec. 4: given the hidden parameters ``theta``,
the readout ``w`` (weights and bias stacked, one column per output) of a Gaussian-
likelihood network has an exact Gaussian conditional posterior. With the scaled design

    Phi = [W_std * h(X) / sqrt(width), b_std * 1]            (N x p, p = width + 1)
    G = Phi^T Phi + sigma^2 I = U^T U                         (Cholesky)

the readout is re-expressed through new variables ``phi ~ N(0, I)``:

    w = G^{-1} Phi^T y + sigma U^{-1} phi                     (primal form)

which is the conditional posterior mean plus a square root of its covariance
``sigma^2 G^{-1}`` applied to ``phi``. The density the sampler sees on ``(theta, phi)``
is ``p(theta) p(w(theta, phi)) p(y | theta, w(theta, phi)) |det dw/dphi|``, with
``log|det dw/dphi| = k (p log sigma - log det U)`` for ``k`` outputs. Because the
conditional posterior is exact, this equals ``p(theta) N(phi; 0, I) N(y; 0, Phi Phi^T +
sigma^2 I)`` (the marginal likelihood of ``y`` given ``theta``): ``phi`` is a-posteriori
exactly standard normal and, for wide networks, ``theta`` is close to its prior, which
is why simple samplers mix fast on ``(theta, phi)``.

When ``p > N`` the dual form works with ``N x N`` matrices only. With ``B = Phi / sigma``
and the Cholesky factor ``L L^T = I + B B^T``, the mean is ``B^T (I + B B^T)^{-1} y /
sigma`` and the square root of ``sigma^2 G^{-1} = (I + B^T B)^{-1}`` is

    A = I - B^T L^{-T} (L + I)^{-1} B,    A^{-1} = I + B^T (L^T + I)^{-1} B,

(check: ``A A^T = I - B^T (C + C^T - C B B^T C^T) B`` with ``C = L^{-T} (L + I)^{-1}``,
and ``C + C^T - C B B^T C^T = (I + B B^T)^{-1}``); ``log det A = -sum log diag L``,
equal to the primal value by Sylvester's identity. Only Cholesky factorisations,
triangular inverses and matrix products are used (no eigendecomposition), and the
gradient of the density goes through a hand-written VJP (:func:`spd_logdet_quad`).
"""

from __future__ import annotations

import functools
import math
from typing import Any, Literal

import jax
import jax.numpy as jnp
import jax.scipy.linalg as jsl

from .likelihoods import Gaussian
from .model import BNN, ModelError, Params

Form = Literal["auto", "primal", "dual"]


def _highest(fn):
    """Trace ``fn`` with every matrix product at full float32 precision.

    On GPUs JAX's default float32 matmul uses TF32 (about 3 decimal digits), and on TPUs
    bfloat16 passes. The repriorised density subtracts nearly equal quadratic forms and
    divides by ``sigma^2``; in TF32 its rounding noise was large enough that GHMC's step
    size collapsed (measured on an H100: width 64, step 0.006 against 0.07 on CPU). CPUs
    compute float32 products exactly either way, so this costs nothing there. The
    precision is recorded at trace time, and gradients inherit it.
    """

    @functools.wraps(fn)
    def wrapped(*args, **kwargs):
        with jax.default_matmul_precision("highest"):
            return fn(*args, **kwargs)

    return wrapped


@_highest
def tril_inverse(L: jax.Array, leaf: int = 16) -> jax.Array:
    """Inverse of a lower-triangular matrix by recursive 2 x 2 blocking.

    ``[[A, 0], [B, D]]^{-1} = [[A^{-1}, 0], [-D^{-1} B A^{-1}, D^{-1}]]``: matrix products
    instead of a triangular solve with many right-hand sides, which is slow on CPU in
    this jax version for sizes above ~30 (measured: 100 x 100 takes milliseconds);
    blocks of at most ``leaf`` rows use the triangular solve.
    """
    n = L.shape[0]
    if n <= leaf:
        return jsl.solve_triangular(L, jnp.eye(n, dtype=L.dtype), lower=True)
    h = n // 2
    a_inv = tril_inverse(L[:h, :h], leaf)
    d_inv = tril_inverse(L[h:, h:], leaf)
    top = jnp.concatenate([a_inv, jnp.zeros((h, n - h), L.dtype)], axis=1)
    bottom = jnp.concatenate([-(d_inv @ (L[h:, :h] @ a_inv)), d_inv], axis=1)
    return jnp.concatenate([top, bottom], axis=0)


@jax.custom_vjp
def spd_logdet_quad(M: jax.Array, b: jax.Array) -> tuple[jax.Array, jax.Array]:
    """``(log det M, tr(b^T M^{-1} b))`` for symmetric positive definite ``M``.

    One Cholesky factorisation; the gradient is written by hand (``d logdet / dM =
    M^{-1}``, ``d quad / dM = -(M^{-1} b)(M^{-1} b)^T``, ``d quad / db = 2 M^{-1} b``)
    because differentiating through ``jnp.linalg.cholesky`` is far slower on CPU.
    """
    return _logdet_quad_fwd(M, b)[0]


@_highest
def _logdet_quad_fwd(M, b):
    chol = jnp.linalg.cholesky(M)
    chol_inv = tril_inverse(chol)
    alpha = chol_inv.T @ (chol_inv @ b)
    logdet = 2.0 * jnp.sum(jnp.log(jnp.diag(chol)))
    return (logdet, jnp.sum(b * alpha)), (chol_inv, alpha)


@_highest
def _logdet_quad_bwd(res, g):
    chol_inv, alpha = res
    g_logdet, g_quad = g
    m_inv = chol_inv.T @ chol_inv
    dM = g_logdet * m_inv - g_quad * (alpha @ alpha.T)
    return dM, 2.0 * g_quad * alpha


spd_logdet_quad.defvjp(_logdet_quad_fwd, _logdet_quad_bwd)


class Repriorised:
    """The repriorised posterior of a :class:`~widelab_bayes.model.BNN`.

    Params are ``{"hidden": body_params, "phi": (p, k)}`` with ``p = width + 1`` when
    the readout has a bias (``width`` otherwise). The readout rows are the weights
    followed by the bias.

    Args:
        model: the Bayesian network (its data and noise level are used).
        form: ``"primal"`` (p x p Cholesky), ``"dual"`` (N x N) or ``"auto"``
            (dual when ``p > N``, as Hron et al. 2022 recommend for wide layers).

    Raises:
        ModelError: an unknown ``form``, or a likelihood that is not Gaussian (the
            readout's conditional posterior is Gaussian only under a Gaussian likelihood).

    Example:
        >>> import jax, jax.numpy as jnp
        >>> from widelab_core import layers as L
        >>> net = L.serial(L.Dense(32, b_std=0.1), L.Relu(), L.Dense(1, b_std=0.1))
        >>> x = jnp.linspace(-1, 1, 8)[:, None]
        >>> rep = Repriorised(BNN(net, x, jnp.sin(3 * x), noise_std=0.1))
        >>> rep.form, rep.init(jax.random.key(0))["phi"].shape
        ('dual', (33, 1))
    """

    def __init__(self, model: BNN, form: Form = "auto"):
        if not isinstance(model.likelihood, Gaussian):
            raise ModelError(
                "repriorisation needs a Gaussian likelihood: only then is the readout's "
                "conditional posterior given the hidden weights Gaussian, so that it can be "
                f"re-expressed exactly through phi ~ N(0, I); got {model.likelihood!r}. "
                "Sample a categorical model in its plain parameters (plain-ghmc, plain-nuts)"
            )
        if form not in ("auto", "primal", "dual"):
            raise ModelError(f"form must be 'auto', 'primal' or 'dual', got {form!r}")
        self.model = model
        self.n_readout_rows = model.width + int(model.has_bias)
        if form == "auto":
            form = "dual" if self.n_readout_rows > model.n_data else "primal"
        self.form = form

    # ------------------------------------------------------------------ design
    @_highest
    def design(self, hidden: Any, x=None) -> jax.Array:
        """Scaled design ``Phi = [W_std h / sqrt(width), b_std 1]`` of shape ``(n, p)``."""
        m = self.model
        h = m.features(hidden, x)
        phi = h * (m.readout.W_std / math.sqrt(m.width))
        if m.has_bias:
            ones = jnp.full((h.shape[0], 1), m.readout.b_std, h.dtype)
            phi = jnp.concatenate([phi, ones], axis=1)
        return phi

    def _split_rows(self, w: jax.Array) -> Params:
        out = {"W": w[: self.model.width]}
        if self.model.has_bias:
            out["b"] = w[self.model.width]
        return out

    def _stack_rows(self, readout: Params) -> jax.Array:
        w = readout["W"]
        if self.model.has_bias:
            w = jnp.concatenate([w, readout["b"][None, :]], axis=0)
        return w

    # ------------------------------------------------------ conditional posterior
    @_highest
    def _primal(self, Phi):
        s2 = self.model.noise_std**2
        G = Phi.T @ Phi + s2 * jnp.eye(Phi.shape[1], dtype=Phi.dtype)
        chol = jnp.linalg.cholesky(G)  # G = L L^T, U = L^T
        chol_inv = tril_inverse(chol)
        mean = chol_inv.T @ (chol_inv @ (Phi.T @ self.model.y))
        return mean, chol, chol_inv

    @_highest
    def _dual(self, Phi):
        s = self.model.noise_std
        B = Phi / s
        n = Phi.shape[0]
        eye = jnp.eye(n, dtype=Phi.dtype)
        chol = jnp.linalg.cholesky(eye + B @ B.T)
        chol_inv = tril_inverse(chol)
        mean = B.T @ (chol_inv.T @ (chol_inv @ self.model.y)) / s
        return mean, B, chol, chol_inv

    def conditional_mean(self, hidden: Any) -> jax.Array:
        """Exact conditional posterior mean of the stacked readout, ``G^{-1} Phi^T y``."""
        Phi = self.design(hidden)
        return (self._primal(Phi) if self.form == "primal" else self._dual(Phi))[0]

    @_highest
    def readout_rows(self, hidden: Any, phi: jax.Array) -> jax.Array:
        """The stacked readout ``w(theta, phi)`` of shape ``(p, k)`` (see module doc)."""
        self._check_phi(phi)
        Phi = self.design(hidden)
        if self.form == "primal":
            mean, _, chol_inv = self._primal(Phi)
            return mean + self.model.noise_std * (chol_inv.T @ phi)
        mean, B, chol, chol_inv = self._dual(Phi)
        n = chol.shape[0]
        shifted_inv = tril_inverse(chol + jnp.eye(n, dtype=chol.dtype))
        return mean + phi - B.T @ (chol_inv.T @ (shifted_inv @ (B @ phi)))

    @_highest
    def phi_from_readout_rows(self, hidden: Any, w: jax.Array) -> jax.Array:
        """Inverse map: the ``phi`` whose readout is ``w`` (shape ``(p, k)``)."""
        Phi = self.design(hidden)
        if self.form == "primal":
            mean, chol, _ = self._primal(Phi)
            return chol.T @ (w - mean) / self.model.noise_std
        mean, B, chol, _ = self._dual(Phi)
        n = chol.shape[0]
        shifted_inv_t = tril_inverse(chol + jnp.eye(n, dtype=chol.dtype)).T
        r = w - mean
        return r + B.T @ (shifted_inv_t @ (B @ r))

    @_highest
    def log_det(self, hidden: Any) -> jax.Array:
        """``log |det d w / d phi|`` over all ``k`` output columns.

        Primal: ``k (p log sigma - sum log diag chol(G))``; dual: ``-k sum log diag L``
        with ``L L^T = I + Phi Phi^T / sigma^2``.
        """
        Phi = self.design(hidden)
        k = self.model.out_dim
        if self.form == "primal":
            chol = self._primal(Phi)[1]
            p = Phi.shape[1]
            return k * (p * math.log(self.model.noise_std) - jnp.sum(jnp.log(jnp.diag(chol))))
        chol = self._dual(Phi)[2]
        return -k * jnp.sum(jnp.log(jnp.diag(chol)))

    # ----------------------------------------------------------------- params
    def _check_phi(self, phi):
        want = (self.n_readout_rows, self.model.out_dim)
        if tuple(phi.shape) != want:
            raise ModelError(f"phi must have shape {want}, got {tuple(phi.shape)}")

    def init(self, key: jax.Array) -> Params:
        """Hidden parameters from the prior and ``phi ~ N(0, I)``."""
        k1, k2 = jax.random.split(key)
        return {"hidden": self.model.init(k1)["hidden"], "phi": self.draw_phi(k2)}

    def to_raw(self, params: Params) -> Params:
        """Raw BNN params ``{"hidden", "readout"}`` from repriorised ones."""
        w = self.readout_rows(params["hidden"], params["phi"])
        return {"hidden": params["hidden"], "readout": self._split_rows(w)}

    def from_raw(self, raw: Params) -> Params:
        """Repriorised params from raw BNN params (inverse of :meth:`to_raw`)."""
        w = self._stack_rows(raw["readout"])
        return {"hidden": raw["hidden"], "phi": self.phi_from_readout_rows(raw["hidden"], w)}

    @_highest
    def predict(self, params: Params, x=None) -> jax.Array:
        """Network outputs ``Phi(x) w(theta, phi)`` of shape ``(n, k)``."""
        w = self.readout_rows(params["hidden"], params["phi"])
        return self.design(params["hidden"], x) @ w

    # --------------------------------------------------------------- densities
    @_highest
    def log_marginal_likelihood(self, hidden: Any) -> jax.Array:
        """``sum_c log N(y_c; 0, Phi Phi^T + sigma^2 I)``: the readout integrated out.

        Primal form via Woodbury: ``log det(K + s^2 I) = log det G + (N - p) log s^2``
        and ``y^T (K + s^2 I)^{-1} y = (y^T y - y^T Phi G^{-1} Phi^T y) / s^2``.
        """
        m = self.model
        Phi = self.design(hidden)
        n, p = Phi.shape
        k = m.out_dim
        s2 = m.noise_std**2
        y = m.y
        if self.form == "primal":
            G = Phi.T @ Phi + s2 * jnp.eye(p, dtype=Phi.dtype)
            logdet_g, quad_g = spd_logdet_quad(G, Phi.T @ y)
            logdet = logdet_g + (n - p) * math.log(s2)
            quad = (jnp.sum(y * y) - quad_g) / s2
        else:
            C = Phi @ Phi.T + s2 * jnp.eye(n, dtype=Phi.dtype)
            logdet, quad = spd_logdet_quad(C, y)
        return -0.5 * quad - 0.5 * k * logdet - 0.5 * n * k * math.log(2 * math.pi)

    def log_hidden_density(self, hidden: Any) -> jax.Array:
        """Unnormalised log posterior of the hidden parameters alone, readout integrated out.

        ``log p(theta) + log N(y; 0, Phi Phi^T + sigma^2 I)``: the ``theta`` factor of
        :meth:`log_density`. Sampling ``theta`` from it and drawing ``phi ~ N(0, I)``
        afresh (:meth:`draw_phi`) gives exact joint posterior draws of ``(theta, phi)``
        for each ``theta`` draw: a collapsed Gibbs sampler, which
        :func:`~widelab_bayes.studies.sample_bnn` runs as ``"collapsed-ghmc"``.
        """
        return self.model.log_prior(hidden) + self.log_marginal_likelihood(hidden)

    def draw_phi(self, key: jax.Array) -> jax.Array:
        """``phi ~ N(0, I)`` of shape ``(p, k)``: its exact posterior, whatever ``theta`` is.

        With :meth:`to_raw` this is an exact draw of the readout from its conditional
        posterior ``N(G^{-1} Phi^T y, sigma^2 G^{-1})`` given the hidden parameters.
        """
        shape = (self.n_readout_rows, self.model.out_dim)
        return jax.random.normal(key, shape, self.model.y.dtype)

    def log_density(self, params: Params) -> jax.Array:
        """Log density on ``(theta, phi)`` the sampler sees (fast, collapsed form).

        ``log p(theta) + log N(phi; 0, I) + log N(y; 0, Phi Phi^T + sigma^2 I)``, which
        equals :meth:`log_density_direct` (prior + likelihood + log-determinant) exactly;
        the tests check the identity.
        """
        self._check_phi(params["phi"])
        phi = params["phi"]
        log_phi = -0.5 * jnp.sum(phi * phi) - 0.5 * phi.size * math.log(2 * math.pi)
        return log_phi + self.log_hidden_density(params["hidden"])

    def log_density_direct(self, params: Params) -> jax.Array:
        """``log p(theta, w) + log p(y | theta, w) + log|det dw/dphi|`` at ``w = w(theta, phi)``.

        The change-of-variables density of Hron et al. 2022, Sec. 4, computed literally.
        """
        raw = self.to_raw(params)
        return self.model.log_density(raw) + self.log_det(params["hidden"])
