"""The last line of defence: secret values of curate's own environment never reach a store.

The jail gives model code an empty environment and no view of home folders, so it should never
see a token. Should it still print one (a future hole, a tool that echoes), every text a step sends
back has each secret-looking variable's value replaced by `[redacted $NAME]` before the agent,
replay or the store sees it, and the replacements are counted.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Mapping

from .results import StepResult

# Variable names that hold credentials by convention (HF_TOKEN, OPENAI_API_KEY, AWS_SECRET_ACCESS_KEY ...).
SECRET_NAME = re.compile(r"TOKEN|KEY|SECRET|PASSWORD|PASSWD|CREDENTIAL", re.IGNORECASE)
# Shorter values are left alone: replacing "1" or "true" everywhere would corrupt every observation.
MIN_CHARS = 8
_PARTS = ("error", "final_answer", "logs", "value", "value_repr")


class Secrets:
    """The secret-looking values of an environment, and the scrubbing of texts that hold them."""

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        environ = os.environ if environ is None else environ
        found = {
            value: name
            for name, value in sorted(environ.items())
            if SECRET_NAME.search(name) and len(value) >= MIN_CHARS
        }
        # Longest first, so that a secret containing another is replaced whole.
        self.values = sorted(found, key=len, reverse=True)
        self.names = found
        self._pattern = re.compile("|".join(map(re.escape, self.values))) if self.values else None

    def __len__(self) -> int:
        return len(self.values)

    def scrub(self, text: str) -> tuple[str, int]:
        """`text` with every secret value replaced, and how many were."""
        if self._pattern is None:
            return text, 0
        return self._pattern.subn(lambda m: f"[redacted ${self.names[m.group()]}]", text)

    def scrub_result(self, result: StepResult) -> StepResult:
        """A step's result with its texts scrubbed; `redacted` counts the replacements in its observation."""
        observation, count = self.scrub(result.observation)
        if not count:
            return result
        # The other texts are parts of the observation: scrubbed too, counted once, there.
        changes = {
            field: self.scrub(getattr(result, field))[0] for field in _PARTS if getattr(result, field) is not None
        }
        return dataclasses.replace(result, observation=observation, **changes, redacted=result.redacted + count)
