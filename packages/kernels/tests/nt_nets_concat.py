"""Networks concatenating branches along spatial axes, shared by
``benchmarks/nt_reference_cases.py concat`` (run with Neural Tangents 0.6.5) and
``test_rules_concat.py`` (run with ``widelab_kernels.nt.stax``).

``cases(S)`` builds each network from a stax namespace ``S`` and yields
``(name, net, x1, x2_or_None)``; kernels are compared in NT's layout (all-pairs spatial
axes interleaved).
"""

import numpy as np


def inputs():
    rng = np.random.default_rng(17)
    img1 = rng.normal(size=(3, 4, 3, 2))
    img2 = rng.normal(size=(2, 4, 3, 2))
    seq1 = rng.normal(size=(3, 5, 2))
    return img1, img2, seq1


def nets(S):
    # Each branch ends in an affine layer, so branches are independent Gaussians; an
    # even number of convolutions precedes the concatenation in every 2-D net.
    return {
        "height_gap": S.serial(
            S.Conv(8, (2, 2), padding="SAME", b_std=0.1),
            S.FanOut(2),
            S.parallel(
                S.Conv(8, (2, 2), padding="SAME", W_std=1.3),
                S.serial(S.Relu(), S.Conv(8, (3, 1), padding="VALID", b_std=0.2)),
            ),
            S.FanInConcat(axis=1),
            S.Relu(),
            S.GlobalAvgPool(),
            S.Dense(1),
        ),
        "width_flat": S.serial(
            S.Conv(8, (2, 2), padding="SAME"),
            S.FanOut(2),
            S.parallel(
                S.serial(S.Erf(), S.Conv(8, (1, 2), padding="VALID", b_std=0.3)),
                S.Conv(8, (2, 2), padding="SAME", parameterization="standard"),
            ),
            S.FanInConcat(axis=-2),
            S.Relu(),
            S.Flatten(),
            S.Dense(1),
        ),
        "width_spatial": S.serial(
            S.Conv(8, (2, 2), padding="SAME"),
            S.FanOut(2),
            S.parallel(
                S.Conv(8, (2, 2), padding="SAME", b_std=0.1),
                S.serial(S.Relu(), S.Conv(8, (1, 1))),
            ),
            S.FanInConcat(axis=2),
        ),
        "seq_1d_spatial": S.serial(
            S.Conv(4, (2,)),
            S.FanOut(3),
            S.parallel(S.Dense(4, b_std=0.2), S.Conv(4, (3,)), S.serial(S.Relu(), S.Conv(4, (1,)))),
            S.FanInConcat(axis=1),
            S.Relu(),
            S.Conv(4, (2,)),
        ),
    }


def cases(S):
    img1, img2, seq1 = inputs()
    for name, net in nets(S).items():
        if "1d" in name:
            yield name, net, seq1, None
        else:
            yield name, net, img1, img2
            if "spatial" in name:
                yield name + "|x1x1", net, img1, None
