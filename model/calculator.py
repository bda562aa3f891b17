"""The calculator tool: evaluates what the model writes between ``<|python_start|>`` and
``<|python_end|>``.

The expression is model output, so it is parsed with ``ast`` and only a small language is
walked: int and float literals, ``+ - * / // %``, unary ``-``/``+``, parentheses, and
``"literal".count("literal")`` (for letter counting). Everything else — names, attributes,
other calls, ``**``, comparisons, strings in arithmetic — is refused. The text, every number
and every string are bounded, so no input can make it slow or hungry. Anything refused or
invalid (including division by zero) gives None; ``calculate`` never raises.
"""

from __future__ import annotations

import ast
import math

MAX_EXPRESSION_CHARS = 256  # also bounds nesting: the parser never sees a deep expression
MAX_MAGNITUDE = 10**15  # every literal and intermediate result stays within this
MAX_DEPTH = 32

_BINARY = {
    ast.Add: lambda a, b: a + b,
    ast.Sub: lambda a, b: a - b,
    ast.Mult: lambda a, b: a * b,
    ast.Div: lambda a, b: a / b,
    ast.FloorDiv: lambda a, b: a // b,
    ast.Mod: lambda a, b: a % b,
}


class _Refused(Exception):
    pass


def calculate(expression: str) -> str | None:
    """The result of ``expression`` as text (``"42"``, ``"3.5"``), or None if it is refused."""
    if not isinstance(expression, str) or len(expression) > MAX_EXPRESSION_CHARS:
        return None
    try:
        tree = ast.parse(expression.strip(), mode="eval")
        return _format(_evaluate(tree.body, 0))
    except Exception:  # SyntaxError, ZeroDivisionError, _Refused, anything odd: the tool stays quiet
        return None


def _evaluate(node: ast.AST, depth: int) -> int | float:
    if depth > MAX_DEPTH:
        raise _Refused("too deep")
    if isinstance(node, ast.Constant) and type(node.value) in (int, float):
        return _bounded(node.value)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        value = _evaluate(node.operand, depth + 1)
        return -value if isinstance(node.op, ast.USub) else value
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        left, right = _evaluate(node.left, depth + 1), _evaluate(node.right, depth + 1)
        return _bounded(_BINARY[type(node.op)](left, right))
    if isinstance(node, ast.Call):
        return _count(node)
    raise _Refused(type(node).__name__)


def _count(node: ast.Call) -> int:
    """``"text".count("x")``: both strings literals, bounded by the expression's length."""
    func = node.func
    if not (isinstance(func, ast.Attribute) and func.attr == "count" and _is_str(func.value)):
        raise _Refused("call")
    if node.keywords or len(node.args) != 1 or not _is_str(node.args[0]):
        raise _Refused("count arguments")
    return func.value.value.count(node.args[0].value)


def _is_str(node: ast.AST) -> bool:
    return isinstance(node, ast.Constant) and type(node.value) is str


def _bounded(value: int | float) -> int | float:
    if isinstance(value, float) and not math.isfinite(value):
        raise _Refused("not finite")
    if abs(value) > MAX_MAGNITUDE:
        raise _Refused("too large")
    return value


def _format(value: int | float) -> str:
    """Integers as such; a float that is a whole number without ``.0``; else 12 significant digits."""
    if isinstance(value, float):
        if value.is_integer():
            return str(int(value))
        return format(value, ".12g")
    return str(value)
