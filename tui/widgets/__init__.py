"""The chat app's widgets: each small and styled from ``tui/glasschat.tcss``."""
