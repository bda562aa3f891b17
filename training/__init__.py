"""Training the default chat model on a CPU: offline text and word sources, deterministic
skill-conversation generators with a held-out split, batching with the loss mask, the training
loop, the staged recipe behind ``glasschat train`` and the evaluation behind ``glasschat eval``.

Heavy imports (torch) live in the modules that need them; data generation needs only the
standard library.
"""
