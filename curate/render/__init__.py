"""The one rendering: a chat through the student's own template into token ids, each token with
its assistant turn (`chat.py`, which the scorer and the trainer both use) and its loss segment
(`segments.py`: reason, action, final), the marker profiles that find actions and answers
(`markers.py`), and the token columns of a tokenized export (`tokenized.py`)."""

from .chat import (
    ROLES,
    Rendering,
    TemplateError,
    chat_messages,
    normalise_role,
    prefix_consistent,
    render,
    render_alone,
    render_last_turn,
    stored_chats,
    turn_spans,
)

__all__ = [
    "ROLES",
    "Rendering",
    "TemplateError",
    "chat_messages",
    "normalise_role",
    "prefix_consistent",
    "render",
    "render_alone",
    "render_last_turn",
    "stored_chats",
    "turn_spans",
]
