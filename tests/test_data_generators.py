"""The skill-conversation generators: deterministic, correct, and with a held-out split that
really stays out of training."""

import random
import re

import pytest

from training import arithmetic, small_talk, word_skills
from training.conversations import ConversationSource
from training.eval_prompts import eval_items
from training.phrasing import check_disjoint
from training.pretrain_text import spelling_documents
from training.words import all_words, is_heldout, split_words

TRAIN_WORDS, HELDOUT_WORDS = split_words()


@pytest.fixture(scope="module")
def training_conversations():
    return ConversationSource("train", TRAIN_WORDS).conversations(3000, seed=7)


def _assistant_texts(conversation):
    for message in conversation["messages"]:
        if message["role"] == "assistant":
            content = message["content"]
            yield content if isinstance(content, str) else "".join(p["text"] for p in content if p["type"] == "text")


def _python_calls(conversation):
    for message in conversation["messages"]:
        if message["role"] == "assistant" and isinstance(message["content"], list):
            yield from (p["text"] for p in message["content"] if p["type"] == "python")


def _spelled_words(text):
    """Words the assistant spelled letter by letter ("b a n a n a" -> "banana"), tallies dropped."""
    text = re.sub(r" \(\d+\)", "", text)
    return [run.replace(" ", "") for run in re.findall(r"(?<![a-z])(?:[a-z] )+[a-z](?![a-z])", text)]


def test_word_list_is_clean_and_split():
    words = all_words()
    assert len(words) > 1500 and len(set(words)) == len(words)
    assert all(re.fullmatch(r"[a-z]{3,12}", w) for w in words)
    assert set(TRAIN_WORDS).isdisjoint(HELDOUT_WORDS)
    assert set(TRAIN_WORDS) | set(HELDOUT_WORDS) == set(words)
    assert 0.05 < len(HELDOUT_WORDS) / len(words) < 0.15
    assert {"banana", "strawberry", "house"} <= set(words)


def test_single_token_words_move_to_training():
    one_token = set(HELDOUT_WORDS[:5])
    train, heldout = split_words(lambda w: w in one_token)
    assert one_token <= set(train) and one_token.isdisjoint(heldout)


def test_generators_are_deterministic():
    a = ConversationSource("train", TRAIN_WORDS).conversations(200, seed=3)
    b = ConversationSource("train", TRAIN_WORDS).conversations(200, seed=3)
    c = ConversationSource("train", TRAIN_WORDS).conversations(200, seed=4)
    assert a == b and a != c
    assert eval_items(HELDOUT_WORDS, 5, seed=9) == eval_items(HELDOUT_WORDS, 5, seed=9)
    assert list(spelling_documents(TRAIN_WORDS, 3, seed=1)) == list(spelling_documents(TRAIN_WORDS, 3, seed=1))


def test_training_never_spells_a_heldout_word(training_conversations):
    held = set(HELDOUT_WORDS)
    spelled = [w for c in training_conversations for t in _assistant_texts(c) for w in _spelled_words(t)]
    assert len(spelled) > 1000  # the check below looks at real data
    assert held.isdisjoint(spelled)
    assert held.isdisjoint(w for doc in spelling_documents(TRAIN_WORDS, 50, seed=2) for w in _spelled_words(doc))


def test_training_never_asks_a_heldout_expression(training_conversations):
    calls = [call for c in training_conversations for call in _python_calls(c)]
    assert len(calls) > 500
    assert not any(arithmetic.is_heldout(call) for call in calls)
    rng = random.Random(5)
    heldout_calls = {arithmetic.problem(rng, "heldout").call for _ in range(300)}
    assert all(arithmetic.is_heldout(call) for call in heldout_calls)
    assert heldout_calls.isdisjoint(calls)


def test_phrasings_are_disjoint_between_splits():
    tables = [small_talk.PROMPTS[k] for k in small_talk.PROMPTS] + list(word_skills.TEMPLATES.values())
    tables += [small_talk._OUT_OF_SCOPE_TEMPLATES, arithmetic._FRAMES]
    for table in tables:
        check_disjoint(table)  # raises if a phrasing is in both
    with pytest.raises(ValueError):
        check_disjoint({"train": ["spell {w}"], "heldout": ["Spell {w}"]})


