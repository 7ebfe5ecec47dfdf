"""Small shared contracts: Task, Verdict, Verifier, TextEnv, answer extraction, registry loading."""

from .answer import Extraction, extract_answer, follows_r1_template
from .env import DataRequired, MissingExtra, TextEnv, UnicodeText
from .registry import EnvEntry, RegistryError, load_object, load_registry
from .types import Task, Verdict
from .verifier import Verifier

__all__ = ["DataRequired", "EnvEntry", "Extraction", "MissingExtra", "RegistryError", "Task", "TextEnv", "UnicodeText", "Verdict",
           "Verifier", "extract_answer", "follows_r1_template", "load_object", "load_registry"]
