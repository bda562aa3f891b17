"""The Textual app: chat with streaming, the tokenizer debug pane, the token inspector,
scripted replay and saved conversations. The conversation is a ``tui.session.ChatSession``; the
model is reached only through a ``model.backend.Backend``'s ``stream`` and its events, from a
thread worker.
"""
