"""The chat app's modal screens: help, settings, saved conversations."""
