"""QA grading without a judge: SQuAD-style normalisation, exact match and token F1 against every gold
alias. `correct` is exact match against any alias; the score is the best F1 (partial credit kept for
analysis, never a verdict).
"""

from __future__ import annotations

import re
import string
from collections import Counter
from collections.abc import Sequence

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCTUATION = str.maketrans("", "", string.punctuation)


def normalise(text: str) -> str:
    """SQuAD's answer normalisation: lower case, no punctuation, no articles, single spaces."""
    return " ".join(_ARTICLES.sub(" ", text.lower().translate(_PUNCTUATION)).split())


def f1(gold: str, answer: str) -> float:
    """Token F1 of two normalised answers (SQuAD: bag of words overlap)."""
    gold_tokens, answer_tokens = gold.split(), answer.split()
    common = sum((Counter(gold_tokens) & Counter(answer_tokens)).values())
    if not gold_tokens or not answer_tokens:
        return float(gold_tokens == answer_tokens)
    if common == 0:
        return 0.0
    precision, recall = common / len(answer_tokens), common / len(gold_tokens)
    return 2 * precision * recall / (precision + recall)


def last_boxed(text: str) -> str | None:
    """The content of the last \\boxed{...} in text (nested braces kept), or None."""
    start = text.rfind("\\boxed{")
    if start < 0:
        return None
    depth, begin = 0, start + len("\\boxed{")
    for i in range(begin, len(text)):
        if text[i] == "{":
            depth += 1
        elif text[i] == "}":
            if depth == 0:
                return text[begin:i]
            depth -= 1
    return None


def grade_qa(golds: Sequence[str], answer: str) -> tuple[bool, float, str]:
    """(exact match against any alias, best F1, explanation) for one answer."""
    boxed = last_boxed(answer)
    answer_norm = normalise(boxed if boxed is not None else answer)
    scores = [(answer_norm == (g := normalise(gold)), f1(g, answer_norm), gold) for gold in golds]
    exact = any(s[0] for s in scores)
    best = max(scores, key=lambda s: (s[0], s[1]))
    return exact, best[1], f"qa: exact match {'yes' if exact else 'no'}, F1 {best[1]:.2f} against {best[2]!r}"
