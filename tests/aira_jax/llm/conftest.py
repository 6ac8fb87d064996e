"""Fixtures for the LLM client tests: a local fake HTTP server and a recording, instant `sleep`.

Puts this folder on sys.path so tests can also `from fake_servers import FakeResponse`. Nothing here touches
the network beyond 127.0.0.1.
"""

import pathlib
import sys

import pytest

sys.path.insert(0, str(pathlib.Path(__file__).parent))

from fake_servers import FakeServer  # noqa: E402


@pytest.fixture
def fake_server():
  """A started FakeServer, stopped after the test."""
  with FakeServer() as server:
    yield server


@pytest.fixture
def sleeps():
  """A list that doubles as an instant `sleep`: pass `sleeps.append`; it records every wait asked for."""
  return []


@pytest.fixture(autouse=True)
def _no_real_keys(monkeypatch):
  """Tests never see the developer's real API keys or base URLs."""
  for name in ("GOOGLE_API_KEY", "GEMINI_API_KEY", "OPENAI_API_KEY", "OPENAI_BASE_URL"):
    monkeypatch.delenv(name, raising=False)
