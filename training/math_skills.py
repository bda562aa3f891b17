"""The calculator skills people try first besides + - * /: powers ("3 to the power of 4",
"5 squared", "2^10"), percentages ("15% of 80") and square roots ("square root of 144").

As for arithmetic, the assistant copies the numbers into a call the calculator evaluates —
``3 ** 4``, ``15 / 100 * 80`` (a percentage as a division and a product, so the calculator
needs no ``%`` that would read as Python's remainder), ``sqrt(144)`` — and states the forced
result. An expression's split is decided by the same hash as arithmetic's
(``arithmetic.is_heldout``), so held-out expressions never occur in training, and each skill
has held-out phrasings.
"""

from __future__ import annotations

import random

from training.arithmetic import Problem, assistant_parts, is_heldout
from training.phrasing import Split, check_disjoint, compose, typed

MATH_SKILLS = ("power", "percent", "sqrt")

# (template, is it a command?) with {a} the base and {b} the exponent
POWERS = check_disjoint({
    "train": [("what is {a} to the power of {b}?", False), ("{a} to the power of {b}", False),
              ("{a}^{b}", False), ("what's {a}^{b}?", False), ("{a} ** {b}", False), ("what is {a}**{b}?", False),
              ("calculate {a} to the power of {b}", True), ("raise {a} to the power of {b}", True),
              ("{a} raised to the power {b}?", False), ("what is {a} raised to {b}?", False),
              ("compute {a}^{b}", True), ("how much is {a}^{b}?", False),
              ("{a} to the power {b}", False), ("what's {a} ** {b}?", False), ("work out {a} to the power of {b}", True)],
    "heldout": [("what do you get raising {a} to the power of {b}?", False), ("{a} with an exponent of {b}?", False),
                ("tell me {a}^{b}", True)],
})
# "squared" / "cubed": {a} the base; the exponent is the template's
SQUARES = check_disjoint({
    "train": [(2, "what is {a} squared?"), (2, "{a} squared"), (2, "square {a}"), (2, "what's the square of {a}?"),
              (2, "{a} squared is what?"), (2, "how much is {a} squared?"), (3, "what is {a} cubed?"), (3, "{a} cubed"),
              (3, "cube {a}"), (3, "what's the cube of {a}?"), (3, "how much is {a} cubed?"), (2, "calculate {a} squared"),
              (3, "calculate {a} cubed")],
    "heldout": [(2, "what does {a} squared come to?"), (3, "what does {a} cubed come to?"), (2, "{a} times itself?")],
})
PERCENTS = check_disjoint({
    "train": [("what's {p}% of {n}?", False), ("what is {p}% of {n}?", False), ("{p}% of {n}", False),
              ("{p} percent of {n}", False), ("what is {p} percent of {n}?", False), ("calculate {p}% of {n}", True),
              ("how much is {p}% of {n}?", False), ("find {p}% of {n}", True), ("{p}% of {n} is what?", False),
              ("what's {p} percent of {n}?", False), ("work out {p}% of {n}", True), ("take {p}% of {n}", True),
              ("{p} per cent of {n}?", False)],
    "heldout": [("what would {p}% of {n} be?", False), ("tell me {p} percent of {n}", True),
                ("how much is {p} percent of {n}?", False)],
})
ROOTS = check_disjoint({
    "train": [("what is the square root of {n}?", False), ("square root of {n}", False), ("sqrt {n}", False),
              ("sqrt({n})", False), ("what's the square root of {n}?", False), ("√{n}", False), ("what is √{n}?", False),
              ("calculate the square root of {n}", True), ("find the square root of {n}", True),
              ("take the square root of {n}", True), ("how much is the square root of {n}?", False),
              ("what's sqrt({n})?", False), ("the square root of {n} is what?", False)],
    "heldout": [("what number squared gives {n}?", False), ("tell me the square root of {n}", True),
                ("root of {n}?", False)],
})


def _power_numbers(rng: random.Random, exponent: int | None) -> tuple[int, int]:
    """A base and an exponent whose power stays readable: 2^20, 3^5, 12^2, 7^3."""
    b = exponent or rng.choices((2, 3, 4, 5, 6, 8, 10), weights=(30, 25, 12, 10, 6, 5, 5))[0]
    top = {2: 999, 3: 99, 4: 30, 5: 15, 6: 10, 8: 6, 10: 5}[b]
    if rng.random() < 0.15 and exponent is None:
        return 2, rng.randint(0, 30)  # powers of two, people's favourite
    return rng.randint(0, top if rng.random() < 0.3 else min(top, 20)), b


def _power(rng: random.Random, split: Split) -> Problem:
    if rng.random() < 0.45:
        exponent, template = rng.choice(SQUARES[split])
        a, b = _power_numbers(rng, exponent)
        command = template.startswith(("square ", "cube ", "calculate"))
        return Problem(f"{a} ** {b}", compose(rng, template, split, command, a=a), a**b, template)
    template, command = rng.choice(POWERS[split])
    a, b = _power_numbers(rng, None)
    return Problem(f"{a} ** {b}", compose(rng, template, split, command, a=a, b=b), a**b, template)


def _percent(rng: random.Random, split: Split) -> Problem:
    template, command = rng.choice(PERCENTS[split])
    p = rng.choice((5, 10, 15, 20, 25, 30, 40, 50, 75, 12, 8, 3, 60, 90, 1, 2, 33, 45, 7, 18, 99, 100, 150, 200))
    n = rng.choice((rng.randint(1, 200), rng.randint(1, 20) * 10, rng.randint(1, 100) * 100, rng.randint(1, 9999)))
    if rng.random() < 0.1:
        p = rng.choice((2.5, 12.5, 7.5, 0.5))
    return Problem(f"{p} / 100 * {n}", compose(rng, template, split, command, p=p, n=n), p / 100 * n, template)


def _sqrt(rng: random.Random, split: Split) -> Problem:
    template, command = rng.choice(ROOTS[split])
    root = rng.randint(0, 120 if rng.random() < 0.8 else 999)
    n = root * root if rng.random() < 0.75 else rng.randint(2, 99999)  # mostly perfect squares, as people ask
    return Problem(f"sqrt({n})", compose(rng, template, split, command, n=n), n**0.5, template)


_MAKERS = {"power": _power, "percent": _percent, "sqrt": _sqrt}


def problem(rng: random.Random, skill: str, split: Split) -> Problem:
    """A ``skill`` problem (``power``, ``percent``, ``sqrt``) whose expression belongs to ``split``."""
    while True:
        p = _MAKERS[skill](rng, split)
        if is_heldout(p.call) == (split == "heldout"):
            return p


def exchange(rng: random.Random, skill: str, split: Split) -> tuple[str, list[dict], Problem]:
    p = problem(rng, skill, split)
    return typed(rng, p.asked), assistant_parts(p.call), p
