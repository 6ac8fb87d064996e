"""The Bazel test glob and pytest's file rule must be the same rule, so neither suite can miss a test file."""

import configparser
import fnmatch
import pathlib
import re

ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_bazel_glob_and_pytest_rule_select_the_same_files():
  config = configparser.ConfigParser()
  config.read(ROOT / "setup.cfg")
  pytest_patterns = config["tool:pytest"]["python_files"].split()
  globs = re.findall(r'py_test\([\s\S]*for src in glob\(\["([^"]+)"\]\)', (ROOT / "BUILD").read_text())
  assert globs == ["tests/**/*_test.py"]
  test_files = sorted(p for p in (ROOT / "tests").rglob("*.py"))
  by_pytest = {p for p in test_files if any(fnmatch.fnmatch(p.name, pat) for pat in pytest_patterns)}
  by_bazel = {p for p in test_files if p.name.endswith("_test.py")}
  assert by_pytest == by_bazel and by_pytest
  # Files that look like tests under another rule would be silently skipped by both.
  assert not [p for p in test_files if p.name.startswith("test_")]
