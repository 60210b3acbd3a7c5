"""The sliver of Orca's SpEL that webhook stages and MPT v2 templates use.

Supported: property paths over maps (``execution.id``, ``trigger.user``,
``parameterValues['x']``, ``templateVariables.x``), list indexes (``routes[0]``),
number/string/boolean/null literals, ``+ - * /``, comparisons, ``&& || !`` (and their word
forms), the ternary ``c ? a : b``, the methods ``size()``/``isEmpty()``/``length()`` and the
helper ``#toJson``, with parentheses. Rules, each from the source:

* kork ``ExpressionTransform.transform``: a value that is exactly one ``${...}`` keeps its
  type; mixed text (a ``CompositeStringExpression``) becomes a string. An expression that
  throws leaves the **whole** string raw (an ERROR in the summary). A part that evaluates to
  ``null`` stays as its literal ``${...}`` while the other parts are replaced (an INFO in
  the summary); a lone expression that is ``null`` keeps the raw string.
* kork ``allowlist/MapPropertyAccessor`` with ``allowUnknownKeys`` true (Orca's
  ``ExpressionAware.processEntries`` and ``V2Util.planPipeline`` both pass ``true``): an
  unknown map key reads as ``null``; a property of ``null`` throws. Indexing a map
  (``['x']``) is Spring's ``Indexer``: ``Map.get``, so a missing key is ``null`` too.
* Spring ``OpDivide``: two integers divide as integers, truncating towards zero (``7/2`` is
  3, ``-7/2`` is -3); integer division by zero throws. ``OpPlus``: if either side is a
  String the other is converted to one and they are concatenated (``'x' + 1`` is ``"x1"``).
  ``OpMultiply``: String times int repeats the string (only in that order). Booleans take
  part in no arithmetic. (A double divided by zero, Infinity in Java, is a failure here:
  no template divides by zero.)

* Spring ``Ternary``, ``OpAnd``, ``OpOr``: only the operands needed are evaluated (a
  ternary guarding an index, ``l.size() > 2 ? l[2] : ''``, never reads past the end); their
  operands must be Booleans. Spring ``Indexer`` on a List: an index past the end throws.
* kork ``ExpressionsSupport.JsonExpressionFunctionProvider.toJson``: Jackson's
  ``writeValueAsString`` (``null`` for null), refused when the JSON holds ``${``; Orca
  ``UrlExpressionFunctionProvider.readJson``: the reverse.
* kork ``ExpressionTransform`` + ``V2Util.planPipeline``: a failed (or null) expression
  naming ``templateVariables.`` aborts planning ("Missing template variable values"); see
  ``orca.plan_templated_pipeline``.

Failures are recorded in ``failures`` (never raised), as Orca records them in the stage's
expression summary.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

_OPENERS, _CLOSERS = "{[(", "}])"


def spans(text: str) -> list[tuple[int, int, str]]:
    """Each ``${...}`` in ``text`` as (start, end, body). Spring's
    ``TemplateAwareExpressionParser.skipToCorrectEndSuffix``: the closing ``}`` is the first
    one outside quoted literals (``'...'``, ``"..."``) and nested brackets, so a body may
    hold ``'{'`` or an inline list."""
    found: list[tuple[int, int, str]] = []
    position = 0
    while (start := text.find("${", position)) >= 0:
        stack: list[str] = []
        at, end = start + 2, -1
        while at < len(text):
            char = text[at]
            if char in "'\"":
                close = text.find(char, at + 1)
                if close < 0:
                    break
                at = close + 1
                continue
            if char == "}" and not stack:
                end = at
                break
            if char in _OPENERS:
                stack.append(_CLOSERS[_OPENERS.index(char)])
            elif char in _CLOSERS and (not stack or stack.pop() != char):
                break
            at += 1
        if end < 0:
            break  # no closing suffix: Spring's ParseException, left as text here
        found.append((start, end + 1, text[start + 2 : end]))
        position = end + 1
    return found


def _stripped(text: str) -> str:
    """``text`` with each ``${``/``}`` removed (``escapeExpression``)."""
    out, position = [], 0
    for start, end, body in spans(text):
        out += [text[position:start], body]
        position = end
    return "".join(out) + text[position:]


_NUMBER = (int, float)


class SpelError(ValueError):
    pass


@dataclass
class Evaluator:
    """Evaluates ``${...}`` against ``root`` (names resolve as map keys of the root)."""

    root: Mapping[str, Any]
    failures: list[str] = field(default_factory=list)
    # The summary's keys: each failed string with ``${``/``}`` stripped (ExpressionTransform
    # ``escapeExpression``); V2Util aborts a plan when one starts with "templateVariables.".
    failed_keys: list[str] = field(default_factory=list)

    def value(self, expression: str) -> Any:
        return _Parser(expression, self.root).parse()

    def render(self, value: Any) -> Any:
        """Evaluate every string inside ``value`` (maps and lists recursively)."""
        if isinstance(value, Mapping):
            return {k: self.render(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.render(v) for v in value]
        if not isinstance(value, str) or "${" not in value:
            return value
        found = spans(value)
        if len(found) == 1 and found[0][:2] == (0, len(value)):
            try:
                result = self.value(found[0][2])
            except (SpelError, TypeError, ZeroDivisionError) as exc:
                self._failed(value, f"{value}: {exc}")
                return value
            if result is None:
                self._failed(value, f"{value}: not found")
                return value
            return result
        parts: list[str] = []
        position = 0
        for start, end, body in found:
            parts.append(value[position:start])
            position = end
            try:
                result = self.value(body)
            except (SpelError, TypeError, ZeroDivisionError) as exc:
                self._failed(value, f"{value[start:end]}: {exc}")
                return value  # one part throwing leaves the whole string raw
            if result is None:
                self._failed(value, f"{value[start:end]}: not found")
                parts.append(value[start:end])  # a null part stays literal
            else:
                parts.append(to_text(result))
        parts.append(value[position:])
        return "".join(parts)

    def _failed(self, value: str, message: str) -> None:
        self.failures.append(message)
        self.failed_keys.append(_stripped(value))


def _is_number(value: Any) -> bool:
    return isinstance(value, _NUMBER) and not isinstance(value, bool)


def arithmetic(op: str, left: Any, right: Any) -> Any:
    """Spring's OpPlus/OpMinus/OpMultiply/OpDivide over the values JSON gives."""
    if op == "+" and (isinstance(left, str) or isinstance(right, str)):
        if left is None or right is None:
            raise SpelError("cannot add null")
        return to_text(left) + to_text(right)
    if op == "*" and isinstance(left, str) and type(right) is int:
        return left * right
    if not (_is_number(left) and _is_number(right)):
        raise SpelError(f"operator {op} cannot take {left!r} and {right!r}")
    if op == "+":
        return left + right
    if op == "-":
        return left - right
    if op == "*":
        return left * right
    if isinstance(left, int) and isinstance(right, int):
        if right == 0:
            raise SpelError("/ by zero")
        quotient = abs(left) // abs(right)
        return quotient if (left < 0) == (right < 0) else -quotient
    return left / right


