"""Run search filters: parse a filter string and compile it to DuckDB SQL.

A filter is a boolean expression over run fields::

    metrics.acc > 0.9 AND params.optimizer IN ('adam', 'sgd')
    min(metrics.loss) < 0.1 OR NOT tags.stage = 'dev'
    attributes.status = 'FINISHED' AND attributes.start_time >= '2024-01-31'
    tags.`my tag` LIKE 'exp-%' AND params."lr.init" <= 1e-3
    metrics.val_loss IS NULL

Fields
    ``metrics.KEY`` (latest value), ``min(metrics.KEY)``, ``max(metrics.KEY)``,
    ``params.KEY``, ``tags.KEY`` and ``attributes.NAME`` where NAME is one of
    run_id, name (run_name), status, user (user_name), start_time, end_time,
    experiment, experiment_id, git_commit, parent_run_id (parent).
    ``metric``/``param``/``tag``/``attribute``/``attr`` also work. Keywords,
    kinds and attribute names are case-insensitive; keys are not. A bare key
    may hold letters, digits and ``_ - / : .``; anything else goes in
    backquotes or double quotes (double the quote to embed it).
Operators
    ``= == != <> < <= > >=``, ``[NOT] IN (v, ...)``, ``[NOT] LIKE 'pat'``,
    ``[NOT] ILIKE 'pat'``, ``IS [NOT] NULL``. Precedence: NOT > AND > OR.
Values
    Numbers (``3``, ``-0.5``, ``1e-3``), strings (``'it''s'`` or ``"it's"``),
    ``true``/``false``.

Typing rules
    - Metrics are numbers; comparing one with a string or true/false is an error.
    - Params and tags are text. A number literal compares numerically against
      ``TRY_CAST(value AS DOUBLE)`` (non-numeric values never match); a string
      compares as text; ``true``/``false`` compare as the strings 'true'/'false'.
    - ``true``/``false`` are accepted only for params and tags.
    - Text attributes behave like params, ``experiment_id`` is a number, and
      ``start_time``/``end_time`` take ISO-8601 strings (checked when parsing).
    - LIKE/ILIKE need a text field and a quoted pattern.

Missing values follow SQL three-valued logic: a run without metric ``x`` matches
neither ``metrics.x > 1`` nor ``NOT metrics.x > 1`` (nor ``metrics.x != 1``);
use ``metrics.x IS NULL`` to find it, e.g. ``metrics.x <= 1 OR metrics.x IS NULL``.
NaN values compare as in Python: ``>``/``>=`` are false (DuckDB would otherwise
sort NaN above every number); NaN is not NULL.

User text never reaches the SQL string: keys and values are bound as ``?``
parameters, and the SQL only holds identifiers and operators from this
module's whitelists.

Examples
--------
>>> f = compile_filter("metrics.acc < 0.5 AND params.opt = 'sgd'")
>>> print(f.joins)
LEFT JOIN latest_metrics j0 ON j0.run_id = r.run_id AND j0.key = ? LEFT JOIN params j1 ON j1.run_id = r.run_id AND j1.key = ?
>>> f.where
'((j0.value < ?) AND (j1.value = ?))'
>>> f.params
['acc', 'opt', 0.5, 'sgd']
>>> try:
...     compile_filter("metrics.acc > AND params.x = 'a'")
... except FilterSyntaxError as err:
...     print(err)
Filter syntax error at position 14: expected a value after '>'
  metrics.acc > AND params.x = 'a'
                ^
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Callable, Optional, Union

from ..errors import ValidationError

__all__ = [
    "FilterSyntaxError", "CompiledFilter", "compile_filter", "parse_filter",
    "Operand", "Predicate", "And", "Or", "Not", "Node",
]


class FilterSyntaxError(ValidationError):
    """Invalid filter; ``position`` is the 0-based offset of the problem in ``text``."""

    def __init__(self, message: str, text: str, position: int):
        super().__init__(message, text, position)
        self.message, self.text, self.position = message, text, position

    def __str__(self) -> str:
        shown = re.sub(r"\s", " ", self.text)  # one char per char keeps the caret aligned
        return (f"Filter syntax error at position {self.position}: {self.message}\n"
                f"  {shown}\n  {' ' * self.position}^")


# ---------------------------------------------------------------- tree

@dataclass(frozen=True)
class Operand:
    """A field of a run a predicate compares: ``metrics.KEY``, ``min(metrics.KEY)``, ``params.KEY`` ...

    Attributes
    ----------
    kind : str
        ``"metrics"``, ``"params"``, ``"tags"`` or ``"attributes"``.
    key : str
        The key; for an attribute its canonical name (``"user"`` for ``user_name``).
    agg : str or None
        ``"min"`` or ``"max"`` for a metric's minimum or maximum; None for its latest value.
    pos : int
        Where the operand starts in the filter text (not compared).
    """

    kind: str                  # metrics | params | tags | attributes
    key: str                   # attribute names are canonical (e.g. 'user')
    agg: Optional[str] = None  # None | 'min' | 'max' (metrics only)
    pos: int = field(default=0, compare=False)


@dataclass(frozen=True)
class Predicate:
    """One comparison: ``operand op value``.

    Attributes
    ----------
    operand : Operand
        The field.
    op : str
        ``=``, ``<>``, ``<``, ``<=``, ``>``, ``>=``, ``[NOT] IN``, ``[NOT] LIKE``,
        ``[NOT] ILIKE``, ``IS NULL`` or ``IS NOT NULL``.
    value : object
        The literal; a tuple of literals for IN; None for IS [NOT] NULL.
    pos : int
        Where the predicate starts in the filter text (not compared).
    """

    operand: Operand
    op: str      # = <> < <= > >= IN, NOT IN, LIKE, NOT LIKE, ILIKE, NOT ILIKE, IS NULL, IS NOT NULL
    value: object = None  # literal; tuple of literals for IN; None for IS NULL
    pos: int = field(default=0, compare=False)


@dataclass(frozen=True)
class And:
    """All of ``args`` (two or more nodes) hold."""

    args: tuple


@dataclass(frozen=True)
class Or:
    """Any of ``args`` (two or more nodes) holds."""

    args: tuple


@dataclass(frozen=True)
class Not:
    """``arg`` does not hold (SQL's NOT: a missing value matches neither it nor its negation)."""

    arg: "Node"


Node = Union[Predicate, And, Or, Not]

_KINDS = {"metrics": "metrics", "metric": "metrics", "params": "params", "param": "params",
          "tags": "tags", "tag": "tags", "attributes": "attributes", "attribute": "attributes",
          "attr": "attributes"}
_TABLES = {"metrics": "latest_metrics", "params": "params", "tags": "tags"}
# attribute -> (SQL expression, type); the type decides which literals are allowed
_ATTRIBUTES = {
    "run_id": ("r.run_id", "text"), "name": ("r.name", "text"), "status": ("r.status", "text"),
    "user": ("r.user_name", "text"), "start_time": ("r.start_time", "time"),
    "end_time": ("r.end_time", "time"), "experiment": ("e.name", "text"),
    "experiment_id": ("r.experiment_id", "number"), "git_commit": ("r.git_commit", "text"),
    "parent_run_id": ("r.parent_run_id", "text"),
}
_AGG_COLUMNS = {None: "value", "min": "min_value", "max": "max_value"}
_ATTR_ALIASES = {"run_name": "name", "user_name": "user", "parent": "parent_run_id"}
_BARE_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_\-/:.]*\Z")

