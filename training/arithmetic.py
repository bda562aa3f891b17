"""Arithmetic through the calculator tool.

The user asks in symbols or words ("12 + 30", "12 plus 30", "subtract 30 from 12"); the
assistant writes the Python expression between ``<|python_start|>``/``<|python_end|>``, the
engine evaluates it and forces the result between ``<|output_start|>``/``<|output_end|>``, and
the assistant states that result. A tiny model cannot multiply 4-digit numbers in its head, but
it can copy: the user's numbers into the call, the tool's output into the answer.

Problems: integers of 1-4 digits, + - * /, two or three operands, parentheses. An expression's
split is decided by a hash of its text, so held-out expressions never occur in training.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass

from training.phrasing import Split, check_disjoint, compose, pick, typed

HELDOUT_EVERY = 10  # one expression in this many is held out

# how each operator may be written by a user; the call always uses the Python symbol
_OP_WORDS = {
    "+": ["+", "+", "plus"],
    "-": ["-", "-", "minus"],
    "*": ["*", "x", "×", "times", "times", "multiplied by"],
    "/": ["/", "÷", "divided by", "divided by", "over"],
}

# cores (see ``phrasing.compose``): (text with {e} the expression as typed, is it a command?)
_FRAMES = check_disjoint({
    "train": [("what is {e}?", False), ("what's {e}?", False), ("{e}", False), ("{e} = ?", False), ("{e}=?", False),
              ("{e} =", False), ("calculate {e}", True), ("compute {e}", True), ("work out {e}", True),
              ("solve {e}", True), ("evaluate {e}", True), ("tell me {e}", True), ("calc {e}", True),
              ("how much is {e}?", False), ("what does {e} equal?", False), ("what is {e} equal to?", False),
              ("quick math: {e}", False), ("what's the result of {e}?", False), ("how much does {e} make?", False),
              ("what is the value of {e}?", False), ("{e} is what?", False), ("what's the answer to {e}?", False),
              ("what do you get for {e}?", False), ("give me the result of {e}", True), ("math: {e}", False),
              ("tell me what {e} is", True), ("do the math: {e}", False), ("what would {e} be?", False),
              ("find {e}", True), ("result of {e}?", False), ("{e} equals what?", False)],
    "heldout": [("I need the answer to {e}", False), ("what comes out of {e}?", False), ("{e} makes what?", False),
                ("solve this: {e}", True), ("can you figure out {e}?", False)],
})

# binary problems in words: (operator, phrase with {a} and {b}), as commands and as nouns
_COMMANDS = {
    "train": [("+", "add {a} and {b}"), ("+", "add {b} to {a}"), ("-", "subtract {b} from {a}"),
              ("-", "take {b} away from {a}"), ("*", "multiply {a} by {b}"), ("/", "divide {a} by {b}"),
              ("*", "multiply {a} and {b}"), ("+", "sum {a} and {b}"), ("*", "multiply {a} with {b}"),
              ("+", "add together {a} and {b}")],
    "heldout": [("-", "take {b} from {a}"), ("*", "times {a} by {b}")],
}
_NOUNS = {
    "train": [("+", "the sum of {a} and {b}"), ("-", "the difference between {a} and {b}"),
              ("*", "the product of {a} and {b}"), ("/", "the quotient of {a} and {b}"),
              ("/", "{a} divided into {b} parts"), ("+", "{a} and {b} added up"),
              ("/", "the result of dividing {a} by {b}"), ("*", "{a} multiplied together with {b}")],
    "heldout": [("+", "the sum you get from {a} and {b}"), ("*", "{a} and {b} multiplied")],
}
_NOUN_FRAMES = check_disjoint({
    "train": [("what is {v}?", False), ("what's {v}?", False), ("{v}", False), ("calculate {v}", True),
              ("work out {v}", True), ("I need {v}", False), ("give me {v}", True),
              ("what do we get for {v}?", False), ("tell me {v}", True)],
    "heldout": [("how much is {v}?", False), ("show me {v}", True)],
})

# follow-ups that use the previous answer: (operator, phrase with {x} the answer and {n} a number)
FOLLOW_UPS = check_disjoint({
    "train": [("+", "now add {n} to {x}"), ("*", "multiply {x} by {n}"), ("-", "subtract {n} from {x}"),
              ("/", "divide {x} by {n}"), ("*", "and {x} times {n}?"), ("+", "what's {x} plus {n}?"),
              ("-", "now minus {n}"), ("+", "add {n}"), ("*", "times {n}?"), ("-", "and take away {n}"),
              ("/", "now divide {x} by {n}"), ("+", "plus {n}?"), ("-", "what is {x} minus {n}?"),
              ("*", "now multiply {x} by {n}"), ("/", "and {x} divided by {n}?"), ("+", "and add {n} to {x}"),
              ("*", "double {x}"), ("/", "halve {x}"), ("+", "increase {x} by {n}"), ("*", "{x} times {n}, please"),
              ("-", "and now subtract {n}"), ("/", "then divide {x} by {n}")],
    "heldout": [("+", "{x} plus another {n}?"), ("*", "{x} multiplied by {n}?"), ("-", "{x} minus {n} is what?"),
                ("/", "{x} over {n}?")],
})
# how a follow-up refers to the previous answer
THE_ANSWER = ["that", "that", "it", "the result", "the answer", "this", "that number", "the previous answer"]

@dataclass(frozen=True)
class Problem:
    """``call``: the Python expression the assistant writes; ``asked``: how the user wrote it;
    ``phrasing``: the template the request was built from ("what is {e}?", "add {a} and {b}")."""

    call: str
    asked: str
    value: int | float
    phrasing: str = ""


def _number(rng: random.Random) -> int:
    digits = rng.choices((1, 2, 3, 4), weights=(25, 35, 25, 15))[0]
    return rng.randint(0 if digits == 1 else 10 ** (digits - 1), 10**digits - 1)


def _apply(op: str, a: float, b: float) -> float | None:
    if op == "/" and b == 0:
        return None
    return {"+": a + b, "-": a - b, "*": a * b, "/": a / b if b else 0}[op]


def calculator_output(call: str) -> str:
    """What the engine forces after ``call``: the calculator tool's own text for the result."""
    from model.calculator import calculate, is_error

    result = calculate(call)
    if is_error(result):
        raise ValueError(f"the calculator refuses a generated expression: {call!r}")
    return result