def compare(op: str, left: Any, right: Any) -> bool:
    """Spring's OpEQ/OpNE (``equalityCheck``: numbers by value, else ``equals``) and
    OpLT/OpGT/OpLE/OpGE (numbers, or two Comparables of one type such as strings)."""
    if op in ("==", "!="):
        if _is_number(left) and _is_number(right):
            same = left == right
        else:
            same = type(left) is type(right) and left == right
        return same if op == "==" else not same
    if not (
        (_is_number(left) and _is_number(right))
        or (isinstance(left, str) and isinstance(right, str))
    ):
        raise SpelError(f"cannot compare {left!r} and {right!r}")
    return {"<": left < right, ">": left > right, "<=": left <= right, ">=": left >= right}[op]


def to_json(value: Any) -> str:
    """kork ``JsonExpressionFunctionProvider.toJson``: Jackson's ``writeValueAsString``
    (compact; ``null`` for null); a result holding ``${`` is refused."""
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    if "${" in text:
        raise SpelError("result for toJson cannot contain an expression")
    return text


def _method(target: Any, name: str, args: list[Any]) -> Any:
    """The few Java methods the templates call: ``size()`` and ``isEmpty()`` of a List or
    Map, String ``length()`` and ``substring``; calling a method on null throws (Spring's
    ``SpelEvaluationException`` METHOD_CALL_ON_NULL_OBJECT_NOT_ALLOWED)."""
    if target is None:
        raise SpelError(f"method {name}() on null")
    if name == "size" and not args and isinstance(target, list | Mapping):
        return len(target)
    if name == "isEmpty" and not args and isinstance(target, list | Mapping | str):
        return len(target) == 0
    if name == "length" and not args and isinstance(target, str):
        return len(target)
    if name == "substring" and isinstance(target, str) and 1 <= len(args) <= 2:
        begin, end = args[0], args[1] if len(args) == 2 else len(target)
        if not (type(begin) is int and type(end) is int and 0 <= begin <= end <= len(target)):
            raise SpelError(f"substring({args}) out of range")  # Java throws, no clamping
        return target[begin:end]
    raise SpelError(f"unsupported method {type(target).__name__}.{name}()")


