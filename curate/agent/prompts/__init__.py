"""The agent's prompts, as text files in this folder (Jinja2 templates), and their provenance hash.

codeact_system.txt        system prompt: tools, the Thought/Code/<end_code> format, examples, rules
task.txt                  the task message (smolagents' `New task:` plus the release's format reminder)
final_answer_*.txt        the answer asked for when a run reaches its step limit (as smolagents does)
first_thought.txt         the tool-free chain-of-thought prompt behind the first-thought prefix
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import jinja2

_ENV = jinja2.Environment(undefined=jinja2.StrictUndefined, keep_trailing_newline=False, autoescape=False)


def _text(name: str) -> str:
    return resources.files(__name__).joinpath(name).read_text(encoding="utf-8")


@dataclass(frozen=True)
class Prompts:
    """Every text the agent sees besides the task and its observations, resolved for one tool set."""

    system: str
    task: str  # template with {{ question }}
    final_answer_system: str
    final_answer_user: str  # template with {{ question }}
    first_thought: str

    def task_message(self, question: str) -> str:
        """The first user message of a run."""
        return _ENV.from_string(self.task).render(question=question)

    def final_answer_message(self, question: str) -> str:
        """The user message that asks for an answer after the step limit."""
        return _ENV.from_string(self.final_answer_user).render(question=question)

    @property
    def hash(self) -> str:
        """Hash of every prompt text (recorded with each generation run)."""
        parts = (self.system, self.task, self.final_answer_system, self.final_answer_user, self.first_thought)
        return hashlib.blake2b("\0".join(parts).encode(), digest_size=8).hexdigest()


def load_prompts(
    tools: Sequence[str], imports: Sequence[str], system_file: str | Path | None = None, system_text: str | None = None
) -> Prompts:
    """The packaged prompts rendered for these tools and import allow-list, or a system prompt of yours:
    a template file, or `system_text` used as it is (e.g. the one a student was trained with)."""
    if system_text is not None:
        system = system_text
    else:
        template = Path(system_file).read_text(encoding="utf-8") if system_file else _text("codeact_system.txt")
        system = _ENV.from_string(template).render(tools=list(tools), imports=list(imports)).strip()
    return Prompts(
        system=system,
        task=_text("task.txt").strip(),
        final_answer_system=_text("final_answer_system.txt").strip(),
        final_answer_user=_text("final_answer_user.txt").strip(),
        first_thought=_text("first_thought.txt").strip(),
    )
