"""Read cited statements out of a model's JSON answer while it is still being written.

Chat answers are grammar-constrained JSON, `{"statements": [{"text": "…", "segments": [3, 4]}, …]}`, so every
statement carries its citations. The browser should see the text as it is generated, not the raw JSON, so
`StatementStream.feed()` takes the streamed pieces and reports what can be shown at once: the characters of
the current statement's text, and each statement with its segment numbers when its object closes.

The same reader is a tolerant parser for a reply cut short (a token limit, a lost connection): statements that
were complete are kept, a half-written one is dropped. A "statement" is any object inside an array under the
key "statements", at any depth, so sectioned answers parse too (each statement knows its section heading).
"""

from __future__ import annotations

from dataclasses import dataclass, field

_ESCAPES = {'"': '"', "\\": "\\", "/": "/", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t"}


@dataclass
class StreamedStatement:
    text: str = ""
    segments: list[int] = field(default_factory=list)
    section: str | None = None  # the "heading" of the enclosing object, when there is one


@dataclass
class _Container:
    kind: str                  # "obj" or "arr"
    key_in_parent: str | None  # the key this container is the value of (arrays: of the enclosing object)
    cur_key: str | None = None
    expect_key: bool = True
    strings: dict[str, str] = field(default_factory=dict)  # string values seen in this object
    statement: StreamedStatement | None = None


class StatementStream:
    def __init__(self) -> None:
        self._stack: list[_Container] = []
        self._in_string = False
        self._string_is_key = False
        self._chars: list[str] = []
        self._escape: str | None = None  # None; "" right after a backslash; "uXXXX" while reading one
        self._number = ""
        self.statements: list[StreamedStatement] = []

    # --- where are we ---------------------------------------------------------------------------

    def _statement_obj(self, depth_from_top: int = 0) -> _Container | None:
        i = len(self._stack) - 1 - depth_from_top
        if i < 1:
            return None
        c, parent = self._stack[i], self._stack[i - 1]
        if c.kind == "obj" and parent.kind == "arr" and parent.key_in_parent == "statements":
            return c
        return None

    def _in_text(self) -> bool:
        top = self._statement_obj()
        return top is not None and not self._string_is_key and top.cur_key == "text"

    def _in_segments(self) -> bool:
        if not self._stack or self._stack[-1].kind != "arr" or self._stack[-1].key_in_parent != "segments":
            return False
        return self._statement_obj(1) is not None

    def _section(self) -> str | None:
        # the nearest enclosing object outside the statements array that has a "heading"
        for c in reversed(self._stack[:-2]):
            if c.kind == "obj" and "heading" in c.strings:
                return c.strings["heading"]
        return None

    # --- feeding --------------------------------------------------------------------------------

    def feed(self, piece: str) -> list[tuple[str, object]]:
        """Consume a piece of the JSON; return events: ("text", str) for new characters of the current
        statement's text, ("statement", StreamedStatement) when a statement is complete."""
        events: list[tuple[str, object]] = []
        text_out: list[str] = []

        def flush_text() -> None:
            if text_out:
                events.append(("text", "".join(text_out)))
                text_out.clear()

        for ch in piece:
            if self._in_string:
                out = self._string_char(ch)
                if out is not None and self._in_text():
                    text_out.append(out)
                    self._stack[-1].statement.text += out
                continue
            if ch in "0123456789-":
                self._number += ch
                continue
            self._flush_number()
            if ch == '"':
                self._in_string, self._chars, self._escape = True, [], None
                top = self._stack[-1] if self._stack else None
                self._string_is_key = top is not None and top.kind == "obj" and top.expect_key
            elif ch == "{":
                key = self._value_key()
                self._stack.append(_Container("obj", key))
                if self._statement_obj() is not None:
                    self._stack[-1].statement = StreamedStatement(section=self._section())
            elif ch == "[":
                self._stack.append(_Container("arr", self._value_key()))
            elif ch in "}]":
                if not self._stack:
                    continue
                statement = self._statement_obj()
                closed = self._stack.pop()
                if ch == "}" and statement is closed and closed.statement is not None:
                    flush_text()
                    self.statements.append(closed.statement)
                    events.append(("statement", closed.statement))
            elif ch == ":":
                if self._stack and self._stack[-1].kind == "obj":
                    self._stack[-1].expect_key = False
            elif ch == ",":
                if self._stack and self._stack[-1].kind == "obj":
                    self._stack[-1].expect_key = True
        flush_text()
        return events

    def _value_key(self) -> str | None:
        top = self._stack[-1] if self._stack else None
        if top is None:
            return None
        return top.cur_key if top.kind == "obj" else top.key_in_parent

    def _flush_number(self) -> None:
        if not self._number:
            return
        number, self._number = self._number, ""
        if self._in_segments():
            try:
                self._stack[-2].statement.segments.append(int(number))
            except ValueError:
                pass  # "-" or "1.5": not a segment number

    def _string_char(self, ch: str) -> str | None:
        """One character inside a string: the decoded character to append, or None."""
        if self._escape is not None:
            if self._escape == "":
                if ch == "u":
                    self._escape = "u"
                    return None
                self._escape = None
                out = _ESCAPES.get(ch, ch)
                self._chars.append(out)
                return out
            self._escape += ch
            if len(self._escape) < 5:
                return None
            code, self._escape = self._escape[1:], None
            try:
                out = chr(int(code, 16))
            except ValueError:
                return None
            if 0xD800 <= ord(out) <= 0xDFFF:
                return None  # half a surrogate pair: the model writes UTF-8 for what matters here
            self._chars.append(out)
            return out
        if ch == "\\":
            self._escape = ""
            return None
        if ch == '"':
            self._end_string()
            return None
        self._chars.append(ch)
        return ch

    def _end_string(self) -> None:
        self._in_string = False
        value = "".join(self._chars)
        top = self._stack[-1] if self._stack else None
        if top is None or top.kind != "obj":
            return
        if self._string_is_key:
            top.cur_key = value
        elif top.cur_key is not None:
            top.strings[top.cur_key] = value


def parse_statements(text: str) -> list[StreamedStatement]:
    """The complete statements of a (possibly cut-off) JSON answer."""
    reader = StatementStream()
    reader.feed(text)
    return reader.statements