# ---------------------------------------------------------------- tokens

_TOKEN_RE = re.compile(r"""
    (?P<ws>\s+)
  | (?P<num>-?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)
  | (?P<word>[A-Za-z_][A-Za-z0-9_\-/:.]*)     # kind.key stays one word; split later
  | (?P<op>==|!=|<>|<=|>=|=|<|>)
  | (?P<punct>[(),])
""", re.VERBOSE)
_QUOTES = {"'": "STR", '"': "DQ", "`": "BQ"}


@dataclass(frozen=True)
class _Tok:
    type: str   # NUM STR DQ BQ WORD OP ( ) , EOF
    text: str   # source text, for messages
    value: object
    pos: int


def _tokenize(text: str) -> list:
    toks, i = [], 0
    while i < len(text):
        ch = text[i]
        if ch in _QUOTES:
            parts, j = [], i + 1
            while True:
                k = text.find(ch, j)
                if k < 0:
                    raise FilterSyntaxError(f"unterminated string: missing closing {ch}", text, i)
                parts.append(text[j:k])
                if not text.startswith(ch, k + 1):
                    break
                parts.append(ch)  # doubled quote stands for one quote
                j = k + 2
            toks.append(_Tok(_QUOTES[ch], text[i:k + 1], "".join(parts), i))
            i = k + 1
            continue
        m = _TOKEN_RE.match(text, i)
        if not m:
            raise FilterSyntaxError(f"unexpected character {ch!r}", text, i)
        kind, s = m.lastgroup, m.group()
        if kind == "num":
            # ints up to 15 digits are exact doubles; larger ones become floats (no overflow)
            value = int(s) if re.fullmatch(r"-?\d{1,15}", s) else float(s)
            toks.append(_Tok("NUM", s, value, i))
        elif kind != "ws":
            toks.append(_Tok(s if kind == "punct" else kind.upper(), s, s, i))
        i = m.end()
    toks.append(_Tok("EOF", "", None, len(text)))
    return toks


