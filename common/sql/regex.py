"""Java regular expressions (Spark's) -> RE2 (pyarrow's), within the subset both read alike.

The translator walks the pattern once. Constructs whose meaning differs are rewritten to RE2 that
matches what Java matches (``.`` excludes every Java line terminator, ``\\s`` includes \\x0B,
``\\uXXXX`` becomes ``\\x{XXXX}``); constructs RE2 lacks or reads differently are refused with
their name: backreferences, lookaround, possessive and atomic groups, inline flags, ``\\b``,
``\\p{..}``, ``\\Q..\\E``, class unions and intersections. ``$`` (which in Java also matches before
a final line terminator) is accepted at the end of the pattern where consuming that terminator
cannot change the result (rlike, and regexp_extract of a group other than 0).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from common.sql.errors import SqlCompileError

_LINE_TERMINATORS = r"\n\r\x{85}\x{2028}\x{2029}"
_DOT = f"[^{_LINE_TERMINATORS}]"
_JAVA_SPACE = r"\t\n\x0B\f\r "
_END = rf"(?:\r\n|[{_LINE_TERMINATORS}])?\z"
_SIMPLE_ESCAPES = set("dDwWtnrfaAz")
_REFUSED_ESCAPES = {
    "b": r"\b (Java's word boundary is Unicode-aware, RE2's is ASCII)",
    "B": r"\B (Java's word boundary is Unicode-aware, RE2's is ASCII)",
    "p": r"\p{..} (the Unicode classes differ)",
    "P": r"\P{..} (the Unicode classes differ)",
    "Q": r"\Q..\E quoting",
    "E": r"\E",
    "G": r"\G",
    "Z": r"\Z",
    "k": r"\k<name> backreference",
    "h": r"\h",
    "H": r"\H",
    "v": r"\v",
    "V": r"\V",
    "R": r"\R",
    "X": r"\X",
    "N": r"\N",
    "e": r"\e",
    "c": r"\c (control character)",
    "0": r"\0 (octal escape)",
}


@dataclass(frozen=True)
class Pattern:
    """A translated pattern: the RE2 text and its number of capturing groups."""

    re2: str
    java: str
    groups: int


def _refuse(sql: str, construct: str) -> SqlCompileError:
    return SqlCompileError(
        f"`{sql}`: the regex construct {construct} is outside the subset that Java (Spark) and RE2 (the "
        "compiled side) read alike; rewrite the pattern without it"
    )


def translate_pattern(java: str, sql: str, function: str, group: int | None = None) -> Pattern:
    """Translates ``java`` for ``function`` (rlike, regexp_extract, regexp_replace)."""
    out: list[str] = []
    groups = 0
    i, n = 0, len(java)
    while i < n:
        ch = java[i]
        if ch == "\\":
            text, i = _escape(java, i, sql, in_class=False)
            out.append(text)
            continue
        if ch == "[":
            text, i = _char_class(java, i, sql)
            out.append(text)
            continue
        if ch == "(":
            if java.startswith("(?", i):
                if java.startswith("(?:", i):
                    out.append("(?:")
                    i += 3
                    continue
                construct = {
                    "(?=": "lookahead (?=",
                    "(?!": "negative lookahead (?!",
                    "(?<=": "lookbehind (?<=",
                    "(?<!": "negative lookbehind (?<!",
                    "(?>": "atomic group (?>",
                }
                for prefix, name in construct.items():
                    if java.startswith(prefix, i):
                        raise _refuse(sql, name)
                if java.startswith("(?<", i):
                    raise _refuse(sql, "named group (?<name>")
                raise _refuse(sql, "inline flags (?...) (Java's (?i) folds ASCII only, RE2's all of Unicode)")
            groups += 1
            out.append(f"(?P<g{groups}>" if function == "regexp_extract" else "(")
            i += 1
            continue
        if ch == ".":
            out.append(_DOT)
            i += 1
            continue
        if ch == "$":
            end_ok = i == n - 1 and (function == "rlike" or (function == "regexp_extract" and group != 0))
            if not end_ok:
                raise _refuse(
                    sql,
                    "$ here (Java's $ also matches before a final line terminator); "
                    "it is accepted only at the end of a pattern in rlike or regexp_extract of a group",
                )
            out.append(_END)
            i += 1
            continue
        if ch in "*+?}":
            out.append(ch)
            i += 1
            if i < n and java[i] == "+":
                raise _refuse(sql, f"possessive quantifier {ch}+")
            continue
        if ch == "{":
            match = re.match(r"\{(\d+)(,(\d*))?\}", java[i:])
            if match is None:
                raise _refuse(sql, "a { that is not a quantifier {n,m}")
            out.append(match.group(0))
            i += len(match.group(0))
            if i < n and java[i] == "+":
                raise _refuse(sql, "possessive quantifier {n,m}+")
            continue
        out.append(ch)
        i += 1
    if function == "regexp_extract":
        if group is not None and not 0 <= group <= groups:
            raise SqlCompileError(
                f"`{sql}`: regexp_extract's group {group} does not exist; the regex has {groups} group(s)"
            )
        if group == 0:
            out = ["(?P<g0>", *out, ")"]
    re2 = "".join(out)
    _check_re2(re2, sql)
    return Pattern(re2=re2, java=java, groups=groups)


def _escape(java: str, i: int, sql: str, in_class: bool) -> tuple[str, int]:
    if i + 1 >= len(java):
        raise SqlCompileError(f"`{sql}`: the regex ends with a lone backslash")
    ch = java[i + 1]
    if ch.isdigit() and ch != "0":
        raise _refuse(sql, f"backreference \\{ch}")
    if ch in _REFUSED_ESCAPES:
        raise _refuse(sql, _REFUSED_ESCAPES[ch])
    if ch == "s":
        return (_JAVA_SPACE if in_class else f"[{_JAVA_SPACE}]"), i + 2
    if ch == "S":
        if in_class:
            raise _refuse(sql, r"\S inside a character class")
        return f"[^{_JAVA_SPACE}]", i + 2
    if ch in "DW" and in_class:
        raise _refuse(sql, f"\\{ch} inside a character class")
    if ch in _SIMPLE_ESCAPES:
        return "\\" + ch, i + 2
    if ch == "x":
        match = re.match(r"\\x([0-9a-fA-F]{2}|\{[0-9a-fA-F]+\})", java[i:])
        if match is None:
            raise SqlCompileError(f"`{sql}`: malformed \\x escape in the regex")
        return match.group(0), i + len(match.group(0))
    if ch == "u":
        match = re.match(r"\\u([0-9a-fA-F]{4})", java[i:])
        if match is None:
            raise SqlCompileError(f"`{sql}`: malformed \\u escape in the regex")
        return f"\\x{{{match.group(1)}}}", i + 6
    if ch.isalnum():
        raise _refuse(sql, f"\\{ch}")
    return "\\" + ch, i + 2  # an escaped punctuation character is itself in both


def _char_class(java: str, i: int, sql: str) -> tuple[str, int]:
    out = ["["]
    i += 1
    if i < len(java) and java[i] == "^":
        out.append("^")
        i += 1
    if i < len(java) and java[i] == "]":
        raise _refuse(sql, "] first in a character class")
    while i < len(java):
        ch = java[i]
        if ch == "]":
            out.append("]")
            return "".join(out), i + 1
        if ch == "[":
            raise _refuse(sql, "[ inside a character class (Java: union or POSIX class)")
        if ch == "&" and java.startswith("&&", i):
            raise _refuse(sql, "&& (class intersection)")
        if ch == "\\":
            text, i = _escape(java, i, sql, in_class=True)
            out.append(text)
            continue
        out.append(ch)
        i += 1
    raise SqlCompileError(f"`{sql}`: unclosed character class in the regex")


def _check_re2(re2: str, sql: str) -> None:
    import pyarrow as pa
    import pyarrow.compute as pc

    try:
        pc.match_substring_regex(pa.array([""]), re2)
    except pa.ArrowInvalid as error:
        raise SqlCompileError(f"`{sql}`: the regex does not compile: {error}") from None


def translate_replacement(java: str, sql: str, groups: int) -> str:
    """Java's replacement text (``$n`` group, ``\\x`` literal) -> RE2's rewrite (``\\n``, ``\\\\``)."""
    out, i = [], 0
    while i < len(java):
        ch = java[i]
        if ch == "\\":
            if i + 1 >= len(java):
                raise SqlCompileError(f"`{sql}`: the replacement ends with a lone backslash")
            nxt = java[i + 1]
            out.append("\\\\" if nxt == "\\" else nxt)
            i += 2
        elif ch == "$":
            match = re.match(r"\$(\d)(\d?)", java[i:])
            if match is None or match.group(2):
                raise SqlCompileError(
                    f"`{sql}`: the replacement's $ must be followed by one group digit ($0..$9)"
                )
            if int(match.group(1)) > groups:
                raise SqlCompileError(
                    f"`{sql}`: the replacement refers to group {match.group(1)} but the regex has "
                    f"{groups} (Spark fails every matching row)"
                )
            out.append("\\" + match.group(1))
            i += 2
        else:
            out.append(ch)
            i += 1
    return "".join(out)
