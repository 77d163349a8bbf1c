"""Number patterns of the dial plan (``[[routes]]`` ``match``/``caller``, ``[lists]``).

Operators coming from Asterisk write ``_9NXXXXXX`` and from FreeSWITCH write regular
expressions; both work here, next to plain numbers and named number lists:

* ``95598``: exactly this number.
* ``_NXXXXXX``: an Asterisk extension pattern (always starts with ``_``). ``X`` = 0-9,
  ``Z`` = 1-9, ``N`` = 2-9, ``[1-5,7]`` = one digit of the set, ``.`` = one or more of
  anything further, ``!`` = zero or more. So ``_9.`` is "everything starting with 9 and
  longer than it", the usual "dial 9 for an outside line" route.
* ``re:REGEX``: a Python regular expression matched against the whole number.
* ``list:NAME``: any entry of ``[lists] NAME = [...]`` (each entry one of the above),
  e.g. a VIP list for ``caller``.

Compiled once at config load (:func:`compile_pattern`); matching is one ``fullmatch``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

__all__ = ["NumberPattern", "PatternError", "compile_pattern", "rewrite"]


class PatternError(ValueError):
    """A pattern that cannot be compiled; the message says what is wrong."""


_ASTERISK_CLASSES = {"X": "[0-9]", "Z": "[1-9]", "N": "[2-9]"}


def _asterisk_to_regex(text: str) -> str:
    """``_NXX.`` -> a regular expression (the pattern without its leading ``_``)."""
    out: list[str] = []
    i = 0
    while i < len(text):
        c = text[i]
        upper = c.upper()
        if upper in _ASTERISK_CLASSES:
            out.append(_ASTERISK_CLASSES[upper])
        elif c == "[":
            end = text.find("]", i)
            if end < 0:
                raise PatternError(f"unclosed [ at position {i + 1}")
            body = text[i + 1:end].replace(",", "")
            if not body or not re.fullmatch(r"[0-9*#A-Da-d]([-][0-9]|[0-9*#A-Da-d])*", body):
                raise PatternError(f"bad digit set [{text[i + 1:end]}]")
            out.append("[" + re.sub(r"([*#])", r"\\\1", body) + "]")
            i = end
        elif c == ".":
            out.append(".+")
        elif c == "!":
            out.append(".*")
        elif c in "0123456789*#+ABCDabcd":
            out.append(re.escape(c))
        elif c == "-":  # readability separator, as Asterisk allows: _1-800-NXX-XXXX
            pass
        else:
            raise PatternError(f"{c!r} is not a digit, X, Z, N, [set], . or !")
        i += 1
    if not out:
        raise PatternError("empty pattern after _")
    return "".join(out)


@dataclass(frozen=True, slots=True)
class NumberPattern:
    """A compiled number pattern; ``text`` is what the config said."""

    text: str
    regex: re.Pattern[str]

    def matches(self, number: str) -> bool:
        return self.regex.fullmatch(number) is not None


def _one_regex(text: str) -> str:
    if text.startswith("re:"):
        try:
            re.compile(text[3:])
        except re.error as exc:
            raise PatternError(f"bad regular expression ({exc})") from exc
        return f"(?:{text[3:]})"
    if text.startswith("_"):
        return f"(?:{_asterisk_to_regex(text[1:])})"
    if not text:
        raise PatternError("empty number")
    return re.escape(text)


def compile_pattern(text: str, lists: Mapping[str, tuple[str, ...]] | None = None) -> NumberPattern:
    """Compile a ``match``/``caller`` pattern (see the module docstring).

    :param lists: the site's ``[lists]`` for ``list:NAME``.
    :raises PatternError: what is wrong with it.
    """
    if text.startswith("list:"):
        name = text[5:]
        if lists is None or name not in lists:
            known = ", ".join(sorted(lists or ())) or "none defined"
            raise PatternError(f"no list {name!r} in [lists] ({known})")
        entries = lists[name]
        if not entries:
            return NumberPattern(text, re.compile(r"(?!)"))  # an empty list matches nothing
        body = "|".join(_one_regex(e) for e in entries)
    else:
        body = _one_regex(text)
    return NumberPattern(text, re.compile(body))


def rewrite(number: str, strip: int = 0, prepend: str = "") -> str:
    """The number sent out on a trunk: ``strip`` leading digits removed, ``prepend``
    added (``_9.`` with ``strip = 1`` dials 9-0755... as 0755...)."""
    return prepend + number[strip:]