def _is_num(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)

# ---------------------------------------------------------------- parser


_MAX_DEPTH = 100  # nested NOT / parentheses


class _Parser:
    def __init__(self, text: str):
        self.text, self.toks, self.i = text, _tokenize(text), 0
        self.depth = 0

    def error(self, message: str, pos: int):
        return FilterSyntaxError(message, self.text, pos)

    def peek(self) -> _Tok:
        return self.toks[self.i]

    def next(self) -> _Tok:
        tok = self.toks[self.i]
        self.i = min(self.i + 1, len(self.toks) - 1)
        return tok

    def at_word(self, *words) -> bool:
        tok = self.peek()
        return tok.type == "WORD" and tok.text.lower() in words

    @staticmethod
    def show(tok: _Tok) -> str:
        return "end of filter" if tok.type == "EOF" else f"'{tok.text}'"

    def expect(self, ttype: str, message: str) -> _Tok:
        tok = self.next()
        if tok.type != ttype:
            raise self.error(f"{message}, got {self.show(tok)}", tok.pos)
        return tok

    def parse(self) -> Node:
        node = self.or_expr()
        tok = self.peek()
        if tok.type != "EOF":
            raise self.error(f"unexpected {self.show(tok)} after a complete filter "
                             "(missing AND/OR?)", tok.pos)
        return node

    def or_expr(self) -> Node:
        args = [self.and_expr()]
        while self.at_word("or"):
            self.next()
            args.append(self.and_expr())
        return args[0] if len(args) == 1 else Or(tuple(args))

    def and_expr(self) -> Node:
        args = [self.not_expr()]
        while self.at_word("and"):
            self.next()
            args.append(self.not_expr())
        return args[0] if len(args) == 1 else And(tuple(args))

    def not_expr(self) -> Node:
        if not (self.at_word("not") or self.peek().type == "("):
            return self.predicate()
        if self.depth >= _MAX_DEPTH:  # deeper would exhaust Python's stack: a RecursionError
            raise self.error(f"filter nested more than {_MAX_DEPTH} levels deep", self.peek().pos)
        self.depth += 1
        try:
            if self.at_word("not"):
                self.next()
                return Not(self.not_expr())
            opening = self.next()
            node = self.or_expr()
            self.expect(")", f"missing ')' to close '(' at position {opening.pos}")
            return node
        finally:
            self.depth -= 1

    def operand(self) -> Operand:
        tok = self.next()
        if tok.type == "WORD" and tok.text.lower() in ("min", "max") and self.peek().type == "(":
            self.next()
            inner = self.operand()
            if inner.kind != "metrics" or inner.agg:
                raise self.error(f"{tok.text.lower()}() applies only to metrics.KEY", inner.pos)
            self.expect(")", f"missing ')' after {tok.text}(metrics.{inner.key}")
            return Operand("metrics", inner.key, tok.text.lower(), tok.pos)
        if tok.type != "WORD":
            raise self.error(f"expected a field such as metrics.acc, got {self.show(tok)}", tok.pos)
        kind_text, dot, key = tok.text.partition(".")
        kind = _KINDS.get(kind_text.lower())
        if kind is None:
            if not dot:
                raise self.error(f"expected a field such as metrics.acc, got {self.show(tok)}",
                                 tok.pos)
            raise self.error(f"unknown kind '{kind_text}'; expected one of "
                             "metrics, params, tags, attributes", tok.pos)
        if not dot:
            raise self.error(f"expected '.' and a key after '{kind_text}'", tok.pos + len(tok.text))
        key_pos = tok.pos + len(kind_text) + 1
        if key:
            if not _BARE_KEY.match(key):
                raise self.error("a bare key must start with a letter or '_'; "
                                 "quote it with backquotes", key_pos)
        else:
            quoted = self.next()
            if quoted.type not in ("BQ", "DQ"):
                raise self.error(f"expected a key after '{tok.text}', got {self.show(quoted)}",
                                 quoted.pos)
            key, key_pos = quoted.value, quoted.pos
            if not key:
                raise self.error("empty key", key_pos)
        if kind == "attributes":
            name = _ATTR_ALIASES.get(key.lower(), key.lower())
            if name not in _ATTRIBUTES:
                allowed = ", ".join(sorted([*_ATTRIBUTES, *_ATTR_ALIASES]))
                raise self.error(f"unknown attribute '{key}'; expected one of {allowed}", key_pos)
            key = name
        return Operand(kind, key, None, tok.pos)

    def literal(self, where: str) -> _Tok:
        tok = self.next()
        if tok.type in ("NUM", "STR", "DQ"):
            return tok
        if tok.type == "WORD" and tok.text.lower() in ("true", "false"):
            return _Tok("BOOL", tok.text, tok.text.lower() == "true", tok.pos)
        raise self.error(f"expected a value {where}", tok.pos)

    def predicate(self) -> Predicate:
        operand = self.operand()
        tok = self.next()
        word = tok.text.lower() if tok.type == "WORD" else None
        if tok.type == "OP":
            op = {"==": "=", "!=": "<>"}.get(tok.text, tok.text)
            lit = self.literal(f"after '{tok.text}'")
            self.check_values(operand, [lit])
            return Predicate(operand, op, lit.value, operand.pos)
        negated = word == "not"
        if negated:
            tok = self.next()
            word = tok.text.lower() if tok.type == "WORD" else None
            if word not in ("in", "like", "ilike"):
                raise self.error(f"expected IN, LIKE or ILIKE after NOT, got {self.show(tok)}",
                                 tok.pos)
        prefix = "NOT " if negated else ""
        if word == "in":
            self.expect("(", "expected '(' after IN")
            if self.peek().type == ")":
                raise self.error("IN list is empty", self.peek().pos)
            lits = [self.literal("in the IN list")]
            while self.peek().type == ",":
                self.next()
                lits.append(self.literal("after ','"))
            self.expect(")", "missing ')' to close the IN list")
            self.check_values(operand, lits)
            return Predicate(operand, prefix + "IN", tuple(t.value for t in lits), operand.pos)
        if word in ("like", "ilike"):
            pattern = self.next()
            if pattern.type not in ("STR", "DQ"):
                raise self.error(f"{word.upper()} needs a quoted string pattern, "
                                 f"got {self.show(pattern)}", pattern.pos)
            if _field_type(operand) != "text":
                raise self.error(f"{word.upper()} needs a text field; "
                                 f"{_describe(operand)} is not text", operand.pos)
            return Predicate(operand, prefix + word.upper(), pattern.value, operand.pos)
        if word == "is":
            op = "IS NOT NULL" if self.at_word("not") else "IS NULL"
            if op == "IS NOT NULL":
                self.next()
            null = self.next()
            if not (null.type == "WORD" and null.text.lower() == "null"):
                raise self.error(f"expected NULL after IS, got {self.show(null)}", null.pos)
            return Predicate(operand, op, None, operand.pos)
        raise self.error("expected an operator (=, !=, <, <=, >, >=, IN, LIKE, ILIKE, IS NULL) "
                         f"after the field, got {self.show(tok)}", tok.pos)

    def check_values(self, operand: Operand, lits: list) -> None:
        """Reject literals that cannot be compared with ``operand`` (see module docstring)."""
        ftype, what = _field_type(operand), _describe(operand)
        for lit in lits:
            if lit.type == "BOOL" and operand.kind not in ("params", "tags"):
                raise self.error(f"true/false can only be compared with params and tags, "
                                 f"not {what}", lit.pos)
            if ftype == "number" and not _is_num(lit.value):
                noun = "are numbers" if operand.kind == "metrics" else "is a number"
                raise self.error(f"{what} {noun}; got a string", lit.pos)
            if ftype == "time":
                if _is_num(lit.value):
                    raise self.error(f"{what} is a timestamp; compare it with a string "
                                     "such as '2024-01-31 12:00'", lit.pos)
                try:
                    datetime.fromisoformat(lit.value)
                except ValueError:
                    raise self.error(f"not an ISO-8601 timestamp: {lit.text}", lit.pos) from None
        if ftype == "text":  # numbers compare numerically, strings as text: no mixing
            first = _is_num(lits[0].value)
            for lit in lits[1:]:
                if _is_num(lit.value) != first:
                    raise self.error("IN list mixes numbers and strings", lit.pos)