def read_json(text: Any) -> Any:
    """Orca ``UrlExpressionFunctionProvider.readJson``: Jackson reads a JSON text (a map or a
    list; a duplicate key keeps the last value)."""
    if not isinstance(text, str):
        raise SpelError("#readJson takes a string")
    try:
        return json.loads(text)
    except ValueError as exc:
        raise SpelError(f"#readJson: {exc}") from None


_FUNCTIONS = {"toJson": to_json, "readJson": read_json}
_TOKEN = re.compile(
    r"\s*(?:(?P<number>\d+\.\d+|\d+)|(?P<string>'(?:[^']|'')*')"
    r"|(?P<name>#?[A-Za-z_][A-Za-z0-9_]*)"
    r"|(?P<op>==|!=|<=|>=|&&|\|\||[-+*/()\[\].,?:<>!]))"
)
_WORDS = {"and": "&&", "or": "||", "not": "!", "eq": "==", "ne": "!=", "lt": "<", "gt": ">"}


class _Parser:
    """A recursive-descent parser of the subset, building closures so that ``?:``, ``&&``
    and ``||`` evaluate only the operands Spring's ``Ternary``/``OpAnd``/``OpOr`` would."""

    def __init__(self, text: str, root: Mapping[str, Any]) -> None:
        self.root = root
        self.tokens: list[tuple[str, Any]] = []
        position, text = 0, text.strip()
        while position < len(text):
            match = _TOKEN.match(text, position)
            if not match or match.end() == position:
                raise SpelError(f"cannot parse {text!r}")
            position = match.end()
            kind = match.lastgroup or ""
            raw = match.group(kind)
            if kind == "number":
                self.tokens.append(("value", float(raw) if "." in raw else int(raw)))
            elif kind == "string":
                self.tokens.append(("value", raw[1:-1].replace("''", "'")))
            elif kind == "name" and raw in _WORDS:
                self.tokens.append(("op", _WORDS[raw]))
            elif kind == "name" and raw in ("true", "false", "null"):
                self.tokens.append(("value", {"true": True, "false": False, "null": None}[raw]))
            else:
                self.tokens.append((kind, raw))
        self.at = 0

    def parse(self) -> Any:
        node = self._ternary()
        if self.at != len(self.tokens):
            raise SpelError(f"unexpected {self.tokens[self.at][1]!r}")
        return node()

    def _peek(self, *ops: str) -> bool:
        return self.at < len(self.tokens) and self.tokens[self.at] in [("op", o) for o in ops]

    def _take(self, op: str) -> None:
        if not self._peek(op):
            raise SpelError(f"expected {op!r}")
        self.at += 1

    def _ternary(self) -> Callable[[], Any]:
        condition = self._or()
        if not self._peek("?"):
            return condition
        self._take("?")
        then = self._ternary()
        self._take(":")
        otherwise = self._ternary()
        return lambda: then() if _boolean(condition()) else otherwise()

    def _or(self) -> Callable[[], Any]:
        return self._left_to_right(self._and, ("||",))

    def _and(self) -> Callable[[], Any]:
        return self._left_to_right(self._comparison, ("&&",))

    def _comparison(self) -> Callable[[], Any]:
        left = self._sum()
        if self._peek("==", "!=", "<", ">", "<=", ">="):
            op = self.tokens[self.at][1]
            self.at += 1
            right = self._sum()
            return lambda: compare(op, left(), right())
        return left

    def _sum(self) -> Callable[[], Any]:
        return self._left_to_right(self._product, ("+", "-"))

    def _product(self) -> Callable[[], Any]:
        return self._left_to_right(self._unary, ("*", "/"))

    def _left_to_right(
        self, operand: Callable[[], Callable[[], Any]], ops: tuple[str, ...]
    ) -> Callable[[], Any]:
        """``operand (op operand)*``, grouped from the left; ``&&``/``||`` short-circuit."""
        left = operand()
        while self._peek(*ops):
            op = self.tokens[self.at][1]
            self.at += 1
            left = _binary(op, left, operand())
        return left

    def _unary(self) -> Callable[[], Any]:
        if self._peek("-"):
            self._take("-")
            operand = self._unary()
            return lambda: _negate(operand())
        if self._peek("!"):
            self._take("!")
            operand = self._unary()
            return lambda: not _boolean(operand())
        return self._postfix()

    def _postfix(self) -> Callable[[], Any]:
        node = self._primary()
        while self._peek(".", "["):
            if self._peek("["):
                self._take("[")
                key = self._ternary()
                self._take("]")
                node = lambda node=node, key=key: _get(node(), key())  # noqa: E731
                continue
            self._take(".")
            kind, name = self.tokens[self.at] if self.at < len(self.tokens) else ("", "")
            if kind != "name":
                raise SpelError("expected a property name after '.'")
            self.at += 1
            if self._peek("("):
                args = self._arguments()
                node = lambda node=node, name=name, args=args: _method(  # noqa: E731
                    node(), name, [a() for a in args]
                )
            else:
                node = lambda node=node, name=name: _get(node(), name)  # noqa: E731
        return node

    def _arguments(self) -> list[Callable[[], Any]]:
        self._take("(")
        args = []
        while not self._peek(")"):
            args.append(self._ternary())
            if not self._peek(")"):
                self._take(",")
        self._take(")")
        return args

    def _primary(self) -> Callable[[], Any]:
        if self.at >= len(self.tokens):
            raise SpelError("unexpected end of expression")
        kind, raw = self.tokens[self.at]
        self.at += 1
        if kind == "value":
            return lambda: raw
        if kind == "op" and raw == "(":
            inner = self._ternary()
            self._take(")")
            return inner
        if kind == "name" and raw.startswith("#"):
            function = _FUNCTIONS.get(raw[1:])
            if function is None:
                raise SpelError(f"unknown function {raw}")
            args = self._arguments()
            return lambda: function(*[a() for a in args])
        if kind == "name":
            return lambda: self.root.get(raw)  # unknown keys read as null
        raise SpelError(f"unexpected {raw!r}")


