"""Undo the word-level tokenisation of WikiText and LM1B before BPE (as MDLM does).

Both corpora ship text with spaces around punctuation (``word , word``) and, for
WikiText, ``@-@`` / ``@,@`` / ``@.@`` inside numbers and compounds. Each function
rewrites one document back to ordinary spacing; they are pure string rewrites.
"""

from __future__ import annotations

import re

_AT_JOINS = ((" @-@ ", "-"), (" @,@ ", ","), (" @.@ ", "."))
_CLOSE_PUNCT = re.compile(r" ([,.;:!?%])(?= |$)")
_POSSESSIVE = re.compile(r" '(s|re|ve|ll|d|m)\b")
_NOT = re.compile(r" n't\b")
_BRACKETS = (re.compile(r"\( (.*?) \)"), re.compile(r"\[ (.*?) \]"), re.compile(r"\" (.*?) \""))
_HEADING = re.compile(r"(?<![^\n ])((?:= )+=)(?= |$)")


def _brackets(text: str) -> str:
    for pattern, (left, right) in zip(_BRACKETS, ("()", "[]", '""'), strict=True):
        text = pattern.sub(lambda m, a=left, b=right: f"{a}{m.group(1)}{b}", text)
    return text


def wikitext(text: str) -> str:
    """``1 @,@ 000 , the ( old ) man 's`` -> ``1,000, the (old) man's``; ``= = T = =`` -> ``== T ==``."""
    for old, new in _AT_JOINS:
        text = text.replace(old, new)
    text = _HEADING.sub(lambda m: m.group(1).replace(" ", ""), text)
    text = _POSSESSIVE.sub(r"'\1", _NOT.sub("n't", text))
    text = _CLOSE_PUNCT.sub(r"\1", text)
    return _brackets(text).replace(" \n", "\n").replace("\n ", "\n")


def lm1b(text: str) -> str:
    """``He said : " it 's $ 5 . "`` -> ``He said: "it's $5."`` (LM1B's sentence tokenisation)."""
    text = text.replace("http : / / ", "http://").replace("https : / / ", "https://")
    text = _POSSESSIVE.sub(r"'\1", _NOT.sub("n't", text))
    text = _CLOSE_PUNCT.sub(r"\1", text)
    text = text.replace(" / ", "/").replace("$ ", "$").replace("£ ", "£")
    return _brackets(text)


DETOKENIZERS = {"wikitext": wikitext, "lm1b": lm1b}