def test_training_has_requests_typed_bare_and_the_heldout_requests_never_are():
    # "spell banana" alone is what people type first; held-out prompts stay as the eval pinned them
    from training.phrasing import BARE, compose

    rng = random.Random(2)
    train = [compose(rng, "spell {w}", "train", True, w="banana") for _ in range(4000)]
    assert abs(train.count("spell banana") / len(train) - BARE) < 0.015
    heldout = [compose(rng, "spell the letters of {w}", "heldout", True, w="banana") for _ in range(4000)]
    assert "spell the letters of banana" not in heldout


def test_heldout_word_requests_never_appear_inside_training_requests():
    rng = random.Random(8)
    for skill, table in word_skills.TEMPLATES.items():
        train = [word_skills.exchange(rng, skill, "qwertz", "train")[0].lower() for _ in range(6000)]
        for core, _ in table["heldout"]:
            text = core.format(w="qwertz", c="q", cs="q's").rstrip("?").lower()
            assert not any(text in prompt for prompt in train), (skill, text)


def test_heldout_arithmetic_constructions_and_wrappers_never_appear_in_training():
    rng = random.Random(9)
    train = [arithmetic.exchange(rng, "train")[0].lower() for _ in range(6000)]
    heldout = [phrase for _, phrase in arithmetic._COMMANDS["heldout"] + arithmetic._NOUNS["heldout"]]
    for phrase in heldout:
        pattern = re.escape(phrase).replace(re.escape("{a}"), r"\d+").replace(re.escape("{b}"), r"\d+")
        assert not any(re.search(pattern, prompt) for prompt in train), phrase
    source = ConversationSource("train", TRAIN_WORDS).conversations(3000, seed=11)
    prompts = train + [m["content"].lower() for c in source for m in c["messages"] if m["role"] == "user"]
    for wrapper in ("would you kindly ", "i'd like you to "):
        assert not any(wrapper in prompt for prompt in prompts), wrapper


def test_synonyms_change_the_request_never_the_word_asked_about():
    # "letters", "backwards" and "reverse" are words one may ask about, and also words the
    # phrasing swaps for synonyms: the swap must touch only the request's own words
    for seed in range(300):
        rng = random.Random(seed)
        for word in ("letters", "backwards", "reverse"):
            for skill in word_skills.WORD_SKILLS:
                user = word_skills.exchange(rng, skill, word, rng.choice(("train", "heldout"))).user
                assert word in user.lower(), (word, user)


def test_requests_are_made_of_real_words(training_conversations):
    # "reverse" becomes "invert" only as a verb: never "invertd", "in invert" or "the invert of"
    rng = random.Random(3)
    requests = [m["content"].lower() for c in training_conversations for m in c["messages"] if m["role"] == "user"]
    requests += [word_skills.exchange(rng, "reverse", "house", "heldout").user.lower() for _ in range(2000)]
    assert any("invert " in r for r in requests)
    assert not [r for r in requests if re.search(r"invertd|in invert|the invert|invert order", r)]


def test_requests_that_start_with_the_word_get_no_polite_wrapper():
    # "would you {w} - spell it" is not English: a core that starts with the word is not a command
    for templates in word_skills.TEMPLATES.values():
        for split in ("train", "heldout"):
            assert not [core for core, command in templates[split] if command and core.startswith("{")]


def test_eval_prompts_never_occur_in_training(training_conversations):
    train_prompts = {m["content"].lower() for c in training_conversations for m in c["messages"] if m["role"] == "user"}
    items = eval_items(HELDOUT_WORDS, 40, seed=1234)
    asked = [i.conversation["messages"][-1]["content"].lower() for i in items if i.skill != "small_talk"]
    assert not train_prompts.intersection(asked)
    for item in items:
        if item.skill in ("spelling", "reversal"):
            word = item.expected.replace(" ", "") if item.skill == "spelling" else item.expected[::-1]
            assert word in HELDOUT_WORDS and is_heldout(word)


