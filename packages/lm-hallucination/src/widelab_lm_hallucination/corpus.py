"""Serialisation of triples, a character tokenizer and the packed training stream.

A fact is written ``<S> subject <P> relation <O> object <EOS>`` (Hron et al. 2024,
Fig. 1b). Relations are single tokens (a one-word-per-relation word-piece); names are
spelled character by character, so multi-token names and prefix traps (``Ann`` /
``Anna``) are real.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable, Sequence

import numpy as np

from .kg import KnowledgeGraph, Triple

PAD, SUBJ, PRED, OBJ, EOS = "<PAD>", "<S>", "<P>", "<O>", "<EOS>"
SPECIALS = (PAD, SUBJ, PRED, OBJ, EOS)


class UnknownTokenError(ValueError):
    """Text holds a character (or relation) the tokenizer's vocabulary lacks."""


@dataclasses.dataclass(frozen=True)
class Tokenizer:
    """Characters plus one token per relation plus the special tokens.

    Attributes:
        chars: the characters, in id order after the specials.
        relations: relation names, one token each, after the characters.

    Example:
        >>> tok = Tokenizer.fit([("Ann", "likes", "Bo")])
        >>> tok.decode(tok.encode_fact("Ann", "likes", "Bo"))
        '<S>Ann<P><likes><O>Bo<EOS>'
    """

    chars: tuple[str, ...]
    relations: tuple[str, ...]

    def __post_init__(self):
        self_map = {c: i + len(SPECIALS) for i, c in enumerate(self.chars)}
        off = len(SPECIALS) + len(self.chars)
        rel_map = {r: i + off for i, r in enumerate(self.relations)}
        object.__setattr__(self, "_char", self_map)
        object.__setattr__(self, "_rel", rel_map)
        object.__setattr__(
            self, "_inv", list(SPECIALS) + list(self.chars) + [f"<{r}>" for r in self.relations]
        )

    @classmethod
    def fit(cls, triples: Iterable[Triple]) -> Tokenizer:
        """The smallest tokenizer covering ``triples``."""
        chars: set[str] = set()
        rels: dict[str, None] = {}
        for s, r, o in triples:
            chars.update(s)
            chars.update(o)
            rels[r] = None
        return cls(tuple(sorted(chars)), tuple(sorted(rels)))

    @property
    def vocab_size(self) -> int:
        """Number of token ids."""
        return len(SPECIALS) + len(self.chars) + len(self.relations)

    def id(self, special: str) -> int:
        """Id of a special token such as ``"<EOS>"``."""
        return SPECIALS.index(special)

    def encode_name(self, text: str) -> list[int]:
        """Character ids of a name.

        Raises:
            UnknownTokenError: a character outside the vocabulary (named with its position).
        """
        out = []
        for i, c in enumerate(text):
            t = self._char.get(c)  # type: ignore[attr-defined]
            if t is None:
                raise UnknownTokenError(
                    f"unknown character {c!r} at position {i} of {text!r}; the tokenizer "
                    f"knows {len(self.chars)} characters"
                )
            out.append(t)
        return out

    def encode_relation(self, relation: str) -> int:
        """The token of a relation.

        Raises:
            UnknownTokenError: a relation the tokenizer was not fitted on.
        """
        t = self._rel.get(relation)  # type: ignore[attr-defined]
        if t is None:
            raise UnknownTokenError(
                f"unknown relation {relation!r}; known: {', '.join(self.relations)}"
            )
        return t

    def encode_fact(self, subject: str, relation: str, obj: str | None = None) -> list[int]:
        """``<S> subject <P> relation <O> [object <EOS>]`` as ids (a query without object)."""
        ids = [1, *self.encode_name(subject), 2, self.encode_relation(relation), 3]
        if obj is not None:
            ids += [*self.encode_name(obj), 4]
        return ids

    def decode(self, ids: Sequence[int]) -> str:
        """Ids back to text (specials and relations shown in angle brackets)."""
        return "".join(self._inv[int(i)] for i in ids)  # type: ignore[attr-defined]

    def decode_object(self, ids: Sequence[int]) -> tuple[str, bool]:
        """Generated ids after ``<O>`` to ``(name, finished)``; stops at ``<EOS>``.

        Any non-character token before ``<EOS>`` ends the name and marks it unfinished,
        so a malformed generation can never match a valid object.
        """
        out = []
        n_c = len(SPECIALS) + len(self.chars)
        for i in ids:
            i = int(i)
            if i == 4:
                return "".join(out), True
            if not len(SPECIALS) <= i < n_c:
                return "".join(out), False
            out.append(self.chars[i - len(SPECIALS)])
        return "".join(out), False

    def to_json(self) -> str:
        """Serialise (for checkpoints)."""
        return json.dumps({"chars": list(self.chars), "relations": list(self.relations)})

    @classmethod
    def from_json(cls, text: str) -> Tokenizer:
        """Inverse of :meth:`to_json`."""
        d = json.loads(text)
        return cls(tuple(d["chars"]), tuple(d["relations"]))


