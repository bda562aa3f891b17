"""Requests the calculator cannot answer, and the honest reply to its error.

A user asks for a division by zero, the square root of a negative number, or a number past
the calculator's range ("9 to the power of 40"). The assistant makes the call as for any
arithmetic; the engine forces the calculator's error text (``error: division by zero``) as the
tool's output, and the assistant says plainly that there is no answer and why, instead of
inventing a number or calling the calculator again with the same expression.

Requests are phrased with the arithmetic and math skills' own frames, split the same way
(train frames in training, held-out frames in the eval), and each expression's split is decided
by the same hash as arithmetic's, so held-out expressions never occur in training.
"""

from __future__ import annotations

import random

from training import arithmetic, math_skills
from training.phrasing import Split, compose, pick, typed

ERROR_KINDS = ("divide_by_zero", "negative_root", "too_big")

# what the assistant says after each error text the calculator gives
HONEST_REPLIES = {
    "error: division by zero": "There is no answer: nothing can be divided by zero.",
    "error: square root of a negative number": "There is no answer: a negative number has no real square root.",
    "error: result out of range": "There is no answer I can give: that number is too big for my calculator.",
    "error: exponent too large": "There is no answer I can give: that number is too big for my calculator.",
}


def _divide_by_zero(rng: random.Random, split: Split) -> tuple[str, str, str]:
    a = rng.randint(0, 9999) if rng.random() < 0.8 else rng.randint(0, 9)
    written = rng.choice(("/", "/", "÷", " divided by ", " over "))
    asked = f"{a}{written}0" if written in ("/", "÷") and rng.random() < 0.3 else f"{a} {written.strip()} 0"
    frame, command = pick(rng, arithmetic._FRAMES, split)
    return f"{a} / 0", compose(rng, frame, split, command, e=asked), frame


def _negative_root(rng: random.Random, split: Split) -> tuple[str, str, str]:
    n = rng.randint(1, 120) ** 2 if rng.random() < 0.6 else rng.randint(1, 9999)
    template, command = rng.choice(math_skills.ROOTS[split])
    return f"sqrt(-{n})", compose(rng, template, split, command, n=f"-{n}"), template


def _too_big(rng: random.Random, split: Split) -> tuple[str, str, str]:
    if rng.random() < 0.7:  # a power past 10^15, or an exponent past the calculator's 64
        a = rng.randint(3, 99)
        b = rng.randint(40, 64) if rng.random() < 0.8 else rng.randint(65, 500)
        template, command = rng.choice(math_skills.POWERS[split])
        return f"{a} ** {b}", compose(rng, template, split, command, a=a, b=b), template
    a, b = rng.randint(10**8, 10**10), rng.randint(10**8, 10**10)  # a product past 10^15
    frame, command = pick(rng, arithmetic._FRAMES, split)
    written = rng.choice((" * ", " x ", " times "))
    return f"{a} * {b}", compose(rng, frame, split, command, e=f"{a}{written}{b}"), frame


_MAKERS = {"divide_by_zero": _divide_by_zero, "negative_root": _negative_root, "too_big": _too_big}


def request(rng: random.Random, split: Split, kind: str | None = None) -> tuple[str, str, str, str]:
    """``(kind, call, user text, phrasing)`` of a request whose expression belongs to ``split``
    and that the calculator refuses."""
    kind = kind or rng.choice(ERROR_KINDS)
    while True:
        call, asked, phrasing = _MAKERS[kind](rng, split)
        if arithmetic.is_heldout(call) == (split == "heldout"):
            return kind, call, typed(rng, asked), phrasing


def error_output(call: str) -> str:
    """The calculator's error text for ``call`` (what the engine forces); fails loudly if the
    calculator answers it after all, so no generated example teaches a wrong refusal."""
    from model.calculator import calculate, is_error

    result = calculate(call)
    if not is_error(result) or result not in HONEST_REPLIES:
        raise ValueError(f"the calculator does not refuse {call!r} as expected: {result!r}")
    return result


def assistant_parts(call: str) -> list[dict]:
    error = error_output(call)
    return [
        {"type": "python", "text": call},
        {"type": "python_output", "text": error},
        {"type": "text", "text": HONEST_REPLIES[error]},
    ]


def exchange(rng: random.Random, split: Split) -> tuple[str, list[dict], str]:
    """``(user text, assistant parts, the calculator's error text)`` of one exchange."""
    _, call, user, _ = request(rng, split)
    return user, assistant_parts(call), error_output(call)
