"""Run folders: everything ``widelab lm`` needs to resume, evaluate or probe a model.

A run folder holds ``run.json`` (model and training configs, tokenizer, seeds),
``graph.tsv`` (the full graph, the verifier's ground truth), ``unseen.tsv`` (held-out
triples), ``checkpoint.npz`` and ``metrics.jsonl``. A run never writes over its inputs:
:func:`check_outputs` refuses a folder whose outputs would replace an input file.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from pathlib import Path

from widelab_core.command import atomic_write

from .corpus import Tokenizer
from .kg import KGSplit, KnowledgeGraph, read_tsv
from .model import LMConfig
from .train import CHECKPOINT, METRICS, TrainConfig, init_state, load_checkpoint

RUN_JSON = "run.json"
GRAPH = "graph.tsv"
UNSEEN = "unseen.tsv"
#: Every file a run folder may hold (outputs of ``widelab lm train``).
RUN_FILES = (RUN_JSON, GRAPH, UNSEEN, CHECKPOINT, METRICS)


def check_outputs(run_dir: str | Path, inputs: Sequence[str | Path | None]) -> None:
    """Refuse a run folder whose outputs would overwrite one of ``inputs``.

    Args:
        run_dir: the run folder (``--out``).
        inputs: files the run reads (None entries are skipped).

    Raises:
        ValueError: ``run_dir`` is an existing file, or one of its outputs (or the
            folder itself) is one of ``inputs``.
    """
    run_dir = Path(run_dir)
    if run_dir.exists() and not run_dir.is_dir():
        raise ValueError(f"--out {run_dir} is an existing file; --out must name a run folder")
    outs = {(run_dir / name).resolve(): name for name in RUN_FILES}
    for src in inputs:
        if src is None:
            continue
        src_r = Path(src).resolve()
        if src_r in outs:
            raise ValueError(
                f"--out {run_dir} would overwrite the input {src} (the run writes "
                f"{', '.join(RUN_FILES)} into its folder); choose another --out folder "
                "or move the input"
            )


def save_run(
    run_dir: str | Path, cfg: LMConfig, tc: TrainConfig, tok: Tokenizer, split: KGSplit
) -> None:
    """Write the run's description (before training starts)."""
    run_dir = Path(run_dir)
    meta = {
        "model": dataclasses.asdict(cfg),
        "train": dataclasses.asdict(tc),
        "tokenizer": json.loads(tok.to_json()),
    }
    atomic_write(run_dir / RUN_JSON, json.dumps(meta, indent=2))
    atomic_write(run_dir / GRAPH, split.full.to_tsv())
    train_set = set(split.train.triples)
    held = "".join(
        f"{s}\t{r}\t{o}\n" for s, r, o in split.full.triples if (s, r, o) not in train_set
    )
    atomic_write(run_dir / UNSEEN, held)


@dataclasses.dataclass
class Run:
    """A loaded run: configs, tokenizer, split and trained parameters."""

    cfg: LMConfig
    tc: TrainConfig
    tok: Tokenizer
    split: KGSplit
    params: object
    step: int


def load_run(run_dir: str | Path) -> Run:
    """Load a run folder written by ``widelab lm train``.

    Raises:
        FileNotFoundError: the folder lacks ``run.json`` or a checkpoint.
    """
    run_dir = Path(run_dir)
    for name in (RUN_JSON, GRAPH, CHECKPOINT):
        if not (run_dir / name).exists():
            raise FileNotFoundError(f"{run_dir}: no {name}; is this a `widelab lm train` folder?")
    meta = json.loads((run_dir / RUN_JSON).read_text())
    cfg = LMConfig(**meta["model"])
    tc = TrainConfig(**meta["train"])
    tok = Tokenizer(tuple(meta["tokenizer"]["chars"]), tuple(meta["tokenizer"]["relations"]))
    full = read_tsv(run_dir / GRAPH)
    held: set = set()
    if (run_dir / UNSEEN).exists() and (run_dir / UNSEEN).read_text().strip():
        held = set(read_tsv(run_dir / UNSEEN).triples)
    train_kg = full.subset(t for t in full.triples if t not in held)
    unseen = tuple(dict.fromkeys((s, r) for s, r, o in full.triples if (s, r, o) in held))
    split = KGSplit(full, train_kg, tuple(train_kg.queries()), unseen)
    state = load_checkpoint(run_dir / CHECKPOINT, init_state(cfg, tc))
    return Run(cfg, tc, tok, split, state.params, state.step)


def kg_from_file_or_synthetic(
    path: str | None, n_entities: int, seed: int, homonyms: float = 0.0, rules: float = 0.0
) -> KnowledgeGraph:
    """Read ``path`` (TSV or ``.nt``) or draw a synthetic graph."""
    from .kg import make_kg, read_kg

    if path:
        return read_kg(path)
    return make_kg(n_entities, seed=seed, homonym_share=homonyms, rule_share=rules)