def test_replies_do_the_skill_correctly():
    assert word_skills.spell_reply("banana") == "Letter by letter: b a n a n a."
    assert word_skills.count_reply("strawberry", "r") == (
        "Spelling it out and counting the r's: s t r (1) a w b e r (2) r (3) y. So there are 3 r's.")
    assert word_skills.count_reply("house", "h").endswith("So there is 1 h.")
    assert word_skills.count_reply("house", "z").endswith("So there are 0 z's.")
    parts = word_skills.reverse_reply("House")
    assert "".join(p["text"] for p in parts) == (
        "Spelled out: h o u s e. Backwards: e s u o h. Reversed, the word is esuoh.")
    assert [p["text"] for p in parts[1:-1]] == [" e", "s", "u", "o", "h"]  # one letter per token


def test_arithmetic_tool_output_matches_the_calculator():
    from model import calculate

    rng = random.Random(11)
    for _ in range(2000):
        user, parts, problem = arithmetic.exchange(rng, "train")
        call, output, answer = parts
        assert call["type"] == "python" and output["type"] == "python_output"
        assert calculate(call["text"]) == output["text"]
        assert answer["text"] == f"The answer is {output['text']}."


def test_multi_turn_follow_ups_use_the_earlier_turn():
    source = ConversationSource("train", TRAIN_WORDS, mixture={"multi_turn": 1.0})
    found = 0
    for conversation in source.conversations(300, seed=2):
        messages = conversation["messages"]
        for i in range(2, len(messages), 2):
            calls = list(_python_calls({"messages": [messages[i + 1]]}))
            earlier = messages[i - 1]["content"]
            if calls and isinstance(earlier, list) and calls[0].startswith(f"{earlier[1]['text']} "):
                found += 1  # "multiply that by 3" starts from the previous result
    assert found > 20


def test_made_up_practice_words_avoid_heldout_words():
    from training.word_pools import pseudo_words

    pieces = ["ban", "ana", "or", "y", "house", "ho", "use", "st", "raw", "berry"]
    exclude = {"banana", "house", "strawberry"}
    words = pseudo_words(pieces, 200, seed=1, exclude=exclude)
    assert words == pseudo_words(pieces, 200, seed=1, exclude=exclude)
    assert len(words) == 200 and exclude.isdisjoint(words)
    assert all(w.isalpha() and w.islower() and 3 <= len(w) <= 12 for w in words)
    assert any(a == b for w in words for a, b in zip(w, w[1:]))  # doubled letters where pieces meet


def test_fine_tuning_adds_conversations_about_one_token_words_with_follow_ups_about_them(tmp_path):
    # "spell banana" failed where " banana" is one token: the recipe adds conversations about
    # those words, and asks about them again by "it"/"that" often, so that a pronoun (itself a
    # one-token word) is learnt as a reference to the word and not spelled itself
    from pathlib import Path

    from tokenizer import Tokenizer
    from training.jsonl import write_jsonl
    from training.recipe import RECIPES
    from training.run import Run
    from training.stages import sft_conversations
    from training.word_pools import one_token_words, word_pools

    tok = Tokenizer.load(Path(__file__).parents[1] / "checkpoints" / "default" / "tokenizer")
    one_token = one_token_words(tok)
    assert "banana" in one_token and "house" in one_token and len(one_token) > 50
    assert all(len(tok.encode(" " + w)) == 1 or len(tok.encode(w)) == 1 for w in one_token)
    assert set(one_token) <= set(word_pools(tok)[0])  # never a held-out word
    base = [{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "Hello!"}]}] * 1000

    def fine_tuning_set(share):
        run = Run(RECIPES["tiny"].overridden(one_token_share=share, coverage_share=0.0), tmp_path / str(share))
        write_jsonl(run.path("data", "sft_train.jsonl"), base)
        return sft_conversations(run, tok)

    assert len(fine_tuning_set(0.0)) == 1000
    conversations = fine_tuning_set(0.4)
    assert len(conversations) == 1400
    asked_again = 0
    for conversation in conversations:
        messages = conversation["messages"]
        for user, assistant in zip(messages[2::2], messages[3::2]):
            earlier = " ".join(m["content"] for m in messages[:messages.index(user)] if m["role"] == "user")
            spelled = [w for w in _spelled_words(next(_assistant_texts({"messages": [assistant]}))) if w in one_token]
            if any(w not in user["content"] and w in earlier for w in spelled):
                asked_again += 1  # the reply spells a one-token word that only an earlier turn named
    assert asked_again > 100  # 138 here; 66 with the practice mixture's follow-up weights
