"""Out-of-core, resumable kernel matrices: train x train and test x train, tile by tile.

:func:`compute_kernels` writes the NNGP and/or NTK of a preset network (see
:mod:`widelab_kernels.presets`) between the training images and between test and
training images into a folder, one ``.npy`` file per matrix and kernel
(``nngp_train_train.npy``, ``nngp_test_train.npy``, ``ntk_...``), which
:func:`load_kernels` opens as memory maps. ``manifest.json`` records the settings.

* **Tiles.** The matrices are cut into ``tile x tile`` blocks; of train x train only
  the blocks on and above the diagonal are computed (the others are filled with their
  transposes at the end). Each block is evaluated by
  :func:`widelab_core.devices.pairwise_tiled` in ``batch_size x batch_size`` pieces
  spread over the local devices.
* **Durability and resume.** A block is written with ``pwrite`` into its place in each
  file, the files are ``fsync``-ed, and only then is the block appended to a done log
  (``done-<process>.log``, itself ``fsync``-ed). Running the same computation again
  skips every logged block, so an interruption (Ctrl-C, ``SIGKILL``, power loss) costs
  at most the blocks in flight, and the result is bitwise the one an uninterrupted
  run writes. Different settings on the same folder are refused, naming the
  differences.
* **Several hosts.** In a ``jax.distributed`` job (see
  :func:`widelab_core.devices.initialize_distributed`) every process computes the
  blocks ``k`` with ``k % process_count == process_index`` on its own devices and
  writes them into the shared folder; process 0 creates the files and finishes.

Setting the environment variable ``WIDELAB_KERNELS_CRASH_AFTER=k:r`` makes the process
kill itself with ``SIGKILL`` after writing ``r`` rows of the ``k``-th block it computes
(counting from 0; ``k:r:INT`` sends ``SIGINT`` instead): the fault injection used by
the tests.

Example:
    >>> import numpy as np, tempfile
    >>> x = np.random.default_rng(0).normal(size=(6, 4, 4, 2)).astype(np.float32)
    >>> out = tempfile.mkdtemp()
    >>> _ = compute_kernels("cnngp-1-flatten", x, x[:2], out, batch_size=2, tile=4,
    ...                     progress=False)
    >>> k = load_kernels(out)
    >>> k["nngp_train_train"].shape, k["ntk_test_train"].shape
    ((6, 6), (2, 6))
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import re
import signal
from pathlib import Path

import numpy as np

from ._progress import Progress

__all__ = ["MANIFEST", "KernelSettingsError", "compute_kernels", "load_kernels"]

MANIFEST = "manifest.json"
_FORMAT_VERSION = 1
_CRASH_ENV = "WIDELAB_KERNELS_CRASH_AFTER"
_LOG_LINE = re.compile(r"(train|test) (\d+) (\d+)\n")


class KernelSettingsError(ValueError):
    """The output folder holds a computation with different settings."""


# ----------------------------------------------------------------------------- files


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_json(path: Path, obj) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w") as f:
        json.dump(obj, f, indent=2, sort_keys=True)
        f.write("\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    _fsync_dir(path.parent)


def _header_offset(path: Path) -> int:
    with open(path, "rb") as f:
        version = np.lib.format.read_magic(f)
        if version == (1, 0):
            np.lib.format.read_array_header_1_0(f)
        else:
            np.lib.format.read_array_header_2_0(f)
        return f.tell()


def _matrices(settings: dict) -> dict[str, tuple[int, int]]:
    n, m = settings["n_train"], settings["n_test"]
    out = {}
    for g in settings["get"]:
        out[f"{g}_train_train"] = (n, n)
        if m:
            out[f"{g}_test_train"] = (m, n)
    return out


def _create(out: Path, settings: dict) -> None:
    """Fresh files (sparse, header only) and the manifest, written last."""
    for log in out.glob("done-*.log"):
        log.unlink()
    for name, shape in _matrices(settings).items():
        path = out / f"{name}.npy"
        arr = np.lib.format.open_memmap(path, mode="w+", dtype=settings["dtype"], shape=shape)
        del arr
        with open(path, "rb+") as f:
            os.fsync(f.fileno())
    _write_json(out / MANIFEST, {"settings": settings, "complete": False})


def _differences(old: dict, new: dict) -> list[str]:
    keys = sorted(set(old) | set(new))
    return [
        f"{k}: {old.get(k, '(absent)')!r} in the folder, {new.get(k, '(absent)')!r} now"
        for k in keys
        if old.get(k) != new.get(k)
    ]


def _read_manifest(out: Path) -> dict | None:
    path = out / MANIFEST
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: not a kernel manifest (line {e.lineno}: {e.msg})") from None


def _check_settings(out: Path, settings: dict) -> bool:
    """True when the folder already holds this computation; raises on a mismatch."""
    manifest = _read_manifest(out)
    if manifest is None:
        return False
    diff = _differences(manifest.get("settings", {}), settings)
    if diff:
        raise KernelSettingsError(
            f"{out} holds kernels computed with other settings; use another --out or "
            "delete it. Differences: " + "; ".join(diff)
        )
    return True


def _done(out: Path) -> set[tuple[str, int, int]]:
    """Blocks recorded in every process's done log (a torn last line is ignored)."""
    done = set()
    for log in sorted(out.glob("done-*.log")):
        text = log.read_bytes().decode("ascii", errors="replace")
        for line in text.splitlines(keepends=True):
            m = _LOG_LINE.fullmatch(line)
            if m:
                done.add((m.group(1), int(m.group(2)), int(m.group(3))))
    return done


