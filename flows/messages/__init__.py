"""Messages out: supplier e-mails and operator Adaptive Cards, rendered from sandboxed templates."""

from flows.messages.rendering import DEFAULT_FOLDER, MessageTemplates, TemplateProblem

__all__ = ["DEFAULT_FOLDER", "MessageTemplates", "TemplateProblem"]
