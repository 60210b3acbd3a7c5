"""The sliver of Orca's SpEL that webhook stages and MPT v2 templates use.

Supported: property paths over maps (``execution.id``, ``trigger.user``,
``parameterValues['x']``, ``templateVariables.x``), number/string/boolean literals and
``+ - * /`` with parentheses. Like kork's ``ExpressionTransform``: a value that is exactly
one ``${...}`` keeps its type, mixed text becomes a string, and an expression that cannot
be evaluated leaves the raw text in place (recorded as a failure, never raised).
"""

from __future__ import annotations

import ast
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

_EXPR = re.compile(r"\$\{(.*?)\}")
_ONLY = re.compile(r"^\$\{(.*)\}$", re.S)


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
            if node.id not in self.root:
                raise SpelError(f"property {node.id!r} not found")
            return self.root[node.id]
        if isinstance(node, ast.Attribute):
            return _get(self._eval(node.value), node.attr)
        if isinstance(node, ast.Subscript):
            return _get(self._eval(node.value), self._eval(node.slice))
        if isinstance(node, ast.BinOp) and isinstance(
            node.op, ast.Add | ast.Sub | ast.Mult | ast.Div
        ):
            left, right = self._eval(node.left), self._eval(node.right)
            if isinstance(node.op, ast.Add):
                return left + right
            if isinstance(node.op, ast.Sub):
                return left - right
            if isinstance(node.op, ast.Mult):
                return left * right
            return left / right
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
            return -self._eval(node.operand)
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
                return self.value(only.group(1))
            except (SpelError, TypeError, ZeroDivisionError) as exc:
                self.failures.append(f"{value}: {exc}")
                return value
        failed = False

        def one(match: re.Match[str]) -> str:
            nonlocal failed
            try:
                return to_text(self.value(match.group(1)))
            except (SpelError, TypeError, ZeroDivisionError) as exc:
                self.failures.append(f"{match.group(0)}: {exc}")
                failed = True
                return match.group(0)

        text = _EXPR.sub(one, value)
        return value if failed else text


def _get(obj: Any, key: Any) -> Any:
    if isinstance(obj, Mapping):
        if key not in obj:
            raise SpelError(f"key {key!r} not found")
        return obj[key]
    if isinstance(obj, list) and isinstance(key, int):
        return obj[key]
    raise SpelError(f"cannot index {type(obj).__name__} with {key!r}")


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
