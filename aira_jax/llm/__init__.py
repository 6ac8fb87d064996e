"""LLM clients for the agents: one protocol (`LLMClient`), three backends (Gemini, OpenAI-compatible, scripted).

`make_client("gemini:gemini-2.5-pro")` builds one from a spec. Replies asked with a JSON schema are validated
here; transient errors are retried with backoff; `AccountedClient` adds token budgets, call logs and a
concurrency limit. Importing this package does not import google.genai (the Gemini client loads it lazily).
"""

from aira_jax.llm.accounting import AccountedClient, CallLog, ConcurrencyLimit, TokenBudget
from aira_jax.llm.base import (Completion, LLMBudgetExceeded, LLMClient, LLMConnectionError, LLMError,
                               LLMRateLimitError, LLMResponseError, LLMServerError, LLMTimeoutError, Message, Usage)
from aira_jax.llm.gemini import GeminiClient
from aira_jax.llm.openai_compat import OpenAICompatClient
from aira_jax.llm.registry import BACKENDS, make_client
from aira_jax.llm.retry import RetryPolicy
from aira_jax.llm.schema import parse_json_reply, schema_errors, validate
from aira_jax.llm.scripted import ScriptedClient

__all__ = [
    "AccountedClient", "BACKENDS", "CallLog", "Completion", "ConcurrencyLimit", "GeminiClient", "LLMBudgetExceeded",
    "LLMClient", "LLMConnectionError", "LLMError", "LLMRateLimitError", "LLMResponseError", "LLMServerError",
    "LLMTimeoutError",
    "Message", "OpenAICompatClient", "RetryPolicy", "ScriptedClient", "TokenBudget", "Usage", "make_client",
    "parse_json_reply", "schema_errors", "validate",
]