def is_heldout(call: str) -> bool:
    digest = hashlib.sha256(f"glasschat-heldout-expr:{call}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % HELDOUT_EVERY == 0


def _write_op(rng: random.Random, op: str, tight: bool) -> str:
    word = rng.choice(_OP_WORDS[op])
    return word if tight and len(word) == 1 else f" {word} "


def _binary(rng: random.Random) -> tuple[int, str, int]:
    op = rng.choice("+-*/")
    if op == "/" and rng.random() < 0.75:  # mostly exact divisions, as people ask them
        b = rng.randint(1, 99 if rng.random() < 0.8 else 999)
        q = rng.randint(1, max(1, 9999 // b))
        return b * q, op, b
    a, b = _number(rng), _number(rng)
    if op == "/" and b == 0:
        b = rng.randint(1, 9)
    return a, op, b


def _problem(rng: random.Random) -> Problem:
    """A random problem (either split)."""
    tight = rng.random() < 0.25  # "12+30" rather than "12 + 30"
    shape = rng.choices(("binary", "chain", "left", "right"), weights=(70, 10, 10, 10))[0]
    if shape == "binary":
        a, op, b = _binary(rng)
        value = _apply(op, a, b)
        return Problem(f"{a} {op} {b}", f"{a}{_write_op(rng, op, tight)}{b}", value)
    a, b, c = _number(rng), _number(rng), _number(rng)
    op1, op2 = rng.choice("+-*/"), rng.choice("+-*/")
    w1, w2 = _write_op(rng, op1, tight), _write_op(rng, op2, tight)
    if shape == "chain":
        call, asked = f"{a} {op1} {b} {op2} {c}", f"{a}{w1}{b}{w2}{c}"
        if op1 in "+-" and op2 in "*/":  # Python's precedence: a + (b * c)
            inner = _apply(op2, b, c)
            value = None if inner is None else _apply(op1, a, inner)
        else:
            inner = _apply(op1, a, b)
            value = None if inner is None else _apply(op2, inner, c)
    elif shape == "left":
        call, asked = f"({a} {op1} {b}) {op2} {c}", f"({a}{w1}{b}){w2}{c}"
        inner = _apply(op1, a, b)
        value = None if inner is None else _apply(op2, inner, c)
    else:
        call, asked = f"{a} {op1} ({b} {op2} {c})", f"{a}{w1}({b}{w2}{c})"
        inner = _apply(op2, b, c)
        value = None if inner is None else _apply(op1, a, inner)
    if value is None:
        return _problem(rng)
    return Problem(call, asked, value)


def problem(rng: random.Random, split: Split) -> Problem:
    """A problem whose expression belongs to ``split``."""
    while True:
        p = _verbal_or_symbolic(rng, split)
        if is_heldout(p.call) == (split == "heldout"):
            return p


def _verbal_or_symbolic(rng: random.Random, split: Split) -> Problem:
    if rng.random() < 0.2:
        if rng.random() < 0.5:
            op, phrase = rng.choice(_COMMANDS[split])
            core, command = phrase, True
        else:
            op, phrase = rng.choice(_NOUNS[split])
            frame, command = pick(rng, _NOUN_FRAMES, split)
            core = frame.replace("{v}", phrase)
        a, b = _number(rng), _number(rng)
        if op == "/" and (b == 0 or rng.random() < 0.75):
            b = rng.randint(1, 99)
            a = b * rng.randint(1, max(1, 9999 // b))
        return Problem(f"{a} {op} {b}", compose(rng, core, split, command, a=a, b=b), _apply(op, a, b), phrase)
    p = _problem(rng)
    frame, command = pick(rng, _FRAMES, split)
    return Problem(p.call, compose(rng, frame, split, command, e=p.asked), p.value, frame)


def assistant_parts(call: str) -> list[dict]:
    result = calculator_output(call)
    return [
        {"type": "python", "text": call},
        {"type": "python_output", "text": result},
        {"type": "text", "text": f"The answer is {result}."},
    ]


def exchange(rng: random.Random, split: Split) -> tuple[str, list[dict], Problem]:
    p = problem(rng, split)
    return typed(rng, p.asked), assistant_parts(p.call), p


def follow_up(rng: random.Random, previous: int, split: Split) -> tuple[str, list[dict], Problem]:
    """A follow-up question on the previous (integer) answer: "now add 5 to that"."""
    while True:
        op, phrase = rng.choice(FOLLOW_UPS[split])
        n = rng.randint(1, 99) if rng.random() < 0.8 else _number(rng)
        if "double" in phrase or "halve" in phrase:
            n = 2
        if op == "/" and n == 0:
            n = 2
        call = f"{previous} {op} {n}"
        if is_heldout(call) == (split == "heldout"):
            break
    value = _apply(op, previous, n)
    user = phrase.format(x=rng.choice(THE_ANSWER), n=n)
    return typed(rng, user), assistant_parts(call), Problem(call, user, value, phrase)
