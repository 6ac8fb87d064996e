"""Redacts known secret values from what a candidate printed or recorded, before it is kept anywhere.

Defence in depth behind the sandbox: under bwrap a candidate cannot read the parent's environment at all, but
in the process-only mode it can (through /proc). `secret_values()` collects the values of the API-key variables
the LLM clients read (`GOOGLE_API_KEY`, `GEMINI_API_KEY`, `OPENAI_API_KEY`) and of every other variable
whose name looks secret (KEY, TOKEN, SECRET, PASSWORD, CREDENTIAL...), at least 8 characters long; `redact`
replaces each occurrence with `[redacted NAME]`. It cannot catch an encoded secret (base64, reversed, split
across lines): only the OS isolation stops those.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re

LLM_KEY_VARIABLES = ("GOOGLE_API_KEY", "GEMINI_API_KEY", "OPENAI_API_KEY")
SECRET_NAME = re.compile(r"KEY|TOKEN|SECRET|PASSW|CREDENTIAL|COOKIE|SESSION|AUTH", re.IGNORECASE)
MIN_SECRET_CHARS = 8


def secret_values(environ=None) -> dict[str, str]:
  """value -> variable name of every secret-looking variable (module docstring), longest values first."""
  environ = os.environ if environ is None else environ
  found = {value: name for name, value in environ.items()
           if (name in LLM_KEY_VARIABLES or SECRET_NAME.search(name)) and len(value) >= MIN_SECRET_CHARS}
  return dict(sorted(found.items(), key=lambda item: -len(item[0])))


def redact(text: str, secrets: dict[str, str] | None = None) -> str:
  """`text` with every known secret value replaced by `[redacted NAME]`."""
  secrets = secret_values() if secrets is None else secrets
  for value, name in secrets.items():
    if value in text:
      text = text.replace(value, f"[redacted {name}]")
  return text


def redact_value(value, secrets: dict[str, str] | None = None):
  """A JSON-like value (records, metrics) with secrets redacted in every string, keys included."""
  secrets = secret_values() if secrets is None else secrets
  if not secrets:
    return value
  return json.loads(redact(json.dumps(value), {json.dumps(k)[1:-1]: n for k, n in secrets.items()}))


def redact_outcome(outcome, secrets: dict[str, str] | None = None):
  """A `SandboxOutcome` with secrets redacted from its stdout, stderr, records and channel error."""
  secrets = secret_values() if secrets is None else secrets
  if not secrets:
    return outcome
  return dataclasses.replace(
      outcome, stdout=redact(outcome.stdout, secrets), stderr=redact(outcome.stderr, secrets),
      records=redact_value(outcome.records, secrets),
      consume_error=None if outcome.consume_error is None else redact(outcome.consume_error, secrets))
