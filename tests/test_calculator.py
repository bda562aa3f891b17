"""The calculator tool: what it computes, and that hostile expressions are refused, fast."""

import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from model.calculator import calculate


@pytest.mark.parametrize(
    "expression, result",
    [
        ("12 + 30", "42"),
        ("7*6", "42"),
        ("(1 + 2) * -3", "-9"),
        ("100 / 8", "12.5"),
        ("12 / 4", "3"),
        ("10 / 3", "3.33333333333"),
        ("17 // 5", "3"),
        ("17 % 5", "2"),
        ("-(-4)", "4"),
        ("2.5 * 4", "10"),
        ('"strawberry".count("r")', "3"),
        ('"banana".count("an") + 1', "3"),
        ("  9999 * 9999  ", "99980001"),
        # powers, square roots and percentages (issue 17: "3 to the power of 4", "15% of 80")
        ("3 ** 4", "81"),
        ("5**2", "25"),
        ("(-2) ** 3", "-8"),
        ("2 ** -2", "0.25"),
        ("2 ** 0.5", "1.41421356237"),
        ("1.5 ** 2", "2.25"),
        ("0 ** 0", "1"),
        ("10 ** 15", "1000000000000000"),
        ("sqrt(144)", "12"),
        ("sqrt(2)", "1.41421356237"),
        ("sqrt(6.25)", "2.5"),
        ("sqrt(sqrt(16)) + 1", "3"),
        ("15 / 100 * 80", "12"),
        ("7 / 100 * 30", "2.1"),
        ("12.5 / 100 * 40", "5"),
    ],
)
def test_arithmetic_and_letter_counting(expression, result):
    assert calculate(expression) == result


ATTACKS = [
    "__import__('os').system('echo pwned')",
    "().__class__.__bases__[0].__subclasses__()",
    "open('/etc/passwd').read()",
    "x + 1",
    "9**9**9**9",
    "2 ** 100",
    "2 ** 64",
    "10 ** 16",
    "0.5 ** -64",
    "(-8) ** 0.5",
    "2 ** (2 ** 20)",
    "99999 ** 99999",
    "1e15 ** 1e15",
    "0 ** -1",
    "sqrt(-1)",
    "sqrt(1, 2)",
    "sqrt(x=4)",
    "sqrt()",
    "math.sqrt(4)",
    "pow(2, 3)",
    "sqrt('16')",
    "sqrt.__class__",
    "sqrt",
    "10**100000",
    "'a' * 10**9",
    "'a' * 1000",
    '"abc".upper()',
    '"abc".count("a", 0)',
    '"abc".count(x="a")',
    "'x'.count('x').__class__",
    "[1, 2, 3]",
    "lambda: 1",
    "1 if True else 2",
    "1 < 2",
    "1e999 - 1e999",
    "999999999999999 * 999999999999999",
    "1 / 0",
    "5 % 0",
    "(" * 5000 + "1" + ")" * 5000,
    "-" * 100000 + "1",
    "1+" * 100000 + "1",
    '"' + "a" * 1_000_000 + '".count("a")',
    "1_000_000_000_000_000_000",
    "",
    "   ",
    "12 +",
    "\x00",
]


@pytest.mark.parametrize("expression", ATTACKS)
def test_hostile_or_invalid_expressions_are_refused_quickly(expression):
    started = time.perf_counter()
    assert calculate(expression).startswith("error: ")
    assert time.perf_counter() - started < 0.5  # a safety bound, not a benchmark: refusals must not do the work


@given(st.text(max_size=300))
def test_never_raises_on_any_text(text):
    result = calculate(text)
    assert isinstance(result, str) and result and len(result) < 64


@given(st.integers(-9999, 9999), st.integers(-9999, 9999), st.sampled_from("+-*"))
def test_integer_arithmetic_is_exact(a, b, op):
    assert calculate(f"{a} {op} {b}") == str({"+": a + b, "-": a - b, "*": a * b}[op])


@pytest.mark.parametrize("expression, error", [
    ("10 / 0", "error: division by zero"), ("5 % 0", "error: division by zero"), ("7 // (3 - 3)", "error: division by zero"),
    ("999999999999999 * 999999999999999", "error: result out of range"), ("12 +", "error: not an expression"),
    ("x + 1", "error: unsupported expression"), ("1" * 300, "error: expression too long"),
    ("2 ** 100", "error: exponent too large"), ("10 ** 16", "error: result out of range"),
    ("(-8) ** 0.5", "error: result is not a real number"), ("sqrt(-4)", "error: square root of a negative number"),
    ("0 ** -1", "error: division by zero"),
])
def test_a_failed_calculation_answers_with_its_error(expression, error):
    # the model is shown why its call failed; the text is fixed, never an echo of the call
    assert calculate(expression) == error


@given(st.integers(-99, 99), st.integers(0, 64))
def test_integer_powers_are_exact_or_refused_as_out_of_range(base, exponent):
    # the bound is checked before computing, from a logarithm: it must agree with the exact power
    exact = base**exponent
    expected = str(exact) if abs(exact) <= 10**15 else "error: result out of range"
    assert calculate(f"({base}) ** {exponent}") == expected


@given(st.integers(0, 10**15))
def test_square_roots_of_perfect_squares_are_exact_integers(n):
    import math

    root = math.isqrt(n)
    assert calculate(f"sqrt({root * root})") == str(root)


@pytest.mark.parametrize("expression", ["1and 2", "5if 1 else 2", "3or 4"])
def test_output_python_warns_about_is_refused_without_a_warning(expression):
    """Python parses these with a SyntaxWarning, which a command prints on stderr: model output
    must not put a stray line into ask's or eval's output."""
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")  # as a fresh process shows it
        assert calculate(expression).startswith("error: ")
    assert [str(w.message) for w in caught] == []
