"""The sliver of Orca's SpEL that webhook stages and MPT v2 templates use.

Supported: property paths over maps (``execution.id``, ``trigger.user``,
``parameterValues['x']``, ``templateVariables.x``), number/string/boolean literals and
``+ - * /`` with parentheses. Rules, each from the source:

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

Failures are recorded in ``failures`` (never raised), as Orca records them in the stage's
expression summary.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

_EXPR = re.compile(r"\$\{(.*?)\}")
_ONLY = re.compile(r"^\$\{(.*)\}$", re.S)
_NUMBER = (int, float)


class SpelError(ValueError):
    pass


@dataclass
class Evaluator:
    """Evaluates ``${...}`` against ``root`` (names resolve as map keys of the root)."""

    root: Mapping[str, Any]
    failures: list[str] = field(default_factory=list)

    def value(self, expression: str) -> Any:
        try:
            tree = ast.parse(expression.strip(), mode="eval")
        except SyntaxError as exc:
            raise SpelError(f"cannot parse {expression!r}") from exc
        return self._eval(tree.body)

    def _eval(self, node: ast.AST) -> Any:
        if isinstance(node, ast.Constant) and isinstance(node.value, int | float | str | bool):
            return node.value
        if isinstance(node, ast.Name):
            if node.id in ("true", "false"):
                return node.id == "true"
            if node.id == "null":
                return None
            return self.root.get(node.id)  # unknown keys read as null
        if isinstance(node, ast.Attribute):
            return _get(self._eval(node.value), node.attr)
        if isinstance(node, ast.Subscript):
            return _get(self._eval(node.value), self._eval(node.slice))
        if isinstance(node, ast.BinOp) and isinstance(
            node.op, ast.Add | ast.Sub | ast.Mult | ast.Div
        ):
            return arithmetic(node.op, self._eval(node.left), self._eval(node.right))
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
            operand = self._eval(node.operand)
            if not _is_number(operand):
                raise SpelError(f"cannot negate {operand!r}")
            return -operand
        raise SpelError(f"unsupported expression {ast.unparse(node)!r}")

    def render(self, value: Any) -> Any:
        """Evaluate every string inside ``value`` (maps and lists recursively)."""
        if isinstance(value, Mapping):
            return {k: self.render(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.render(v) for v in value]
        if not isinstance(value, str) or "${" not in value:
            return value
        only = _ONLY.match(value)
        if only and "${" not in only.group(1):
            try:
                result = self.value(only.group(1))
            except (SpelError, TypeError, ZeroDivisionError) as exc:
                self.failures.append(f"{value}: {exc}")
                return value
            if result is None:
                self.failures.append(f"{value}: not found")
                return value
            return result
        parts: list[str] = []
        position = 0
        for match in _EXPR.finditer(value):
            parts.append(value[position : match.start()])
            position = match.end()
            try:
                result = self.value(match.group(1))
            except (SpelError, TypeError, ZeroDivisionError) as exc:
                self.failures.append(f"{match.group(0)}: {exc}")
                return value  # one part throwing leaves the whole string raw
            if result is None:
                self.failures.append(f"{match.group(0)}: not found")
                parts.append(match.group(0))  # a null part stays literal
            else:
                parts.append(to_text(result))
        parts.append(value[position:])
        return "".join(parts)


def _is_number(value: Any) -> bool:
    return isinstance(value, _NUMBER) and not isinstance(value, bool)


def arithmetic(op: ast.operator, left: Any, right: Any) -> Any:
    """Spring's OpPlus/OpMinus/OpMultiply/OpDivide over the values JSON gives."""
    if isinstance(op, ast.Add) and (isinstance(left, str) or isinstance(right, str)):
        if left is None or right is None:
            raise SpelError("cannot add null")
        return to_text(left) + to_text(right)
    if isinstance(op, ast.Mult) and isinstance(left, str) and type(right) is int:
        return left * right
    if not (_is_number(left) and _is_number(right)):
        raise SpelError(f"operator {type(op).__name__} cannot take {left!r} and {right!r}")
    if isinstance(op, ast.Add):
        return left + right
    if isinstance(op, ast.Sub):
        return left - right
    if isinstance(op, ast.Mult):
        return left * right
    if isinstance(left, int) and isinstance(right, int):
        if right == 0:
            raise SpelError("/ by zero")
        quotient = abs(left) // abs(right)
        return quotient if (left < 0) == (right < 0) else -quotient
    return left / right


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
    return _EXPR.findall(text)
