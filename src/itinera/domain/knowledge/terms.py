"""Text queries reduced to their distinct terms: the bound on what one text search costs."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass

from itinera.errors import InvalidInputError
from itinera_client.schemas.knowledge import MAX_QUERY_TERMS

# websearch syntax: an optional "-" (blanks may follow it, as in PostgreSQL), then a
# quoted phrase (an unclosed quote runs to the end) or a run of anything but blanks
# and quotes.
_ELEMENT = re.compile(r'(?:(-)\s*)?(?:"([^"]*)"?|([^\s"]+))')
_WORD_RUN = re.compile(r"[^\W_]+")


def words(text: str) -> Iterator[str]:
    """The words of ``text`` as PostgreSQL's parser reads them: runs of letters and digits.

    Characters that Python counts as alphanumeric but the parser treats as
    separators (the "other numbers" ², ½, ①) split a word here too, so that one
    word here is never several operands of the tsquery.
    """
    for run in _WORD_RUN.findall(text):
        if run.isascii() or run.isalpha():
            yield run
            continue
        start = 0
        for end, char in enumerate(run):
            if unicodedata.category(char) == "No":
                if end > start:
                    yield run[start:end]
                start = end + 1
        if start < len(run):
            yield run[start:]


def first_distinct_words(text: str, limit: int = MAX_QUERY_TERMS) -> list[str]:
    """Up to ``limit`` words of ``text``, each the first occurrence of its lower-case form."""
    seen: dict[str, str] = {}
    for word in words(text):
        seen.setdefault(word.lower(), word)
        if len(seen) == limit:
            break
    return list(seen.values())


@dataclass(frozen=True, slots=True)
class _Item:
    """A word or quoted phrase of a websearch query (a hyphenated word is a phrase)."""

    negated: bool
    words: tuple[str, ...]

    @property
    def key(self) -> tuple[bool, tuple[str, ...]]:
        return self.negated, tuple(word.lower() for word in self.words)

    def render(self) -> str:
        # Always quoted: a lone word "or" would otherwise read as the operator.
        return f'{"-" if self.negated else ""}"{" ".join(self.words)}"'


def distinct_websearch(query_text: str) -> str:
    """``query_text`` in websearch syntax with its repeats dropped; at most 32 operands.

    A term is a lower-case word with its sign (``manta`` and ``-manta`` are
    two); more than 32 distinct terms are refused. Repeats that cannot change
    the result go first: an item twice in one ``or`` branch, a branch twice.
    Should more than 32 words remain (a word in many branches, a phrase that
    repeats a word), each term is kept only at its first occurrence. The bound
    is on operands because ``ts_rank_cd``'s work on every matching row grows
    with their number (it clears a position buffer per query item), and
    PostgreSQL keeps repeats: "manta" 333 times is 333 operands.
    """
    branches = _branches(query_text)
    terms = {(item.negated, word) for branch in branches for item in branch for word in item.key[1]}
    if len(terms) > MAX_QUERY_TERMS:
        raise InvalidInputError.at(
            "/query_text", f"query_text has more than {MAX_QUERY_TERMS} distinct terms"
        )
    if sum(len(item.words) for branch in branches for item in branch) > MAX_QUERY_TERMS:
        branches = _first_occurrences(branches)
    return " or ".join(" ".join(item.render() for item in branch) for branch in branches)


def _branches(query_text: str) -> list[list[_Item]]:
    """The query's ``or`` branches, each without repeated items, no branch twice."""
    branches: list[list[_Item]] = []
    branch_keys: set[frozenset[tuple[bool, tuple[str, ...]]]] = set()
    branch: dict[tuple[bool, tuple[str, ...]], _Item] = {}

    def close_branch() -> None:
        key = frozenset(branch)
        if branch and key not in branch_keys:
            branch_keys.add(key)
            branches.append(list(branch.values()))
        branch.clear()

    for match in _ELEMENT.finditer(query_text):
        sign, phrase, token = match.groups()
        if phrase is None and not sign and token.lower() == "or":
            close_branch()
            continue
        item = _Item(bool(sign), tuple(words(token if phrase is None else phrase)))
        if item.words:
            branch.setdefault(item.key, item)
    close_branch()
    return branches


def _first_occurrences(branches: list[list[_Item]]) -> list[list[_Item]]:
    seen: set[tuple[bool, str]] = set()
    kept_branches = []
    for branch in branches:
        kept_items = []
        for item in branch:
            kept = []
            for word in item.words:
                if (term := (item.negated, word.lower())) not in seen:
                    seen.add(term)
                    kept.append(word)
            if kept:
                kept_items.append(_Item(item.negated, tuple(kept)))
        if kept_items:
            kept_branches.append(kept_items)
    return kept_branches
