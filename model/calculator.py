"""The calculator tool: evaluates what the model writes between ``<|python_start|>`` and
``<|python_end|>``.

The expression is model output, so it is parsed with ``ast`` and only a small language is
walked: int and float literals, ``+ - * / // %``, ``**``, unary ``-``/``+``, parentheses,
``sqrt(x)`` and ``"literal".count("literal")`` (for letter counting). Everything else — other
names, attributes, other calls, comparisons, strings in arithmetic — is refused. The text,
every number and every string are bounded, so no input can make it slow or hungry: a power is
checked against the bounds *before* it is computed (its exponent and the digits of its result
from a logarithm), so ``9**9**9**9`` is refused at once instead of running Python out of memory.

``calculate`` never raises and always answers: the result, or a short fixed ``error: ...``
text (division by zero, out of range, unsupported, not an expression). The engine forces that
answer as the tool's output either way, so the model sees that its call failed and why — an
empty output would leave it to guess, and it repeats the call. An error text never echoes the
expression, so a call cannot put text of its choosing into the output.
"""

from __future__ import annotations

import ast
import math
import warnings

MAX_EXPRESSION_CHARS = 256  # also bounds nesting: the parser never sees a deep expression
MAX_MAGNITUDE = 10**15  # every literal and intermediate result stays within this
MAX_DEPTH = 32
MAX_EXPONENT = 64  # 2 ** 64 is already past MAX_MAGNITUDE; a bigger exponent only makes tiny results

_BINARY = {
    ast.Add: lambda a, b: a + b,
    ast.Sub: lambda a, b: a - b,
    ast.Mult: lambda a, b: a * b,
    ast.Div: lambda a, b: a / b,
    ast.FloorDiv: lambda a, b: a // b,
    ast.Mod: lambda a, b: a % b,
}


ERROR_PREFIX = "error: "


class _Refused(Exception):
    """An expression outside the calculator's language or range; its text is the error shown."""


def calculate(expression: str) -> str:
    """The result of ``expression`` as text (``"42"``, ``"3.5"``), or ``"error: <why>"``."""
    if not isinstance(expression, str) or len(expression) > MAX_EXPRESSION_CHARS:
        return ERROR_PREFIX + "expression too long"
    try:
        with warnings.catch_warnings():
            # "1and 2" parses with a SyntaxWarning that Python prints on stderr: a stray line in
            # the middle of ask's or eval's output, for what is only model output
            warnings.simplefilter("ignore", SyntaxWarning)
            tree = ast.parse(expression.strip(), mode="eval")
    except (SyntaxError, ValueError, MemoryError, RecursionError):
        return ERROR_PREFIX + "not an expression"
    try:
        return _format(_evaluate(tree.body, 0))
    except ZeroDivisionError:
        return ERROR_PREFIX + "division by zero"
    except _Refused as refused:
        return ERROR_PREFIX + str(refused)
    except Exception:  # anything odd in a walk of model output: still an answer, never a crash
        return ERROR_PREFIX + "unsupported expression"


def is_error(result: str) -> bool:
    """Whether ``calculate`` refused or failed (its answer is an error text, not a result)."""
    return result.startswith(ERROR_PREFIX)


def _evaluate(node: ast.AST, depth: int) -> int | float:
    if depth > MAX_DEPTH:
        raise _Refused("expression nested too deeply")
    if isinstance(node, ast.Constant) and type(node.value) in (int, float):
        return _bounded(node.value)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        value = _evaluate(node.operand, depth + 1)
        return -value if isinstance(node.op, ast.USub) else value
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        left, right = _evaluate(node.left, depth + 1), _evaluate(node.right, depth + 1)
        return _bounded(_BINARY[type(node.op)](left, right))
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Pow):
        return _power(_evaluate(node.left, depth + 1), _evaluate(node.right, depth + 1))
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "sqrt":
        if node.keywords or len(node.args) != 1:
            raise _Refused("unsupported expression")
        return _sqrt(_evaluate(node.args[0], depth + 1))
    if isinstance(node, ast.Call):
        return _count(node)
    raise _Refused("unsupported expression")


def _power(base: int | float, exponent: int | float) -> int | float:
    """``base ** exponent``, refused before computing when it would leave the bounds."""
    if abs(exponent) > MAX_EXPONENT:
        raise _Refused("exponent too large")
    if base == 0:
        if exponent < 0:
            raise ZeroDivisionError
        return 0 if exponent else 1
    if base < 0 and not float(exponent).is_integer():
        raise _Refused("result is not a real number")  # Python would answer a complex number
    # the result's size from its logarithm, so no huge power is ever built
    if exponent * math.log10(abs(base)) > math.log10(MAX_MAGNITUDE):
        raise _Refused("result out of range")
    if isinstance(exponent, float) and exponent.is_integer() and isinstance(base, int):
        exponent = int(exponent)
    return _bounded(base**exponent if exponent >= 0 or isinstance(base, float) else float(base) ** exponent)


def _sqrt(value: int | float) -> int | float:
    if value < 0:
        raise _Refused("square root of a negative number")
    if isinstance(value, int):
        root = math.isqrt(value)
        if root * root == value:
            return root  # exact for perfect squares of any size within the bounds
    return math.sqrt(value)


def _count(node: ast.Call) -> int:
    """``"text".count("x")``: both strings literals, bounded by the expression's length."""
    func = node.func
    if not (isinstance(func, ast.Attribute) and func.attr == "count" and _is_str(func.value)):
        raise _Refused("unsupported expression")
    if node.keywords or len(node.args) != 1 or not _is_str(node.args[0]):
        raise _Refused("unsupported expression")
    return func.value.value.count(node.args[0].value)


def _is_str(node: ast.AST) -> bool:
    return isinstance(node, ast.Constant) and type(node.value) is str


def _bounded(value: int | float) -> int | float:
    if isinstance(value, float) and not math.isfinite(value):
        raise _Refused("result out of range")
    if abs(value) > MAX_MAGNITUDE:
        raise _Refused("result out of range")
    return value


def _format(value: int | float) -> str:
    """Integers as such; a float that is a whole number without ``.0``; else 12 significant digits."""
    if isinstance(value, float):
        if value.is_integer():
            return str(int(value))
        return format(value, ".12g")
    return str(value)
