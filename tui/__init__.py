"""The Textual app: chat with streaming, the tokenizer debug pane, the token inspector,
scripted replay and saved conversations. Talks to the engine only through ``Engine.stream``
and its events, from a thread worker.
"""
