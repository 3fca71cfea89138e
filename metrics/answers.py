"""Free-form answers to one of a closed set of candidate answers, or ``"other"``.

Deterministic, deliberately small rules: lower-casing, punctuation and article removal, plurals, a synonyms
table and a one-word negation rule ("blue, not red" -> blue). Each dataset gives its own candidates and
synonyms.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence

import numpy as np

OTHER = "other"
"""Label for answers that map to no single candidate."""

_ARTICLES = frozenset({"a", "an", "the"})
_NEGATIONS = frozenset({"not", "no", "isnt", "never", "nor", "neither", "aint", "wasnt"})
_NON_WORD = re.compile(r"[^0-9a-z]+")


def _tokens(text: str) -> list[str]:
    # Apostrophes are dropped before splitting so that "isn't" stays one token ("isnt").
    cleaned = _NON_WORD.sub(" ", text.casefold().replace("'", "").replace("\u2019", ""))
    return [token for token in cleaned.split() if token not in _ARTICLES]


def _plural_forms(word: str) -> tuple[str, ...]:
    return (word, word + "s", word + "es")


def _phrase_table(candidates: Sequence[str], synonyms: Mapping[str, str]) -> dict[tuple[str, ...], str]:
    if len(candidates) == 0:
        raise ValueError("candidates must not be empty")
    table: dict[tuple[str, ...], str] = {}
    # Synonyms first so that a candidate spelled like a synonym wins.
    for word, target in synonyms.items():
        words = _tokens(word)
        if target in candidates and words:
            *head, last = words
            for form in _plural_forms(last):
                table.setdefault((*head, form), target)
    for candidate in candidates:
        words = _tokens(candidate)
        if not words:
            raise ValueError(f"candidate {candidate!r} has no letters or digits")
        *head, last = words
        for form in _plural_forms(last):
            table[(*head, form)] = candidate
        table[tuple(words)] = candidate
    return table


@functools.lru_cache(maxsize=8)
def _cached_table(
    candidates: tuple[str, ...], synonyms: tuple[tuple[str, str], ...]
) -> dict[tuple[str, ...], str]:
    return _phrase_table(candidates, dict(synonyms))


def _table(candidates: Sequence[str], synonyms: Mapping[str, str] | None) -> dict[tuple[str, ...], str]:
    # Tables are built once per (candidates, synonyms): normalisation runs once per record.
    return _cached_table(tuple(candidates), tuple((synonyms or {}).items()))


def normalize_answer(
    text: str, candidates: Sequence[str], *, synonyms: Mapping[str, str] | None = None
) -> str:
    """Map a free-form answer to the single candidate it names, else ``"other"`` (none, or several).

    Each word or phrase is looked up as a candidate, a synonym (whose target is a candidate) or their plural;
    a match right after a negation ("not", "no", "isn't", ...) is discarded.

    >>> normalize_answer("It is blue, not red", ("red", "blue"))
    'blue'
    """
    if not isinstance(text, str):
        raise TypeError(f"answer must be a str, got {type(text).__name__}")
    table = _table(candidates, synonyms)
    return _match(text, table, max(len(key) for key in table))


def _named(tokens: list[str], table: dict[tuple[str, ...], str], longest: int) -> Iterator[str]:
    """The candidates ``tokens`` name, longest phrase first, skipping those right after a negation."""
    position = 0
    while position < len(tokens):
        for size in range(min(longest, len(tokens) - position), 0, -1):
            match = table.get(tuple(tokens[position : position + size]))
            if match is not None:
                if not (position > 0 and tokens[position - 1] in _NEGATIONS):
                    yield match
                position += size
                break
        else:
            position += 1


def _match(text: str, table: dict[tuple[str, ...], str], longest: int) -> str:
    found = set(_named(_tokens(text), table, longest))
    return found.pop() if len(found) == 1 else OTHER


def first_named_answer(
    text: str, candidates: Sequence[str], *, synonyms: Mapping[str, str] | None = None
) -> str | None:
    """The first candidate that ``text`` names in a finished word, by :func:`normalize_answer`'s rules.

    ``"Red"`` names nothing yet (it may become ``"Reddish"``) while ``"Red."`` names ``red``: used to stop
    generating once a short answer has named its candidate.

    >>> first_named_answer("The ball is blue.", ("red", "blue")), first_named_answer("Blue", ("red", "blue"))
    ('blue', None)
    """
    table = _table(candidates, synonyms)
    longest = max(len(key) for key in table)
    cleaned = text.replace("'", "").replace("\u2019", "")
    tokens = _tokens(cleaned)
    if tokens and cleaned[-1:].isalnum():
        tokens = tokens[:-1]  # the last word may not be finished yet
    return next(_named(tokens, table, longest), None)


def normalize_answers(
    texts: Iterable[str], candidates: Sequence[str], *, synonyms: Mapping[str, str] | None = None
) -> np.ndarray:
    """:func:`normalize_answer` over many answers (a 1-D str array); repeated strings are normalised once."""
    table = _table(candidates, synonyms)
    longest = max(len(key) for key in table)
    cache: dict[str, str] = {}
    out = []
    for text in texts:
        if not isinstance(text, str):
            raise TypeError(f"answer {len(out)} must be a str, got {type(text).__name__}")
        if text not in cache:
            cache[text] = _match(text, table, longest)
        out.append(cache[text])
    return np.array(out, dtype=str)