def encode_kg(tok: Tokenizer, kg: KnowledgeGraph) -> list[np.ndarray]:
    """Every fact of ``kg`` as an int32 id array, in the graph's order."""
    return [np.asarray(tok.encode_fact(*t), np.int32) for t in kg.triples]


def pack(facts: Sequence[np.ndarray], order: np.ndarray, row_len: int) -> np.ndarray:
    """Pack whole facts, in ``order``, into rows of ``row_len`` ids padded with ``<PAD>``.

    A fact never straddles two rows, so each row holds complete facts.

    Raises:
        ValueError: a fact longer than ``row_len``.
    """
    rows, cur, used = [], np.zeros(row_len, np.int32), 0
    for i in order:
        f = facts[int(i)]
        if len(f) > row_len:
            raise ValueError(f"fact {int(i)} has {len(f)} tokens, longer than rows of {row_len}")
        if used + len(f) > row_len:
            rows.append(cur)
            cur, used = np.zeros(row_len, np.int32), 0
        cur[used : used + len(f)] = f
        used += len(f)
    rows.append(cur)
    return np.stack(rows)


@dataclasses.dataclass
class FactStream:
    """Batches of packed rows; each epoch is a fresh seeded shuffle of the facts.

    The stream is a pure function of the cursor ``(epoch, row)``, which is all a
    checkpoint needs to resume it exactly.

    Attributes:
        facts: encoded facts.
        seq_len: model context; rows hold ``seq_len + 1`` ids (inputs and targets).
        batch_size: rows per batch.
        seed: shuffle seed.
    """

    facts: Sequence[np.ndarray]
    seq_len: int
    batch_size: int
    seed: int = 0

    def __post_init__(self):
        if len(self.facts) == 0:
            raise ValueError("cannot stream an empty set of facts")
        self._cache: dict[int, np.ndarray] = {}

    def epoch_rows(self, epoch: int) -> np.ndarray:
        """The packed rows of one epoch."""
        if epoch not in self._cache:
            rng = np.random.default_rng([self.seed, epoch])
            self._cache = {
                epoch: pack(self.facts, rng.permutation(len(self.facts)), self.seq_len + 1)
            }
        return self._cache[epoch]

    def tokens_per_epoch(self) -> int:
        """Non-pad tokens in one epoch."""
        return int(sum(len(f) for f in self.facts))

    def next_batch(self, cursor: tuple[int, int]) -> tuple[np.ndarray, tuple[int, int]]:
        """Return ``(rows, next_cursor)``; a batch may run across an epoch boundary."""
        epoch, row = cursor
        out = []
        while len(out) < self.batch_size:
            rows = self.epoch_rows(epoch)
            take = rows[row : row + self.batch_size - len(out)]
            out.extend(take)
            row += len(take)
            if row >= len(rows):
                epoch, row = epoch + 1, 0
        return np.stack(out), (epoch, row)
