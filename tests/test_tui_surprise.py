"""The surprise view's arithmetic: per-token alignment, bits per byte per region, the colour scale."""

import math

from tui import colour_scale, surprise


def test_per_token_aligns_surprisal_to_ids():
    assert surprise.per_token([1, 2, 3], [0.5, math.nan]) == [None, 0.5, None]


def test_region_bits_per_byte_counts_ordinary_tokens_only():
    ids = [0, 1, 2, 3, 4]
    regions = ["none", "user", "user", "assistant", "assistant"]
    bits = [None, 4.0, 2.0, 9.0, 3.0]
    token_bytes = [0, 2, 1, 3, 0]  # token 4 is special: left out
    user = surprise.region_bpb(ids, regions, bits, token_bytes, "user")
    reply = surprise.region_bpb(ids, regions, bits, token_bytes, "assistant")
    assert (user.bits, user.bytes, user.bpb) == (6.0, 3, 2.0)
    assert (reply.bits, reply.bytes, reply.bpb) == (9.0, 3, 3.0)
    assert surprise.region_bpb(ids, regions, bits, token_bytes, "python").bpb is None
    assert surprise.describe(user, reply) == "surprise: your text 2.00 bits/byte (3 bytes) · replies 3.00 bits/byte (3 bytes)"


def test_colour_scale_is_the_shared_one_and_brightens_with_surprise():
    def rgb(bits):
        color = surprise.surprise_style(bits).bgcolor.get_truecolor()
        return color.red, color.green, color.blue

    assert rgb(0.0) == colour_scale.STOPS[0][1] and rgb(40.0) == colour_scale.STOPS[-1][1]
    assert rgb(3.5) not in (rgb(2.0), rgb(5.0))  # interpolated between the stops
    lightness = [colour_scale.luminance(rgb(b)) for b in (0.0, 2.0, 5.0, 9.0, 14.0)]
    assert lightness == sorted(lightness) and len(set(lightness)) == 5
    assert surprise.surprise_style(None).bgcolor == surprise.surprise_style(math.nan).bgcolor
