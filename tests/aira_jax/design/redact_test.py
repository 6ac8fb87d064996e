"""Tests of secret redaction: which variables count as secrets, and that every text of an outcome is cleaned."""

import dataclasses
import pathlib

from aira_jax.design.redact import redact, redact_outcome, redact_value, secret_values
from aira_jax.design.sandbox import SandboxOutcome


def test_secret_values_picks_key_variables_and_secret_looking_names():
  environ = {"GEMINI_API_KEY": "g" * 20, "OPENAI_API_KEY": "o" * 12, "HF_TOKEN": "hf_abcdefgh",
             "MY_PASSWORD": "pw123456", "PATH": "/usr/bin:/bin:/usr/local/bin", "SHORT_KEY": "abc", "HOME": "/root"}
  found = secret_values(environ)
  assert found == {"g" * 20: "GEMINI_API_KEY", "o" * 12: "OPENAI_API_KEY", "hf_abcdefgh": "HF_TOKEN",
                   "pw123456": "MY_PASSWORD"}
  assert list(found) == sorted(found, key=len, reverse=True)  # a longer secret is replaced before its prefix


def test_redact_replaces_every_occurrence_and_keeps_the_rest():
  secrets = {"sk-live-1234567890": "OPENAI_API_KEY"}
  text = "key=sk-live-1234567890; again sk-live-1234567890!"
  assert redact(text, secrets) == "key=[redacted OPENAI_API_KEY]; again [redacted OPENAI_API_KEY]!"
  assert redact("nothing here", secrets) == "nothing here"


def test_redact_value_cleans_nested_strings_and_keys_with_json_escapes():
  secrets = {'se"cret\\value': "X_TOKEN"}
  value = [{"stage": "import", "error": 'found se"cret\\value', 'se"cret\\value': 1, "n": 2.5}]
  assert redact_value(value, secrets) == [{"stage": "import", "error": "found [redacted X_TOKEN]",
                                           "[redacted X_TOKEN]": 1, "n": 2.5}]


def test_redact_outcome_cleans_output_records_and_channel_error():
  secret = "AIzaSy-test-secret-0123"
  outcome = SandboxOutcome(returncode=1, killed=None, seconds=1.0, stdout=f"out {secret}", stderr=f"err {secret}",
                           records=[{"stage": "import", "event": "end", "ok": False, "error": f"raised {secret}"}],
                           workdir=pathlib.Path("/tmp/x"), consume_error=f"bad {secret}")
  cleaned = redact_outcome(outcome, {secret: "GOOGLE_API_KEY"})
  assert secret not in repr(dataclasses.asdict(cleaned))
  assert cleaned.stdout == "out [redacted GOOGLE_API_KEY]" and cleaned.records[0]["error"].endswith("KEY]")
  assert redact_outcome(outcome, {}) is outcome
