"""Small talk: greetings, who-are-you, what-can-you-do, thanks, goodbye — and the honest refusal
for anything outside the model's skills.

The replies describe this model as it is: a tiny model trained from scratch on a CPU whose
skills are arithmetic (with the calculator tool), spelling, letter counting and reversing
words. One fixed reply per kind keeps a tiny model consistent.
"""

from __future__ import annotations

import random

from training.phrasing import Split, check_disjoint, compose, pick, typed

SKILLS_SENTENCE = "I can do arithmetic with a calculator, spell words, count letters in a word and reverse words."

REPLIES = {
    "greeting": "Hello! I'm glasschat's default model, a tiny language model. " + SKILLS_SENTENCE
    + " What would you like to try?",
    "identity": "I'm the default model of glasschat: a tiny language model trained from scratch on a CPU. "
    + SKILLS_SENTENCE,
    "capabilities": "I'm a tiny model with a few skills: arithmetic with a calculator (try \"what is 12 + 30?\", "
    "\"15% of 80\" or \"3 to the power of 4\"), spelling words (\"spell banana\"), counting letters (\"how many r's "
    "in strawberry?\", \"how many letters in hello?\"), reversing words (\"reverse the word house\") and "
    "palindromes (\"is level a palindrome?\").",
    "how_are_you": "I'm doing well, thanks for asking! I'm ready to calculate, spell, count letters or reverse "
    "a word for you.",
    "thanks": "You're welcome! Just ask if you want something else calculated, spelled, counted or reversed.",
    "goodbye": "Goodbye! Thanks for chatting.",
    "acknowledge": "Anything else? I can calculate, spell a word, count its letters or reverse it.",
    "out_of_scope": "Sorry, I can't help with that. I'm a tiny model: I can only do arithmetic, spell words, "
    "count letters in a word and reverse words.",
}

PROMPTS: dict[str, dict[str, list[str]]] = {
    "greeting": check_disjoint({
        "train": ["hi", "hello", "hey", "hi there", "hello there", "hey there", "good morning", "good evening",
                  "good afternoon", "hiya", "howdy", "greetings", "yo", "hello!", "hi!", "hey!", "hello, model",
                  "hi glasschat", "hello glasschat", "hey, anyone there?", "hi :)", "morning!", "heya", "sup",
                  "hello hello", "hi, nice to meet you", "hey, how's it going", "hallo", "hey buddy", "hi bot",
                  "greetings, model", "hello world", "evening", "hi there, friend", "hey glasschat"],
        "heldout": ["hello friend", "hi hi", "well hello", "hey hey", "hello again", "oh hi"],
    }),
    "identity": check_disjoint({
        "train": ["who are you?", "what are you?", "what's your name?", "what is your name?", "introduce yourself",
                  "tell me about yourself", "are you a bot?", "are you human?", "are you chatgpt?",
                  "who made you?", "who built you?", "what model are you?", "are you an AI?",
                  "what kind of model are you?", "are you a person?", "who am I talking to?",
                  "what should I call you?", "how were you trained?", "are you smart?", "how big are you?",
                  "what are you exactly?", "who is this?", "what's your deal?", "are you a language model?",
                  "what is your purpose?", "where do you come from?", "are you alive?", "do you have a name?",
                  "which company made you?", "how many parameters do you have?", "are you open source?",
                  "what's glasschat?", "tell me who you are"],
        "heldout": ["so who exactly are you?", "what exactly are you?", "describe yourself",
                    "are you a real person?", "what is glasschat?", "who created you?"],
    }),
    "capabilities": check_disjoint({
        "train": ["what can you do?", "what can you help with?", "help", "what are your skills?",
                  "what do you know how to do?", "how can you help me?", "what are you good at?",
                  "what can I ask you?", "what tasks can you do?", "list your skills", "what do you do?",
                  "can you do anything useful?", "what are you able to do?", "show me what you can do",
                  "what can you do for me?", "options?", "what can I do here?", "how do I use you?",
                  "what kind of questions can you answer?", "what can you help me with?", "any skills?",
                  "what are your abilities?", "what do you know?", "what are your features?", "what can you answer?",
                  "what should I ask you?", "give me some examples of what you can do"],
        "heldout": ["what are you capable of?", "which things can you do?", "what abilities do you have?",
                    "what sort of things can you do?", "give me a list of what you can do"],
    }),
    "how_are_you": check_disjoint({
        "train": ["how are you?", "how are you doing?", "how's it going?", "how do you feel?", "what's up?",
                  "how are things?", "you ok?", "how have you been?",
                  "how's your day going?", "how are you feeling?", "are you ok?", "how are you doing today?",
                  "what's new?", "how's life?", "everything good?", "are you well?"],
        "heldout": ["how are you today?", "are you doing well?", "how is your day?"],
    }),
    "thanks": check_disjoint({
        "train": ["thanks", "thank you", "thanks!", "thank you so much", "thx", "great, thanks",
                  "cool, thank you", "perfect, thanks!", "nice, thanks", "awesome, thank you", "ty",
                  "much appreciated", "that's helpful, thanks", "thanks, that's right", "great job, thanks",
                  "thank you!", "thanks a bunch", "wow, thanks", "nice work", "good job", "well done, thanks",
                  "many thanks", "thanks a ton", "thank u", "tysm", "thanks mate", "thank you kindly", "appreciate it",
                  "thanks for the help", "thank you so so much", "cheers", "thanks, that helps", "thank you, that's great",
                  "thanks again", "thank you for your help", "ok thanks", "great, thank you very much indeed"],
        "heldout": ["thanks so much", "thanks a lot", "thank you very much", "cheers, thanks"],
    }),
    "goodbye": check_disjoint({
        "train": ["bye", "goodbye", "bye!", "see you", "see you later", "good night", "that's all, bye",
                  "I have to go", "talk to you later", "cya", "farewell", "ok bye", "goodbye for now",
                  "bye, thanks", "later!", "that's it for today", "good night!", "I'm done, bye", "see you soon",
                  "thanks, bye!", "ok bye then", "bye for now", "see you tomorrow", "I'm off", "catch you later",
                  "have a good day", "night!", "gotta run"],
        "heldout": ["bye bye", "see ya", "gotta go, bye", "take care"],
    }),
}

