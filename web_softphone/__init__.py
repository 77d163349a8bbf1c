"""Browser agent desktop and supervisor console, and their WebSocket signaling."""