# ----------------------------------------------------------------------------- blocks


def _blocks(n: int, m: int, tile: int) -> list[tuple[str, int, int]]:
    nb, mb = -(-n // tile), -(-m // tile)
    train = [("train", i, j) for i in range(nb) for j in range(i, nb)]
    return train + [("test", i, j) for i in range(mb) for j in range(nb)]


class _Writer:
    """pwrite of blocks into the .npy files, with the fault-injection hook."""

    def __init__(self, out: Path, settings: dict):
        self.settings = settings
        self.itemsize = np.dtype(settings["dtype"]).itemsize
        self.files = {}
        for name, shape in _matrices(settings).items():
            path = out / f"{name}.npy"
            self.files[name] = (os.open(path, os.O_RDWR), _header_offset(path), shape)
        crash = os.environ.get(_CRASH_ENV, "").split(":")
        self.crash = (int(crash[0]), int(crash[1])) if len(crash) >= 2 else None
        self.crash_signal = signal.SIGINT if crash[2:] == ["INT"] else signal.SIGKILL
        self.written = 0

    def write(self, name: str, r0: int, c0: int, block: np.ndarray) -> None:
        fd, offset, (_, ncol) = self.files[name]
        block = np.ascontiguousarray(block, dtype=self.settings["dtype"])
        for r in range(block.shape[0]):
            if self.crash and self.crash == (self.written, r):
                os.kill(os.getpid(), self.crash_signal)
            pos = offset + ((r0 + r) * ncol + c0) * self.itemsize
            os.pwrite(fd, block[r].tobytes(), pos)

    def sync(self) -> None:
        for fd, _, _ in self.files.values():
            os.fsync(fd)

    def close(self) -> None:
        for fd, _, _ in self.files.values():
            os.close(fd)


@functools.lru_cache(maxsize=8)
def _block_fn(net_name: str, get: tuple[str, ...]):
    """The block functions of one network (cached, so later calls reuse compilations)."""
    from .analytic import kernel_fn
    from .presets import preset

    kf = kernel_fn(preset(net_name, channels=1))

    def fn(a, b):
        k = kf(a, b, get=get)
        return {g: getattr(k, g) for g in get}

    def square(a):
        k = kf(a, None, get=get)
        return {g: getattr(k, g) for g in get}

    return fn, square


def _fingerprint(*arrays) -> str:
    h = hashlib.sha256()
    for a in arrays:
        a = np.ascontiguousarray(a)
        h.update(f"{a.dtype.str}{a.shape}".encode())
        if a.size:
            h.update(memoryview(a.reshape(-1)).cast("B"))
    return h.hexdigest()[:32]


def _positive(value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value <= 0:
        raise ValueError(f"compute_kernels: {name} must be a positive integer, got {value!r}")
    return int(value)


def compute_kernels(
    net: str,
    x_train,
    x_test,
    out,
    *,
    get: tuple[str, ...] | str = ("nngp", "ntk"),
    batch_size: int = 16,
    tile: int | None = None,
    dtype: str = "float32",
    extra_settings: dict | None = None,
    progress: bool | None = None,
    log_every: float = 30.0,
) -> dict:
    """Compute the kernels of a preset network into ``out``, resuming where it stopped.

    The kernel of each pair of images is the analytic NNGP / NTK of
    :func:`widelab_kernels.kernel_fn` (Novak et al. 2019; Arora et al. 2019, "On Exact
    Computation with an Infinitely Wide Neural Net", Sec. 4 for the convolutional NTK),
    computed in blocks as the module docstring describes. Every process of a
    ``jax.distributed`` job must call it with the same arguments.

    Args:
        net: a preset name understood by :func:`widelab_kernels.presets.preset`.
        x_train: ``(n_train, height, width, channels)`` training images.
        x_test: ``(n_test, ...)`` test images (may have no rows).
        out: output folder (created if needed).
        get: ``"nngp"``, ``"ntk"`` or both.
        batch_size: edge of the pieces evaluated on one device at a time.
        tile: edge of the blocks written and logged as done; a multiple of
            ``batch_size`` (default ``4 * batch_size``).
        dtype: ``"float32"`` or ``"float64"`` (computed and stored in that type).
        extra_settings: more facts recorded in the manifest and compared on resume
            (the data source and preprocessing).
        progress: a bar (terminal) or periodic lines; ``None``: only on a terminal.
        log_every: seconds between plain progress lines when not on a terminal.

    Returns:
        The manifest (``{"settings": ..., "complete": True}``).

    Raises:
        KernelSettingsError: ``out`` holds a computation with different settings.
        ValueError: bad arguments (the message names the argument and value).
    """
    import jax
    from widelab_core.devices import local_mesh, pairwise_tiled

    get = (get,) if isinstance(get, str) else tuple(get)
    if not get or any(g not in ("nngp", "ntk") for g in get) or len(set(get)) != len(get):
        raise ValueError(f"compute_kernels: get must name nngp and/or ntk once, got {get!r}")
    if dtype not in ("float32", "float64"):
        raise ValueError(f"compute_kernels: dtype must be 'float32' or 'float64', got {dtype!r}")
    batch_size = _positive(batch_size, "batch_size")
    tile = 4 * batch_size if tile is None else _positive(tile, "tile")
    if tile % batch_size:
        raise ValueError(
            f"compute_kernels: tile ({tile}) must be a multiple of batch_size ({batch_size})"
        )
    x_train = np.asarray(x_train, dtype)
    x_test = np.asarray(x_test, dtype)
    if x_train.ndim != 4 or x_test.ndim != 4 or x_train.shape[1:] != x_test.shape[1:]:
        raise ValueError(
            "compute_kernels: x_train and x_test must be (n, height, width, channels) with "
            f"equal image shapes, got {x_train.shape} and {x_test.shape}"
        )
    if x_train.shape[0] == 0:
        raise ValueError("compute_kernels: x_train has no images")
    from .presets import preset

    preset(net)  # an unknown name fails here, before anything is written
    settings = {
        "format_version": _FORMAT_VERSION,
        "net": net,
        "get": list(get),
        "n_train": int(x_train.shape[0]),
        "n_test": int(x_test.shape[0]),
        "image_shape": list(x_train.shape[1:]),
        "batch_size": batch_size,
        "tile": tile,
        "dtype": dtype,
        "inputs_sha256": _fingerprint(x_train, x_test),
        **(extra_settings or {}),
    }
    out = Path(out)
    pid, nproc = jax.process_index(), jax.process_count()
    if pid == 0:
        out.mkdir(parents=True, exist_ok=True)
    exists = out.is_dir() and _check_settings(out, settings)
    if pid == 0 and not exists:
        _create(out, settings)
    _barrier("widelab-kernels-created", nproc)
    if pid != 0:
        _check_settings(out, settings)

    blocks = _blocks(settings["n_train"], settings["n_test"], tile)
    mine = [b for k, b in enumerate(blocks) if k % nproc == pid]
    done = _done(out)
    todo = [b for b in mine if b not in done]
    fn, square_fn = _block_fn(net, get)
    mesh = local_mesh()
    n, m = settings["n_train"], settings["n_test"]
    bar = Progress(len(mine), len(mine) - len(todo), progress, log_every, "kernels compute")
    writer = _Writer(out, settings)
    log = open(out / f"done-{pid}.log", "ab")
    try:
        with jax.enable_x64(dtype == "float64"):
            for kind, i, j in todo:
                rows = slice(i * tile, min((i + 1) * tile, n if kind == "train" else m))
                cols = slice(j * tile, min((j + 1) * tile, n))
                xa = (x_train if kind == "train" else x_test)[rows]
                diagonal = kind == "train" and i == j
                res = pairwise_tiled(
                    fn,
                    xa,
                    None if diagonal else x_train[cols],
                    batch_size=batch_size,
                    square_fn=square_fn,
                    mesh=mesh,
                )
                for g in get:
                    writer.write(f"{g}_{kind}_train", rows.start, cols.start, np.asarray(res[g]))
                writer.written += 1
                writer.sync()
                log.write(f"{kind} {i} {j}\n".encode())
                log.flush()
                os.fsync(log.fileno())
                bar.update(1)
    finally:
        log.close()
        writer.close()
        bar.close()
    _barrier("widelab-kernels-computed", nproc)
    if pid == 0:
        _finish(out, settings)
    _barrier("widelab-kernels-finished", nproc)
    return _read_manifest(out)


def _barrier(name: str, nproc: int) -> None:
    if nproc > 1:
        from jax.experimental import multihost_utils

        multihost_utils.sync_global_devices(name)


def _finish(out: Path, settings: dict) -> None:
    """Fill the lower triangle of train x train from the upper one; mark complete."""
    missing = [b for b in _blocks(settings["n_train"], settings["n_test"], settings["tile"])]
    missing = [b for b in missing if b not in _done(out)]
    if missing:
        raise RuntimeError(f"compute_kernels: {len(missing)} blocks are not done in {out}")
    n, tile = settings["n_train"], settings["tile"]
    writer = _Writer(out, settings)
    try:
        for g in settings["get"]:
            k = np.load(out / f"{g}_train_train.npy", mmap_mode="r")
            for i, j in ((i, j) for _, i, j in _blocks(n, 0, tile) if i < j):
                block = np.array(k[i * tile : (i + 1) * tile, j * tile : (j + 1) * tile])
                writer.write(f"{g}_train_train", j * tile, i * tile, block.T)
            del k
        writer.sync()
    finally:
        writer.close()
    _write_json(out / MANIFEST, {"settings": settings, "complete": True})


def load_kernels(out) -> dict[str, np.memmap]:
    """Open the kernels of a finished :func:`compute_kernels` run as read-only memory maps.

    Args:
        out: the output folder.

    Returns:
        ``{"nngp_train_train": (n_train, n_train), "nngp_test_train": (n_test, n_train),
        ...}`` memory-mapped arrays, plus nothing else; the settings are in
        ``json.load(open(out / "manifest.json"))["settings"]``.

    Raises:
        FileNotFoundError: no manifest in ``out``.
        ValueError: the computation is not finished (run it again to resume).
    """
    out = Path(out)
    manifest = _read_manifest(out)
    if manifest is None:
        raise FileNotFoundError(f"load_kernels: {out / MANIFEST} not found")
    if not manifest.get("complete"):
        raise ValueError(
            f"load_kernels: the kernels in {out} are not finished; run the same "
            "`widelab kernels compute` command again to resume"
        )
    return {
        name: np.load(out / f"{name}.npy", mmap_mode="r")
        for name in _matrices(manifest["settings"])
    }
