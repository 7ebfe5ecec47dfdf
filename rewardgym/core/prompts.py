"""Prompt templates: how a task's question is put to the policy.

``r1`` asks for reasoning in ``<think>`` and the result in ``<answer>`` (DeepSeek-R1-Zero's
recipe); ``plain`` asks only for the ``<answer>`` block. Either comes as one string or as
chat messages (system + user) for chat-tuned policies.
"""

from __future__ import annotations

TEMPLATES = {
    "r1": (
        "You are a careful assistant. Think the problem through first, then answer. "
        "Put your reasoning between <think> and </think> and the final answer between "
        "<answer> and </answer>, like this: <think> reasoning </think> <answer> answer </answer>."
    ),
    "plain": "Solve the problem. Give only the final answer between <answer> and </answer>.",
}


def instruction(template: str) -> str:
    """The instruction text of a template; an unknown name is an error that lists the known ones."""
    if template not in TEMPLATES:
        raise ValueError(f"unknown prompt template {template!r}; choose one of {sorted(TEMPLATES)}")
    return TEMPLATES[template]


def messages(question: str, template: str = "r1") -> list[dict[str, str]]:
    """The question as chat messages: the template's instruction as system, the question as user."""
    return [{"role": "system", "content": instruction(template)}, {"role": "user", "content": question}]


def render(question: str, template: str = "r1") -> str:
    """The question as one plain-text prompt, for base (non-chat) models."""
    return f"{instruction(template)}\n\nUser: {question}\nAssistant:"


def as_text(prompt: str | list[dict[str, str]]) -> str:
    """Any prompt form flattened to text (the observation a TextEnv returns)."""
    if isinstance(prompt, str):
        return prompt
    return "\n\n".join(f"{m['role']}: {m['content']}" for m in prompt)
