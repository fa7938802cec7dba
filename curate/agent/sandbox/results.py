"""What one code step produced, as the agent loop, replay and the store see it (a leaf module)."""

from __future__ import annotations

from dataclasses import dataclass

# smolagents' truncate_content limit for "Last output from code snippet"; errors are cut the same way.
VALUE_CHARS = 20_000
ERROR_CHARS = 50_000
RETRY = (
    "Now let's retry: take care not to repeat previous errors! If you have retried several "
    "times, try a completely different approach.\n"
)


@dataclass(frozen=True)
class StepResult:
    """What one code step produced, and the observation the agent sees."""

    observation: str  # the tool-response text after "Observation:\n" (see tool_responses)
    error: str | None  # None when the step ran to the end (or to final_answer)
    final_answer: str | None  # str(x) of final_answer(x)
    logs: str  # printed output
    value: str | None  # str() of the last statement's value ("Last output from code snippet")
    value_repr: str | None  # repr() of it (how IPython would display it)
    redacted: int = 0  # secret values of curate's environment replaced in these texts (sandbox.scrub)

    @property
    def is_final(self) -> bool:
        """The step called final_answer: the run ends here."""
        return self.final_answer is not None

    @classmethod
    def success(cls, logs: str, value: str, value_repr: str, final_answer: str | None = None) -> StepResult:
        """A step that ran: the release's `Execution logs` / `Last output` observation."""
        observation = f"Execution logs:\n{logs}Last output from code snippet:\n{value}"
        return cls(observation, None, final_answer, logs, value, value_repr)

    @classmethod
    def failure(cls, error: str, logs: str = "") -> StepResult:
        """A step that failed: what it printed, then the release's `Error:` text."""
        printed = f"Execution logs:\n{logs}\n" if logs else ""
        return cls(f"{printed}Error:\n{error}\n{RETRY}", error, None, logs, None, None)

    def tool_responses(self, call_id: str) -> list[str]:
        """The release's tool-response messages for this step (an error adds its own message)."""
        if self.error is None:
            return [f"Call id: {call_id}\nObservation:\n{self.observation}"]
        printed = [f"Call id: {call_id}\nObservation:\nExecution logs:\n{self.logs}"] if self.logs else []
        return [*printed, f"Call id: {call_id}\nError:\n{self.error}\n{RETRY}"]