# Out-of-scope requests: templates filled from topic lists, split by template. Some sound like
# the word skills ("what does {word} mean?") so the model learns where its skills end.
_OUT_OF_SCOPE_TEMPLATES = check_disjoint({
    "train": [
        "write a poem about {thing}", "tell me a joke about {thing}", "what is the capital of {country}?",
        "who is the president of {country}?", "translate \"{phrase}\" into {language}",
        "what's the weather like in {city}?", "explain {concept} to me", "what is {concept}?",
        "write a python function that {task}", "recommend a good {media}", "how do I {howto}?",
        "can you help me with my {subject} homework?", "write a story about {thing}",
        "what's the best {media} of all time?", "give me a recipe for {food}", "what time is it in {city}?",
        "who won the last world cup?", "what is the meaning of life?", "tell me some news",
        "can you browse the internet?", "summarize the history of {country}", "write an essay on {concept}",
        "what should I eat for dinner?", "play some music", "set an alarm for 7am",
        "what's the population of {country}?", "teach me {language}", "how far is the moon?",
        "debug my code", "write me a song about {thing}", "what do you think about {concept}?",
        "why is the sky blue?", "how does {concept} work?", "book a flight to {city}",
        "solve x^2 + 3x = 10", "how many people live in {city}?",
        "find me a restaurant in {city}", "what's your favorite {media}?", "describe a {thing}",
        "what does {word} mean?", "translate {word} into {language}", "use {word} in a sentence",
        "what rhymes with {word}?", "give me a synonym for {word}", "define {word}", "is {word} a noun?",
        "is {number} a prime number?", "what's the derivative of x^2?",
        "convert {number} miles to kilometers", "what day is it today?", "who are the Beatles?",
        "can you draw a picture of {thing}?", "what's the best programming language?", "how old is the universe?",
        "tell me about {country}", "can you order me a pizza?", "send an email to my mom",
        "what is love?", "give me investment advice", "how do airplanes fly?", "write a cover letter",
    ],
    "heldout": [
        "draft an email to my boss about {concept}", "who wrote the most famous {media}?",
        "give me directions to {city}", "compose a haiku about {thing}", "what language is spoken in {country}?",
        "can you write a limerick about {thing}?", "convert 10 dollars to euros", "tell me a fun fact about {country}",
        "what are the rules of chess?", "plan a trip to {city} for me", "what is the opposite of {word}?",
        "how do you pronounce {word}?",
    ],
})
_FILLERS = {
    "thing": ["the sea", "a cat", "autumn", "my dog", "love", "robots", "the moon", "coffee", "trains", "rain",
              "a dragon", "friendship", "mountains", "the city"],
    "country": ["France", "Japan", "Brazil", "Canada", "Kenya", "India", "Germany", "Peru", "Norway", "Egypt"],
    "phrase": ["good morning", "thank you", "where is the station", "I love you", "see you soon"],
    "language": ["French", "Spanish", "German", "Japanese", "Italian", "Chinese"],
    "city": ["Paris", "Tokyo", "London", "New York", "Cairo", "Sydney", "Berlin", "Lima"],
    "concept": ["quantum physics", "gravity", "photosynthesis", "inflation", "machine learning", "democracy",
                "black holes", "evolution", "the stock market", "relativity", "climate change"],
    "task": ["sorts a list", "reads a file", "reverses a string", "finds prime numbers", "parses JSON"],
    "media": ["movie", "book", "song", "video game", "TV show", "podcast"],
    "howto": ["bake bread", "tie a tie", "learn guitar", "fix a flat tire", "change a light bulb", "lose weight",
              "write a resume", "train a dog"],
    "subject": ["history", "chemistry", "biology", "geography", "physics", "literature"],
    "food": ["lasagna", "pancakes", "curry", "chocolate cake", "sushi", "soup"],
    "number": ["2", "50", "144", "1000", "17", "81"],
    "word": ["happy", "house", "banana", "serendipity", "river", "quickly", "apple", "ocean"],
}
KINDS = tuple(PROMPTS) + ("out_of_scope",)

