"""Networks with ``FanInProd`` of branches that end in nonlinearities, shared by
``benchmarks/nt_reference_cases.py prod`` (run with Neural Tangents 0.6.5) and
``test_rules_prod.py`` (run with ``widelab_kernels.nt.stax``).

``cases(S)`` builds each network from a stax namespace ``S`` and yields
``(name, net, x1, x2_or_None)``; kernels are compared in NT's layout.
"""

import numpy as np


def inputs():
    rng = np.random.default_rng(29)
    vec1, vec2 = rng.normal(size=(3, 4)), rng.normal(size=(2, 4))
    img1, img2 = rng.normal(size=(3, 4, 3, 2)), rng.normal(size=(2, 4, 3, 2))
    return {"vec": (vec1, vec2), "img": (img1, img2)}


def nets(S):
    return {
        "relu_erf": (
            S.serial(
                S.FanOut(2),
                S.parallel(
                    S.serial(S.Dense(8, W_std=1.5, b_std=0.1), S.Relu()),
                    S.serial(S.Dense(8), S.Erf()),
                ),
                S.FanInProd(),
                S.Dense(1, W_std=1.2),
            ),
            "vec",
        ),
        "deep_sin_relu": (
            S.serial(
                S.Dense(8, b_std=0.2),
                S.Relu(),
                S.FanOut(3),
                S.parallel(
                    S.serial(S.Dense(8), S.Relu()),
                    S.serial(S.Dense(8, b_std=0.3), S.Sin()),
                    S.Dense(8, W_std=0.8),
                ),
                S.FanInProd(),
                S.Dense(8),
                S.Erf(),
                S.Dense(1),
            ),
            "vec",
        ),
        "identity_branch": (
            S.serial(
                S.Dense(8, W_std=1.3),
                S.FanOut(2),
                S.parallel(S.Identity(), S.serial(S.Dense(8), S.Gelu())),
                S.FanInProd(),
                S.Dense(1),
            ),
            "vec",
        ),
        "conv_gap": (
            S.serial(
                S.FanOut(2),
                S.parallel(
                    S.serial(S.Conv(8, (2, 2), padding="SAME"), S.Relu()),
                    S.serial(S.Conv(8, (2, 2), padding="SAME", b_std=0.2), S.Erf()),
                ),
                S.FanInProd(),
                S.Conv(8, (1, 1)),
                S.GlobalAvgPool(),
                S.Dense(1),
            ),
            "img",
        ),
    }


def cases(S):
    data = inputs()
    for name, (net, x) in nets(S).items():
        x1, x2 = data[x]
        yield name, net, x1, x2
        if name in ("relu_erf", "conv_gap"):
            yield name + "|x1x1", net, x1, None
