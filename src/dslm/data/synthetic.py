"""A small deterministic synthetic corpus (``source: synthetic``) for fast tests.

Documents are a few sentences drawn from a tiny English-like grammar
(``Det Adj? Noun Verb Det Noun (Prep Det Noun)? .``) with a fixed seed, so the same
call always returns the same text. The grammar has real structure (agreement of
articles, optional phrases) that a small model can learn in seconds.
"""

from __future__ import annotations

import random

DETERMINERS = ("the", "a", "every", "some")
ADJECTIVES = ("small", "red", "quiet", "old", "happy", "bright")
NOUNS = ("cat", "dog", "bird", "child", "river", "garden", "teacher", "window")
VERBS = ("sees", "likes", "follows", "finds", "watches", "helps")
PREPOSITIONS = ("near", "behind", "under", "beside")
DEFAULT_DOCUMENTS = 2000


def _noun_phrase(rng: random.Random) -> str:
    words = [rng.choice(DETERMINERS)]
    if rng.random() < 0.4:
        words.append(rng.choice(ADJECTIVES))
    words.append(rng.choice(NOUNS))
    return " ".join(words)


def sentence(rng: random.Random) -> str:
    """One sentence of the grammar, capitalised and ending in a full stop."""
    parts = [_noun_phrase(rng), rng.choice(VERBS), _noun_phrase(rng)]
    if rng.random() < 0.3:
        parts += [rng.choice(PREPOSITIONS), _noun_phrase(rng)]
    text = " ".join(parts)
    return text[0].upper() + text[1:] + "."


def synthetic_documents(n: int = DEFAULT_DOCUMENTS, seed: int = 0) -> list[str]:
    """``n`` documents of 2-6 sentences each, identical for the same (n, seed)."""
    rng = random.Random(seed)
    return [" ".join(sentence(rng) for _ in range(rng.randint(2, 6))) for _ in range(n)]
