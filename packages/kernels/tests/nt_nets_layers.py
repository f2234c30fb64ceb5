"""Networks with transposed/local convolutions, resizing and indexing, shared by
``benchmarks/nt_reference_cases.py layers`` (run with Neural Tangents 0.6.5) and
``test_rules_position_maps.py`` (run with ``widelab_kernels.nt.stax``).

``cases(S)`` builds each network from a stax namespace ``S`` and yields
``(name, net, x1, x2_or_None)``; every network's kernel is compared in NT's layout
(all-pairs spatial axes interleaved).
"""

import numpy as np


def inputs():
    rng = np.random.default_rng(13)
    img1 = rng.normal(size=(3, 5, 4, 2))
    img2 = rng.normal(size=(2, 5, 4, 2))
    seq1 = rng.normal(size=(3, 6, 2))
    return img1, img2, seq1


def nets(S):
    return {
        "convT_valid_flat": S.serial(
            S.ConvTranspose(8, (3, 2), (2, 1), "VALID", W_std=1.3, b_std=0.2),
            S.Relu(),
            S.ConvTranspose(8, (2, 2), (1, 2), "SAME"),
            S.Flatten(),
        ),
        "convT_circular_standard_flat": S.serial(
            S.ConvTranspose(
                8, (3, 3), (2, 1), "CIRCULAR", W_std=1.1, b_std=0.3, parameterization="standard"
            ),
            S.Relu(),
            S.Flatten(),
        ),
        # Spatial outputs and resizes follow an even number of (transposed) convolutions:
        # after an odd number NT 0.6.5 keeps its kernel's spatial axes in reversed order,
        # which its ConvTranspose output labels and ImageResize do not account for (NT's
        # analytic kernel then disagrees with its own Monte Carlo estimate).
        "convT_same_spatial": S.serial(
            S.ConvTranspose(8, (2, 3), (1, 2), "SAME", b_std=0.1),
            S.Erf(),
            S.Conv(8, (1, 1), b_std=0.1),
        ),
        "convT_1d_gap": S.serial(
            S.ConvTranspose(4, (4,), (3,), "VALID"), S.Relu(), S.GlobalAvgPool(), S.Dense(1)
        ),
        "convT_circular_gap": S.serial(
            S.ConvTranspose(4, (2, 3), (2, 2), "CIRCULAR", b_std=0.1),
            S.Relu(),
            S.GlobalAvgPool(),
        ),
        "local_flat": S.serial(
            S.ConvLocal(8, (3, 2), None, "SAME", W_std=1.2, b_std=0.3),
            S.Relu(),
            S.ConvLocal(8, (2, 2), (2, 1), "VALID", b_std=0.1, parameterization="standard"),
            S.Flatten(),
        ),
        "local_circular_spatial": S.serial(
            S.Conv(8, (2, 2), padding="SAME"),
            S.Relu(),
            S.ConvLocal(8, (3, 3), padding="CIRCULAR", b_std=0.2),
        ),
        "local_gap": S.serial(
            S.ConvLocal(8, (2, 2), b_std=0.1), S.Relu(), S.GlobalAvgPool(), S.Dense(1)
        ),
        "resize_linear_gap": S.serial(
            S.Conv(8, (2, 2), padding="SAME"),
            S.Relu(),
            S.Conv(8, (1, 1)),
            S.ImageResize((-1, 7, 3, -1), "linear"),
            S.Conv(8, (2, 2)),
            S.Relu(),
            S.GlobalAvgPool(),
        ),
        "resize_nearest_flat": S.serial(
            S.ImageResize((-1, 8, -1, -1), "nearest"), S.Conv(4, (3, 3)), S.Relu(), S.Flatten()
        ),
        "resize_linear_noaa_spatial": S.serial(
            S.Conv(8, (2, 2), padding="SAME"),
            S.Relu(),
            S.Conv(8, (1, 1)),
            S.ImageResize((-1, 3, 6, -1), "linear", antialias=False),
        ),
        "index_chain": S.serial(
            S.Conv(8, (2, 2), padding="SAME"),
            S.Relu(),
            S.Index(S.Slice[::2, 1:4, ::-1]),
            S.Conv(8, (2, 2)),
            S.Relu(),
            S.Index(S.Slice[:, 0, ...]),
            S.Conv(8, (2,)),
            S.GlobalAvgPool(),
            S.Dense(1),
        ),
        # Two convolutions: after an odd number NT 0.6.5 indexes its reversed axes.
        "index_spatial": S.serial(
            S.Conv(8, (2, 2)),
            S.Relu(),
            S.Conv(8, (1, 1)),
            S.Relu(),
            S.Index(S.Slice[..., 1:3, :]),
        ),
    }


def cases(S):
    img1, img2, seq1 = inputs()
    for name, net in nets(S).items():
        if "1d" in name:
            yield name, net, seq1, None
        else:
            yield name, net, img1, img2
            if "circular" in name or "spatial" in name:
                yield name + "|x1x1", net, img1, None