def _field_type(operand: Operand) -> str:
    if operand.kind == "attributes":
        return _ATTRIBUTES[operand.key][1]
    return "number" if operand.kind == "metrics" else "text"


def _describe(operand: Operand) -> str:
    return "metrics" if operand.kind == "metrics" else f"{operand.kind}.{operand.key}"


def parse_filter(text: str) -> Optional[Node]:
    """Parse ``text`` into a tree; ``None`` for an empty filter. Raises FilterSyntaxError."""
    if not text.strip():
        return None
    return _Parser(text).parse()

# ---------------------------------------------------------------- compiler


@dataclass
class CompiledFilter:
    """SQL pieces for ``SELECT r.run_id FROM runs r JOIN experiments e ON
    e.id = r.experiment_id {joins} WHERE {where}``, run with ``params``
    (in placeholder order: join keys first, then where values)."""
    joins: str
    where: str
    params: list
    tree: Optional[Node] = None


class _Compiler:
    def __init__(self, columns: Optional[Callable[[Operand], str]] = None):
        self.columns = columns    # operand -> column of a wide table, instead of joins
        self.aliases: dict = {}   # (kind, key) -> join alias; one join per distinct key
        self.joins: list = []
        self.join_params: list = []
        self.params: list = []

    def expr(self, node: Node) -> str:
        if isinstance(node, (And, Or)):
            sep = " AND " if isinstance(node, And) else " OR "
            return "(" + sep.join(self.expr(a) for a in node.args) + ")"
        if isinstance(node, Not):
            return f"(NOT {self.expr(node.arg)})"
        return self.predicate(node)

    def column(self, operand: Operand) -> str:
        if self.columns is not None:
            return self.columns(operand)
        if operand.kind == "attributes":
            return _ATTRIBUTES[operand.key][0]
        alias = self.aliases.get((operand.kind, operand.key))
        if alias is None:
            alias = self.aliases[(operand.kind, operand.key)] = f"j{len(self.aliases)}"
            self.joins.append(f"LEFT JOIN {_TABLES[operand.kind]} {alias} "
                              f"ON {alias}.run_id = r.run_id AND {alias}.key = ?")
            self.join_params.append(operand.key)
        return f"{alias}.{_AGG_COLUMNS[operand.agg]}"

    def predicate(self, p: Predicate) -> str:
        col, ftype = self.column(p.operand), _field_type(p.operand)
        if p.op.endswith("NULL"):
            return f"({col} {p.op})"
        values = list(p.value) if isinstance(p.value, tuple) else [p.value]
        slot, is_double = "?", p.operand.kind == "metrics"
        if ftype == "time":
            slot = "CAST(? AS TIMESTAMPTZ)"
            values = [datetime.fromisoformat(v).isoformat() for v in values]  # DuckDB-safe form
        elif ftype == "text" and _is_num(values[0]):
            col, is_double = f"TRY_CAST({col} AS DOUBLE)", True
        elif ftype == "text":
            values = [("true" if v else "false") if isinstance(v, bool) else v for v in values]
        self.params.extend(values)
        rhs = f"({', '.join([slot] * len(values))})" if p.op.endswith("IN") else slot
        sql = f"{col} {p.op} {rhs}"
        if is_double and p.op in (">", ">="):
            sql += f" AND NOT isnan({col})"  # DuckDB orders NaN above all numbers
        return f"({sql})"


def compile_filter(text: str, columns: Optional[Callable[[Operand], str]] = None) -> CompiledFilter:
    """Parse and compile a filter to SQL with bound parameters.

    Empty or whitespace-only ``text`` means no filter (``where == "TRUE"``).
    Raises FilterSyntaxError for invalid filters. With ``columns``, operands become
    the columns it names in one wide table (no joins); it must return only names or
    expressions the caller generated, never user text.
    """
    tree = parse_filter(text)
    if tree is None:
        return CompiledFilter("", "TRUE", [], None)
    c = _Compiler(columns)
    where = c.expr(tree)
    return CompiledFilter(" ".join(c.joins), where, c.join_params + c.params, tree)
