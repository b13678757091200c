"""The pieces every venue's frame generator shares (hypothesis, tests/unit/test_*_compiled.py).

A generated frame is a tree of nodes: raw JSON text (str), an `Obj` (a JSON object as [key JSON text, node] pairs),
or a list of nodes (a JSON array). A venue's generator builds its hot frames from these, edits an odd one with
`edit_object` (and its own edits), and writes it out with `written`: odd whitespace between the tokens, and now and
then trailing garbage or a cut. `mutated_frames` makes byte mutations of real frames.

The helpers take the composite's `draw` and draw in the order the generators did before they were shared, so a
derandomized test still gets the same examples. (Hypothesis also mixes the literals of every loaded local module
into what it draws: a new short literal here or in a test module may change the examples too.)
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from itertools import cycle, repeat
from typing import Any

import pytest
from hypothesis import strategies as st

from tests.captures import ws_frames


class Obj(list):  # type: ignore[type-arg]
    """A JSON object as [key JSON text, node] pairs: duplicate keys and odd key spellings stay possible."""


# a node is raw JSON text (str), an Obj, or a list of nodes (a JSON array)
Node = Any

WHITESPACE = ["", " ", "\n", "\t", "\r\n  ", "   "]


def render(node: Node, ws: Iterator[str]) -> str:
    if isinstance(node, Obj):
        if not node:
            return "{" + next(ws) + "}"
        return "{" + ",".join(f"{next(ws)}{k}{next(ws)}:{next(ws)}{render(v, ws)}{next(ws)}" for k, v in node) + "}"
    if isinstance(node, list):
        if not node:
            return "[" + next(ws) + "]"
        return "[" + ",".join(f"{next(ws)}{render(v, ws)}{next(ws)}" for v in node) + "]"
    return str(node)


def key(name: str) -> str:
    return json.dumps(name)


def text(value: str) -> str:
    """`value` as a JSON string token, non-ASCII left as it is."""
    return json.dumps(value, ensure_ascii=False)


DEEP = "[" * 2000 + "]" * 2000
#: what may follow a frame's last byte
GARBAGE = [" ", "\n", "x", "}", "]", ",", ",{}", "{}", "\x00", "null", '"', "\\", "\ufeff", "\u00e9"]

# -- odd values every venue tries --------------------------------------------------------------------------------

#: ints at the edges of int64 and uint64, and beyond
INT64_EDGES = [
    (1 << 63) - 1,
    1 << 63,
    -(1 << 63),
    -(1 << 63) - 1,
    (1 << 64) - 1,
    1 << 64,
    10**30,
]
#: times in ms at the edge of int64 ns
MS_EDGES = [
    9_223_372_036_854,  # ms that still fit int64 ns
    9_223_372_036_855,  # ms whose ns overflow int64
    -9_223_372_036_854,
    -9_223_372_036_855,
]
#: decimal strings float() reads or refuses and a plain decimal is not: exponents, a sign, bare points, empty,
#: spaces, inf
FLOAT_SPELLINGS = ["1e5", "1E-3", "+1", ".5", "5.", "", " 1", "1 ", "inf"]
#: decimal strings with leading zeros, or of 39 to 41 digits
DIGIT_RUNS = ["00.5", "-00", "0" * 39 + "1", "1" * 40, "1" * 41, "-" + "1" * 39, "9" * 39]
#: JSON string tokens whose escapes stand for plain ASCII
ESCAPED_ASCII = ['"\\u0041"', '"\\""', '"\\\\"', '"\\/"']
#: JSON's literals and empty containers
JSON_LITERALS = ["null", "true", "false", "[]", "{}"]

_json_leaf = (
    st.none()
    | st.booleans()
    | st.integers(-(1 << 70), 1 << 70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=6)
)
_json_value = st.recursive(
    _json_leaf,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3),
    max_leaves=8,
)
#: any JSON value as text (ASCII-escaped or raw UTF-8)
ANY_JSON = st.builds(lambda value, ascii_: json.dumps(value, ensure_ascii=ascii_), _json_value, st.booleans())

_plain_leaf = (
    st.none()
    | st.booleans()
    | st.integers(-(10**12), 10**12)
    | st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E, exclude_characters='"\\'), max_size=6)
)
#: JSON the compiled path can skip (printable ASCII, no escapes, no exponent): it declines everything else
PLAIN_JSON = st.recursive(
    _plain_leaf,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text("abcXYZ_", max_size=4), inner, max_size=3),
    max_leaves=8,
).map(lambda value: json.dumps(value, separators=(",", ":")))


def decimal_text(units: int, places: int) -> str:
    """`units` / 10**places as a plain decimal: decimal_text(5, 2) == "0.05"."""
    digits = str(units).rjust(places + 1, "0")
    return f"{digits[:-places]}.{digits[-places:]}" if places else digits


def odd_values(
    tokens: Sequence[str], numbers: Sequence[str], ints: Sequence[int], *more: st.SearchStrategy[str]
) -> st.SearchStrategy[str]:
    """Odd values (JSON text) for any field: raw `tokens`, number tokens, `ints`, a venue's `more`, then NaN and
    Infinity (not JSON), short strings and any JSON."""
    return st.one_of(
        st.sampled_from(tokens),
        st.sampled_from(numbers),
        st.sampled_from(ints).map(str),
        *more,
        st.floats().map(json.dumps),  # NaN, Infinity: not JSON
        st.text(max_size=5).map(text),
        ANY_JSON,
    )


#: a plain decimal string, as most venues write prices and sizes
DECIMAL = st.builds(decimal_text, st.integers(0, 10**10), st.integers(0, 8))
#: how many adversarial edits an odd frame gets (and byte mutations a real one): shrinks to none
EDITS = st.sampled_from([0, 1, 1, 2, 3])

# -- edits and writing out ---------------------------------------------------------------------------------------

#: the edits `edit_object` makes: any object of any venue's frame may take them
OBJECT_EDITS = ("replace", "delete", "duplicate", "escape key")


def edit_object(draw: Any, edit: str, target: Obj, odd_value: st.SearchStrategy[str]) -> None:
    """One of OBJECT_EDITS on `target`: a value replaced by an odd one, a field deleted or written twice, or a key's
    first character written as a \\u escape. An empty object stays as it is."""
    if not target:
        return
    if edit == "replace":
        at = draw(st.integers(0, len(target) - 1))
        target[at] = (target[at][0], draw(odd_value))
    elif edit == "delete":
        del target[draw(st.integers(0, len(target) - 1))]
    elif edit == "duplicate":
        name, value = target[draw(st.integers(0, len(target) - 1))]
        value = draw(st.sampled_from([value, "null"]) | odd_value)
        target.insert(draw(st.integers(0, len(target))), (name, value))
    elif edit == "escape key":
        at = draw(st.integers(0, len(target) - 1))
        name = json.loads(target[at][0])
        if name:
            escaped = "".join(f"\\u{ord(c):04x}" for c in name[:1]) + json.dumps(name[1:])[1:-1]
            target[at] = (f'"{escaped}"', target[at][1])
    else:
        raise ValueError(f"not an object edit: {edit!r}")


def written(draw: Any, top: Node, odd: bool) -> bytes:
    """`top` as UTF-8 JSON with drawn whitespace; an odd frame may get trailing garbage or be cut short."""
    spacing = draw(st.lists(st.sampled_from(WHITESPACE), max_size=6))
    json_text = draw(st.sampled_from(["", " ", "\n"])) + render(top, cycle(spacing) if spacing else repeat(""))
    raw = json_text.encode("utf-8", "surrogatepass")
    ending = draw(st.sampled_from(["", "", "", "garbage", "truncate"])) if odd else ""
    if ending == "garbage":
        raw += draw(st.sampled_from(GARBAGE)).encode()
    elif ending == "truncate":
        raw = raw[: draw(st.integers(0, len(raw) - 1))]
    return raw


def frames_and_cuts(draw: Any, frame: st.SearchStrategy[bytes], max_frames: int) -> tuple[list[bytes], list[int]]:
    """1 to `max_frames` frames, and up to 4 frame indexes to flush after."""
    frames = draw(st.lists(frame, min_size=1, max_size=max_frames))
    cuts = draw(st.lists(st.integers(0, len(frames) - 1), max_size=4))
    return frames, cuts


@st.composite
def sessions(draw: Any, frame: st.SearchStrategy[bytes], max_frames: int) -> tuple[list[bytes], list[int]]:
    return frames_and_cuts(draw, frame, max_frames)


# -- byte mutations of real frames -------------------------------------------------------------------------------


def seed_frames(captures: Sequence[str], markers: Sequence[bytes]) -> list[bytes]:
    """The 3 shortest frames (short keeps examples fast) holding each of `markers`, from the real `captures`; none
    when the captures are absent."""
    try:
        frames = [frame for name in captures for frame in ws_frames(name)]
    except pytest.skip.Exception:
        return []
    picked: list[bytes] = []
    for marker in markers:
        picked += sorted((f for f in frames if marker in f), key=len)[:3]
    return picked


#: bytes a mutation inserts (and any other byte)
INSERTS = b'"\\{}[],:0-.e \x00\x80\xff'


def mutated_frames(draw: Any, seeds: Sequence[bytes], inserts: bytes = INSERTS) -> tuple[list[bytes], list[int]]:
    """1 to 10 of `seeds` with bytes flipped, inserted, deleted, set or cut off, and up to 3 indexes to flush after."""
    frames = []
    for _ in range(draw(st.integers(1, 10))):
        raw = bytearray(draw(st.sampled_from(seeds or [b"{}"])))
        for _ in range(draw(EDITS)):
            op = draw(st.sampled_from(["flip", "insert", "delete", "truncate", "set"]))
            at = draw(st.integers(0, max(len(raw) - 1, 0)))
            if op == "flip" and raw:
                raw[at] ^= 1 << draw(st.integers(0, 7))
            elif op == "insert":
                raw.insert(at, draw(st.sampled_from(inserts) | st.integers(0, 255)))
            elif op == "delete" and raw:
                del raw[at]
            elif op == "truncate":
                del raw[at:]
            elif op == "set" and raw:
                raw[at] = draw(st.integers(0, 255))
        frames.append(bytes(raw))
    cuts = draw(st.lists(st.integers(0, len(frames) - 1), max_size=3))
    return frames, cuts


@st.composite
def mutated_sessions(draw: Any, seeds: Sequence[bytes], inserts: bytes = INSERTS) -> tuple[list[bytes], list[int]]:
    return mutated_frames(draw, seeds, inserts)