# Kinds added after the first model shipped: kept out of ``KINDS`` so the small-talk eval's
# held-out prompts (drawn over ``KINDS``) stay the ones every earlier model was measured on.
MORE_PROMPTS: dict[str, dict[str, list[str]]] = {
    "acknowledge": check_disjoint({
        "train": ["ok", "okay", "ok.", "okay!", "lol", "haha", "hah", "cool", "nice", "got it", "alright", "k", "hmm",
                  "interesting", "wow", "oh", "i see", "makes sense", "sure", "right", "great", "neat", "lmao",
                  "ok cool", "oh nice", "hehe", "ah ok", "yep", "fair enough", "understood", "sounds good", "okie"],
        "heldout": ["okey dokey", "ahh i see", "cool cool", "lol ok", "oh wow", "hmm ok", "nice one"],
    }),
}
MORE_KINDS = tuple(MORE_PROMPTS)


def out_of_scope_prompt(rng: random.Random, split: Split) -> str:
    template = pick(rng, _OUT_OF_SCOPE_TEMPLATES, split)
    return template.format(**{k: rng.choice(v) for k, v in _FILLERS.items()})


def user_prompt(rng: random.Random, kind: str, split: Split) -> str:
    if kind == "out_of_scope":
        return typed(rng, compose(rng, out_of_scope_prompt(rng, split), split, command=False))
    text = pick(rng, PROMPTS[kind] if kind in PROMPTS else MORE_PROMPTS[kind], split)
    if rng.random() < 0.3:  # "hi!", "hello :)", "thanks."
        text = text.rstrip("!?.") + rng.choice(("!", "!!", ".", " :)", "?" if text.endswith("?") else ""))
    return typed(rng, text)


def exchange(rng: random.Random, kind: str, split: Split) -> tuple[str, str]:
    """One (user, assistant) exchange of the given kind."""
    return user_prompt(rng, kind, split), REPLIES[kind]
