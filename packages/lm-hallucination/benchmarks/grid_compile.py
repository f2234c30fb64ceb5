"""CPU seconds and XLA compilations of the report's quick size x epochs grid.

Runs the grid of ``widelab report --quick`` (30-entity graph, three sizes, 8 and 32
epochs, one run per cell) in a temporary folder and prints the process CPU time
(``time.process_time``, all threads), the wall time and the number of XLA backend
compilations, in total and per cell. Cells of one size share their compiled training
step, so only the first cell of each size should compile it.

    uv run python packages/lm-hallucination/benchmarks/grid_compile.py
"""

from __future__ import annotations

import argparse
import tempfile
import time

import jax
from widelab_lm_hallucination import (
    Tokenizer,
    TrainConfig,
    make_kg,
    size_epoch_grid,
    size_family,
    split_kg,
)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--entities", type=int, default=30)
    ap.add_argument("--sizes", type=int, default=3)
    ap.add_argument("--epochs", type=str, default="8,32")
    args = ap.parse_args()
    compiles: list[float] = []

    def listen(event, duration, **kw):
        if event == "/jax/compilation_cache/compile_time_saved_sec":
            return
        if event.endswith("backend_compile_duration"):
            compiles.append(duration)

    jax.monitoring.register_event_duration_secs_listener(listen)
    kg = make_kg(args.entities, seed=0, homonym_share=0.0)
    split = split_kg(kg, 0.1, seed=0)
    tok = Tokenizer.fit(kg.triples)
    sizes = size_family(args.sizes, tok.vocab_size, d_min=16, seq_len=48, n_layers=1)
    tc = TrainConfig(batch_size=8, lr=1e-2, warmup=10, seed=0)
    epochs = [float(e) for e in args.epochs.split(",")]
    cells: list[tuple[str, float, float, int]] = []

    class Timer:  # a progress wrapper that records each cell's cost
        def __init__(self, items, desc=""):
            self.items = items

        def __iter__(self):
            for item in self.items:
                c0, w0, n0 = time.process_time(), time.perf_counter(), len(compiles)
                yield item
                name = f"d{item[1].d_model} ep{item[2]:g}"
                cpu, wall = time.process_time() - c0, time.perf_counter() - w0
                cells.append((name, cpu, wall, len(compiles) - n0))

    c0, w0 = time.process_time(), time.perf_counter()
    with tempfile.TemporaryDirectory() as out:
        size_epoch_grid(out, split, tok, sizes, epochs, tc, progress=Timer)
    cpu, wall = time.process_time() - c0, time.perf_counter() - w0
    print(f"{'cell':12s} {'CPU s':>7s} {'wall s':>7s} {'compiles':>8s}")
    for name, c, w, n in cells:
        print(f"{name:12s} {c:7.2f} {w:7.2f} {n:8d}")
    print(f"grid: {cpu:.1f} CPU s, {wall:.1f} wall s, {len(compiles)} compilations")


if __name__ == "__main__":
    main()