def _binary(op: str, left: Callable[[], Any], right: Callable[[], Any]) -> Callable[[], Any]:
    if op == "&&":
        return lambda: _boolean(left()) and _boolean(right())
    if op == "||":
        return lambda: _boolean(left()) or _boolean(right())
    return lambda: arithmetic(op, left(), right())


def _boolean(value: Any) -> bool:
    """Spring converts an operand of ``?:``, ``&&``, ``||`` and ``!`` to a Boolean; null
    and anything else than a Boolean fail (``SpelMessage.TYPE_CONVERSION_ERROR``)."""
    if not isinstance(value, bool):
        raise SpelError(f"{value!r} is not a boolean")
    return value


def _negate(value: Any) -> Any:
    if not _is_number(value):
        raise SpelError(f"cannot negate {value!r}")
    return -value


def _get(obj: Any, key: Any) -> Any:
    if isinstance(obj, Mapping):
        return obj.get(key)  # MapPropertyAccessor(allowUnknownKeys) / Indexer: null
    if isinstance(obj, list) and type(key) is int:
        if not 0 <= key < len(obj):
            raise SpelError(f"index {key} out of bounds")
        return obj[key]
    raise SpelError(f"cannot read {key!r} of {type(obj).__name__ if obj is not None else 'null'}")


def to_text(value: Any) -> str:
    """Java's String.valueOf for the types SpEL hands back."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value) if value != int(value) or abs(value) >= 1e7 else f"{value:.1f}"
    return str(value)


def expressions(text: str) -> list[str]:
    """The bodies of every ``${...}`` in ``text``."""
    return [body for _, _, body in spans(text)]
