"""Networks with padding masks (``mask_constant``) through transposed and local
convolutions and resizing, shared by ``benchmarks/nt_reference_cases.py masking`` (run with
Neural Tangents 0.6.5) and ``test_nt_masking.py`` (run with ``widelab_kernels.nt.stax``).

``cases(S)`` builds each network from a stax namespace ``S`` and yields
``(name, net, x1, x2_or_None)``; ``KERNEL_KWARGS`` are passed to every ``kernel_fn`` call.
Every network ends in a global pooling or flattening readout (NT zeroes the covariances
of masked spatial outputs, widelab keeps them as ``apply_fn`` keeps their values), and
avoids ``AvgPool`` (NT averages masked positions as zeros, widelab leaves them out of the
count). Images keep an even number of (transposed) convolutions before spatial outputs and
resizes, as in ``nt_nets_layers.py``.
"""

import numpy as np

MASK_CONSTANT = -3.0
KERNEL_KWARGS = {"mask_constant": MASK_CONSTANT}


def inputs():
    """Float64 images and sequences with whole padded positions (all channels masked)."""
    rng = np.random.default_rng(21)
    img1 = rng.normal(size=(3, 5, 4, 2))
    img2 = rng.normal(size=(2, 5, 4, 2))
    img1[0, 3:, :] = MASK_CONSTANT
    img1[1, :, 3] = MASK_CONSTANT
    img2[1, 0, 0] = MASK_CONSTANT
    seq1 = rng.normal(size=(3, 6, 2))
    seq2 = rng.normal(size=(2, 6, 2))
    seq1[0, 4:] = MASK_CONSTANT
    seq1[2, 1] = MASK_CONSTANT
    seq2[1, :2] = MASK_CONSTANT
    return (img1, img2), (seq1, seq2)


def nets(S):
    return {
        "convT_1d_gap": S.serial(
            S.ConvTranspose(8, (3,), (2,), "VALID", W_std=1.3, b_std=0.2),
            S.Relu(),
            S.GlobalAvgPool(),
            S.Dense(1),
        ),
        "convT_1d_same_flat": S.serial(
            S.Dense(8, b_std=0.1),
            S.ConvTranspose(8, (2,), (1,), "SAME", b_std=0.1),
            S.Erf(),
            S.Flatten(),
        ),
        "convT_2d_flat": S.serial(
            S.ConvTranspose(8, (3, 2), (2, 1), "VALID", W_std=1.1, b_std=0.2),
            S.Relu(),
            S.ConvTranspose(8, (2, 2), (1, 2), "SAME"),
            S.Relu(),
            S.Flatten(),
        ),
        "convT_2d_circular_gap": S.serial(
            S.Conv(8, (2, 2), padding="SAME"),
            S.Relu(),
            # filter = stride: NT's CIRCULAR output mask ignores reads that wrap around
            S.ConvTranspose(8, (2, 2), (2, 2), "CIRCULAR", b_std=0.1, parameterization="standard"),
            S.Relu(),
            S.GlobalAvgPool(),
        ),
        "local_gap": S.serial(
            S.ConvLocal(8, (2, 2), None, "SAME", W_std=1.2, b_std=0.3),
            S.Relu(),
            S.GlobalAvgPool(),
            S.Dense(1),
        ),
        "local_1d_strided_flat": S.serial(
            S.Dense(8),
            S.Relu(),
            S.ConvLocal(8, (3,), (2,), "VALID", b_std=0.1, parameterization="standard"),
            S.Relu(),
            S.Flatten(),
        ),
        "resize_linear_gap": S.serial(
            S.Conv(8, (2, 2), padding="SAME"),
            S.Relu(),
            S.Conv(8, (1, 1)),
            S.ImageResize((-1, 7, 3, -1), "linear"),
            S.Relu(),
            S.GlobalAvgPool(),
        ),
        # NT masks inputs entry by entry and cannot resize a mask before a layer has
        # reduced it over channels.
        "resize_nearest_flat": S.serial(
            S.Dense(8, W_std=1.2),
            S.ImageResize((-1, 8, -1, -1), "nearest"),
            S.Conv(4, (3, 3), padding="SAME"),
            S.Relu(),
            S.Flatten(),
        ),
        "resize_1d_linear_gap": S.serial(
            S.Dense(8, b_std=0.1),
            S.Relu(),
            S.Dense(8, b_std=0.2),
            S.ImageResize((-1, 3, -1), "linear"),
            S.Relu(),
            S.GlobalAvgPool(),
            S.Dense(1),
        ),
    }


def cases(S):
    (img1, img2), (seq1, seq2) = inputs()
    for name, net in nets(S).items():
        x1, x2 = (seq1, seq2) if "1d" in name else (img1, img2)
        yield name, net, x1, x2
        if name.endswith("_gap"):
            yield name + "|x1x1", net, x1, None
