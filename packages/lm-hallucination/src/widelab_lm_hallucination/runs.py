"""Run folders: everything ``widelab lm`` needs to resume, evaluate or probe a model.

A run folder holds ``run.json`` (model and training configs, tokenizer, seeds),
``kg.tsv`` (the full graph, the verifier's ground truth), ``unseen.tsv`` (held-out
queries), ``checkpoint.npz`` and ``metrics.jsonl``.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from widelab_core.command import atomic_write

from .corpus import Tokenizer
from .kg import KGSplit, KnowledgeGraph, read_tsv
from .model import LMConfig
from .train import CHECKPOINT, TrainConfig, init_state, load_checkpoint


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
    atomic_write(run_dir / "run.json", json.dumps(meta, indent=2))
    atomic_write(run_dir / "kg.tsv", split.full.to_tsv())
    train_set = set(split.train.triples)
    held = "".join(
        f"{s}\t{r}\t{o}\n" for s, r, o in split.full.triples if (s, r, o) not in train_set
    )
    atomic_write(run_dir / "unseen.tsv", held)


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
    for name in ("run.json", "kg.tsv", CHECKPOINT):
        if not (run_dir / name).exists():
            raise FileNotFoundError(f"{run_dir}: no {name}; is this a `widelab lm train` folder?")
    meta = json.loads((run_dir / "run.json").read_text())
    cfg = LMConfig(**meta["model"])
    tc = TrainConfig(**meta["train"])
    tok = Tokenizer(tuple(meta["tokenizer"]["chars"]), tuple(meta["tokenizer"]["relations"]))
    full = read_tsv(run_dir / "kg.tsv")
    held: set = set()
    if (run_dir / "unseen.tsv").exists() and (run_dir / "unseen.tsv").read_text().strip():
        held = set(read_tsv(run_dir / "unseen.tsv").triples)
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
