"""BUILD is a Bazel target map (not a standalone workspace: see its header). These tests evaluate it as Starlark
with stub rules and stub `glob()`, then check it against the tree and setup.cfg, so that a module moved, a test
helper added or a requirement changed cannot leave BUILD wrong unnoticed; and they check that the checks fail on a
broken BUILD. buildifier, where installed, checks its format and lint.

Under Bazel this test's runfiles hold only part of the tree; the checks hold for that part too.
"""

import ast
import builtins
import configparser
import dataclasses
import fnmatch
import os
import pathlib
import re
import shutil
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]

SOURCE_DIRS = ("aira_jax", "pallas_kernels", "tests", "experiments")
"""Every file under these is in exactly one target, except UNTARGETED."""
UNTARGETED = ("experiments/**/*.md", "experiments/**/*.sh")
"""Notes and a GPU shell script that nothing reads at run time."""
_SKIPPED_DIRS = ("__pycache__", ".*", "*.egg-info")

LIBRARIES = ("aira_jax", "pallas_kernels")
"""The packages pip installs; their @pypi deps are install_requires, their data setup.cfg's package_data."""
EXTRA_PREFIX = "extra_"
"""BUILD's `extra_<name>` holds setup.cfg extra <name>."""

IMPORT_TO_REQUIREMENT = {"PIL": "pillow", "google": "google_genai", "orbax": "orbax_checkpoint", "yaml": "pyyaml"}
UNDECLARED_IMPORTS = {
    "absl": "grain's dependency; aira_jax/train/data.py reads grain's absl flags",
    "jaxlib": "jax's dependency",
    "torch": "optional PyTorch baselines (experiments/bench) and the Triton-interpreter test, which skips without it",
}
"""Third-party modules imported without a requirement of their own, on purpose."""

_RULES_PYTHON = "@rules_python//python:defs.bzl"
_RULE_ATTRS = {
    "py_library": {"srcs", "data", "deps", "imports", "testonly"},
    "py_binary": {"srcs", "data", "deps", "imports", "testonly", "main", "main_module", "args"},
    "py_test": {"srcs", "data", "deps", "imports", "main", "main_module", "args", "size", "timeout", "tags", "flaky",
                "shard_count"},
    "filegroup": {"srcs", "data", "testonly"},
}
_COMMON_ATTRS = {"name", "visibility", "tags"}
_NOT_STARLARK_IN_BUILD = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Import, ast.ImportFrom, ast.For,
                          ast.While, ast.If, ast.Try, ast.With, ast.Lambda, ast.Global, ast.Nonlocal, ast.Yield,
                          ast.Await, ast.Raise, ast.Assert, ast.Delete, ast.JoinedStr, ast.Set, ast.SetComp)
_STARLARK_BUILTINS = ("all", "any", "bool", "dict", "enumerate", "int", "len", "list", "max", "min", "range", "repr",
                      "reversed", "sorted", "str", "tuple", "type", "zip")


class BuildError(Exception):
  """BUILD is not a BUILD file Bazel would load."""


@dataclasses.dataclass
class Target:
  rule: str
  name: str
  attrs: dict

  def get(self, attr):
    return self.attrs.get(attr, [])


def _skipped(name):
  return any(fnmatch.fnmatch(name, pattern) for pattern in _SKIPPED_DIRS)


def source_files(root):
  """Files a BUILD glob can see: the top-level files and everything under SOURCE_DIRS (no caches)."""
  files = {p.name for p in root.iterdir() if p.is_file()}
  for top in SOURCE_DIRS:
    for dirpath, dirnames, filenames in os.walk(root / top):
      dirnames[:] = [d for d in dirnames if not _skipped(d)]
      rel = pathlib.Path(dirpath).relative_to(root).as_posix()
      files.update(f"{rel}/{f}" for f in filenames if not f.endswith(".pyc"))
  return files


def glob_regex(pattern):
  """Bazel glob semantics: `**` is zero or more whole path segments, `*` and `?` stay inside one segment."""
  if pattern.startswith("/") or ".." in pattern.split("/") or re.search(r"[^/]\*\*|\*\*[^/]", pattern):
    raise BuildError(f"bad glob pattern {pattern!r}")
  parts, regex = pattern.split("/"), ""
  for i, part in enumerate(parts):
    last = i == len(parts) - 1
    if part == "**":
      regex += ".+" if last else "(?:[^/]+/)*"
    else:
      regex += "".join("[^/]*" if c == "*" else "[^/]" if c == "?" else re.escape(c) for c in part)
      regex += "" if last else "/"
  return re.compile(regex + r"\Z")


def matching(files, patterns):
  regexes = [glob_regex(p) for p in patterns]
  return {f for f in files if any(r.match(f) for r in regexes)}


def evaluate(build_text, files):
  """Targets by name, from running BUILD as Starlark: `load` binds only what rules_python exports, rules take
  keyword arguments only, `glob` matches `files` and fails when empty (Bazel 8's default)."""
  try:
    tree = ast.parse(build_text, "BUILD")
  except SyntaxError as e:
    raise BuildError(f"not Starlark: {e}") from e
  for node in ast.walk(tree):
    if isinstance(node, _NOT_STARLARK_IN_BUILD):
      raise BuildError(f"line {node.lineno}: {type(node).__name__} is not allowed in a BUILD file")
  after_loads = False
  for node in tree.body:
    if not _is_load(node):
      after_loads = True
    elif after_loads:
      raise BuildError(f"line {node.lineno}: load() must come before everything else")

  targets = {}
  env = {"__builtins__": {name: getattr(builtins, name) for name in _STARLARK_BUILTINS}}

  def load(bzl, *symbols):
    exported = {"py_binary", "py_library", "py_test"} if bzl == _RULES_PYTHON else set()
    for symbol in symbols:
      if symbol not in exported:
        raise BuildError(f"{bzl} does not export {symbol}")
      env[symbol] = rule(symbol)

  def glob(include, exclude=(), allow_empty=False):
    found = matching(files, include) - matching(files, exclude)
    if not found and not allow_empty:
      raise BuildError(f"glob({include!r}) matches no file")
    return sorted(found)

  def rule(kind):
    def make(*args, **attrs):
      if args:
        raise BuildError(f"{kind} takes keyword arguments only")
      name = attrs.get("name")
      if not isinstance(name, str) or not name:
        raise BuildError(f"{kind} without a name")
      if name in targets:
        raise BuildError(f"two targets named {name}")
      unknown = set(attrs) - _RULE_ATTRS[kind] - _COMMON_ATTRS
      if unknown:
        raise BuildError(f"{kind} {name}: unknown attributes {sorted(unknown)}")
      for attr in ("srcs", "data", "deps"):
        value = attrs.get(attr, [])
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
          raise BuildError(f"{name}: {attr} is not a list of labels")
        if len(set(value)) != len(value):
          raise BuildError(f"{name}: {attr} lists a label twice")
      targets[name] = Target(kind, name, attrs)
    return make

  def package(**_):
    if targets:
      raise BuildError("package() must come before the targets")

  env.update(load=load, glob=glob, package=package, filegroup=rule("filegroup"))
  try:
    exec(compile(tree, "BUILD", "exec"), env)  # pylint: disable=exec-used
  except BuildError:
    raise
  except Exception as e:  # a NameError for a rule never loaded, a TypeError, ...
    raise BuildError(f"evaluating BUILD: {type(e).__name__}: {e}") from e
  return targets


def _is_load(node):
  return (isinstance(node, ast.Expr) and isinstance(node.value, ast.Call) and isinstance(node.value.func, ast.Name)
          and node.value.func.id == "load")


def requirement_name(requirement):
  """`orbax-checkpoint>=0.11` -> `orbax_checkpoint`, the normalised name rules_python's pip hub uses."""
  name = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", requirement).group(1)
  return re.sub(r"[-_.]+", "_", name).lower()


def requirements(setup, section, option):
  lines = [line.strip() for line in setup[section][option].splitlines()]
  return {requirement_name(line) for line in lines if line and not line.startswith("#")}


@dataclasses.dataclass
class Tree:
  root: pathlib.Path
  files: set
  targets: dict
  setup: configparser.ConfigParser

  @classmethod
  def read(cls, root, build_text=None):
    setup = configparser.ConfigParser()
    setup.read(root / "setup.cfg")
    files = source_files(root)
    text = (root / "BUILD").read_text() if build_text is None else build_text
    return cls(root, files, evaluate(text, files), setup)

  @property
  def install_requires(self):
    return requirements(self.setup, "options", "install_requires")

  @property
  def extras(self):
    section = "options.extras_require"
    return {name: requirements(self.setup, section, name) for name in self.setup[section]}

  def local(self, label):
    return label[1:] if label.startswith(":") else None

  def pip(self, label):
    return label[len("@pypi//"):] if label.startswith("@pypi//") else None

  def own_files(self, target, attrs=("srcs", "data")):
    return {label for attr in attrs for label in target.get(attr) if not label.startswith((":", "@", "//"))}

  def closure(self, name):
    """`name` and every target it reaches through deps and data."""
    seen, todo = set(), [name]
    while todo:
      current = todo.pop()
      if current in seen or current not in self.targets:
        continue
      seen.add(current)
      target = self.targets[current]
      todo += [self.local(label) for label in target.get("deps") + target.get("data") if self.local(label)]
    return seen

  def pips(self, target):
    """The requirements `target` names itself in deps."""
    return {self.pip(label) for label in target.get("deps") if self.pip(label)}

  def pip_closure(self, name):
    return set().union(*(self.pips(self.targets[t]) for t in self.closure(name)))


def check_labels(tree):
  """Every label resolves: local targets exist, files exist, deps are libraries or declared requirements."""
  declared = tree.install_requires.union(*tree.extras.values())
  problems = []
  for target in tree.targets.values():
    for attr in ("srcs", "data", "deps"):
      for label in target.get(attr):
        local, pip = tree.local(label), tree.pip(label)
        if local is not None:
          if local not in tree.targets:
            problems.append(f"{target.name}: {attr} names :{local}, which BUILD does not define")
          elif attr == "deps" and tree.targets[local].rule != "py_library":
            problems.append(f"{target.name}: deps names :{local}, a {tree.targets[local].rule}, not a py_library")
          elif tree.targets[local].attrs.get("testonly") and not target.attrs.get("testonly") \
              and target.rule != "py_test":
            problems.append(f"{target.name} is not testonly but depends on testonly :{local}")
        elif pip is not None:
          if attr != "deps":
            problems.append(f"{target.name}: {label} belongs in deps, not {attr}")
          elif pip not in declared:
            problems.append(f"{target.name}: {label} is not a requirement in setup.cfg")
          elif pip != requirement_name(pip):
            problems.append(f"{target.name}: {label} is not the pip hub's normalised name {requirement_name(pip)}")
        elif label.startswith(("@", "//")):
          problems.append(f"{target.name}: {attr} names {label}, outside this package and the @pypi hub")
        elif attr == "deps":
          problems.append(f"{target.name}: deps names {label}; a local target is written :{label}")
        elif label not in tree.files:
          problems.append(f"{target.name}: {attr} names {label}, which does not exist")
  return problems


def check_every_file_in_one_target(tree):
  owners = {}
  for target in tree.targets.values():
    for path in tree.own_files(target):
      owners.setdefault(path, []).append(target.name)
  problems = []
  for path in sorted(tree.files):
    if path.split("/")[0] not in SOURCE_DIRS or matching({path}, UNTARGETED):
      continue
    found = owners.get(path, [])
    if len(found) != 1:
      problems.append(f"{path} is in {len(found)} targets {found}, not one")
  return problems


def check_tests(tree):
  """The py_tests hold exactly the files pytest collects, each test's runfiles hold every test helper and
  setup.cfg, and no file looks like a test under a rule neither runner uses."""
  pytest_config = tree.setup["tool:pytest"]
  patterns = pytest_config["python_files"].split()
  testpaths = pytest_config["testpaths"].split()
  under_tests = {f for f in tree.files if f.endswith(".py") and f.split("/")[0] in testpaths}
  by_pytest = {f for f in under_tests if any(fnmatch.fnmatch(f.rsplit("/", 1)[-1], p) for p in patterns)}
  py_tests = [t for t in tree.targets.values() if t.rule == "py_test"]
  by_bazel = {f for t in py_tests for f in tree.own_files(t, ("srcs",))}
  problems = [f"{f}: pytest collects it, but no py_test holds it" for f in sorted(by_pytest - by_bazel)]
  problems += [f"{f}: a py_test holds it, but pytest does not collect it" for f in sorted(by_bazel - by_pytest)]
  problems += [f"{f} looks like a test but neither runner collects it" for f in sorted(under_tests - by_pytest)
               if f.rsplit("/", 1)[-1].startswith("test_")]
  helpers = (under_tests - by_pytest) | {"setup.cfg"}
  for target in py_tests:
    runfiles = {f for t in tree.closure(target.name) for f in tree.own_files(tree.targets[t])}
    missing = sorted(helpers - runfiles)
    if missing:
      problems.append(f"py_test {target.name} lacks {missing}")
    if len(tree.own_files(target, ("srcs",)) & by_pytest) != 1:
      problems.append(f"py_test {target.name} does not hold exactly one test file")
  return problems


def check_package_data(tree):
  """Each library's data is exactly the files setup.cfg ships as its package data (which is what the code reads
  at run time); every other file under the package is one of its srcs."""
  problems = []
  for name in LIBRARIES:
    if name not in tree.targets:
      problems.append(f"BUILD defines no target {name}")
      continue
    target = tree.targets[name]
    patterns = tree.setup["options.package_data"].get(name, "").split()
    shipped = matching(tree.files, [f"{name}/{p}" for p in patterns])
    data = tree.own_files(target, ("data",))
    srcs = tree.own_files(target, ("srcs",))
    problems += [f"{f}: setup.cfg ships it as package data, but it is not in {name}'s data"
                 for f in sorted(shipped - data)]
    problems += [f"{f}: in {name}'s data, but setup.cfg does not ship it" for f in sorted(data - shipped)]
    unowned = {f for f in tree.files if f.startswith(name + "/")} - shipped - srcs
    problems += [f"{f}: under {name}/ but neither package data nor one of its srcs" for f in sorted(unowned)]
  return problems


def check_requirements_match_setup_cfg(tree):
  """The @pypi labels are setup.cfg's requirements: the libraries' are install_requires, extra_<name>'s are
  extra <name>'s (plus :aira_jax), and no other target names a requirement of its own."""
  problems = []
  library_pips = set()
  for target in tree.targets.values():
    pips = tree.pips(target)
    if target.name in LIBRARIES:
      library_pips |= pips
    elif not target.name.startswith(EXTRA_PREFIX) and pips:
      problems.append(f"{target.name} names requirements {sorted(pips)}; only the libraries and extras do")
  if library_pips != tree.install_requires:
    problems.append(f"install_requires {sorted(tree.install_requires)} != the libraries' @pypi deps "
                    f"{sorted(library_pips)}")
  extras = tree.extras
  for name in sorted({t[len(EXTRA_PREFIX):] for t in tree.targets if t.startswith(EXTRA_PREFIX)} - set(extras)):
    problems.append(f"{EXTRA_PREFIX}{name}: setup.cfg has no extra {name}")
  for name, wanted in sorted(extras.items()):
    target = tree.targets.get(EXTRA_PREFIX + name)
    if target is None:
      problems.append(f"setup.cfg extra {name} has no target {EXTRA_PREFIX}{name}")
      continue
    pips = tree.pips(target)
    if pips != wanted:
      problems.append(f"{target.name}: @pypi deps {sorted(pips)} != setup.cfg extra {name} {sorted(wanted)}")
    if ":aira_jax" not in target.get("deps"):
      problems.append(f"{target.name} does not depend on :aira_jax")
  return problems


def _imports(path):
  for node in ast.walk(ast.parse(path.read_text(), str(path))):
    if isinstance(node, ast.Import):
      yield from (alias.name.split(".")[0] for alias in node.names)
    elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
      yield node.module.split(".")[0]


def check_imports(tree):
  """Each module a target's sources import is in its runfiles: first-party ones (the libraries, and top-level
  modules under tests/ and experiments/) through its deps; third-party ones as @pypi deps, which for the
  libraries may also come from an extra built on them (their optional features import lazily).
  UNDECLARED_IMPORTS are the exceptions."""
  first_party = {lib: {f for f in tree.files if f.startswith(lib + "/") and f.endswith(".py")} for lib in LIBRARIES}
  for f in sorted(tree.files):
    if f.endswith(".py") and f.split("/")[0] in ("tests", "experiments"):
      first_party.setdefault(f.rsplit("/", 1)[-1][:-3], set()).add(f)
  ignored = set(sys.stdlib_module_names) | {"__future__"} | set(UNDECLARED_IMPORTS)
  extras = [t for t in tree.targets if t.startswith(EXTRA_PREFIX)]
  problems = []
  for target in tree.targets.values():
    sources = sorted(f for f in tree.own_files(target, ("srcs",)) if f.endswith(".py"))
    if not sources:
      continue
    runfiles = {f for t in tree.closure(target.name) for f in tree.own_files(tree.targets[t])}
    available = tree.pip_closure(target.name)
    if target.name in LIBRARIES:
      available = available.union(*(tree.pip_closure(e) for e in extras if target.name in tree.closure(e)))
    for path in sources:
      for module in sorted(set(_imports(tree.root / path)) - ignored):
        if module in first_party:
          if not first_party[module] & runfiles:
            problems.append(f"{path} imports {module}, which is not in {target.name}'s deps")
          continue
        requirement = IMPORT_TO_REQUIREMENT.get(module, requirement_name(module))
        if requirement not in available:
          problems.append(f"{path} imports {module}, but {target.name}'s deps do not provide @pypi//{requirement}")
  return problems


CHECKS = (check_labels, check_every_file_in_one_target, check_tests, check_package_data,
          check_requirements_match_setup_cfg, check_imports)


@pytest.fixture(scope="module")
def tree():
  return Tree.read(ROOT)


@pytest.mark.parametrize("check", CHECKS, ids=lambda c: c.__name__)
def test_build_file(tree, check):
  assert check(tree) == []


def test_build_file_defines_the_expected_targets(tree):
  rules = {}
  for target in tree.targets.values():
    rules.setdefault(target.rule, set()).add(target.name)
  assert {"aira_jax", "pallas_kernels", "test_support", "bench"} <= rules["py_library"]
  assert "build_file_test" in rules["py_test"] and "bench_kernels" in rules["py_binary"]


def _buildifier(build_file):
  """buildifier's format and lint check of `build_file`; skips where buildifier is not installed (`npm install -g
  @bazel/buildifier`, or set $BUILDIFIER to its binary)."""
  buildifier = os.environ.get("BUILDIFIER") or shutil.which("buildifier")
  if not buildifier:
    pytest.skip("buildifier is not installed")
  return subprocess.run([buildifier, "--mode=check", "--lint=warn", "--warnings=all", str(build_file)],
                        capture_output=True, text=True, timeout=60)


def test_buildifier_accepts_build():
  done = _buildifier(ROOT / "BUILD")
  assert done.returncode == 0, done.stdout + done.stderr


def test_buildifier_rejects_a_misformatted_build(tmp_path):
  (tmp_path / "BUILD").write_text('filegroup(name = "configs", srcs = ["b.yaml", "a.yaml"])\n')
  assert _buildifier(tmp_path / "BUILD").returncode != 0


# The checks must be able to fail: a miniature project, and BUILD files broken in the ways that matter.

_SETUP_CFG = """\
[options]
install_requires =
    jax>=0.4
    PyYAML>=6
[options.package_data]
aira_jax =
    prompts/*.md
[options.extras_require]
dev =
    pytest>=8
[tool:pytest]
testpaths = tests
python_files = *_test.py
"""

_FILES = {
    "aira_jax/__init__.py": "import yaml\n",
    "aira_jax/core.py": "import jax\nfrom pallas_kernels import ops\n",
    "aira_jax/prompts/draft.md": "Draft a layout.\n",
    "pallas_kernels/ops.py": "import jax.numpy as jnp\n",
    "tests/conftest.py": "import pytest\n",
    "tests/helpers.py": "",
    "tests/pytest_main.py": "import pytest\n",
    "tests/core_test.py": "import helpers\nimport aira_jax.core\n",
    "experiments/tiny.yaml": "seed: 0\n",
}

_GOOD_BUILD = """\
load("@rules_python//python:defs.bzl", "py_library", "py_test")

py_library(name = "pallas_kernels", srcs = glob(["pallas_kernels/**/*.py"]), deps = ["@pypi//jax"])
py_library(
    name = "aira_jax",
    srcs = glob(["aira_jax/**/*.py"]),
    data = glob(["aira_jax/**/*.md"]),
    deps = [":pallas_kernels", "@pypi//jax", "@pypi//pyyaml"],
)
py_library(name = "extra_dev", testonly = True, deps = [":aira_jax", "@pypi//pytest"])
filegroup(name = "configs", srcs = glob(["experiments/*.yaml"]))
py_library(
    name = "test_support",
    testonly = True,
    srcs = glob(["tests/**/*.py"], exclude = ["tests/**/*_test.py"]),
    deps = [":extra_dev"],
)
[py_test(
    name = src[len("tests/"):-len(".py")],
    srcs = [src],
    data = ["setup.cfg", ":configs"],
    main_module = "pytest_main",
    deps = [":test_support"],
) for src in glob(["tests/**/*_test.py"])]
"""

_BROKEN = {
    "a helper left out": (('srcs = glob(["tests/**/*.py"], exclude = ["tests/**/*_test.py"])',
                           'srcs = ["tests/conftest.py", "tests/pytest_main.py"]'),
                          ["tests/helpers.py is in 0 targets", "lacks ['tests/helpers.py']"]),
    "a file in two targets": (('srcs = [src],', 'srcs = [src, "tests/pytest_main.py"],'),
                              ["tests/pytest_main.py is in 2 targets"]),
    "a dep on an undefined target": ((':extra_dev"]', ':extra_devel"]'), ["names :extra_devel"]),
    "an undeclared requirement": (('"@pypi//pyyaml"', '"@pypi//requests"'),
                                  ["@pypi//requests is not a requirement", "imports yaml"]),
    "a requirement short of setup.cfg": ((', "@pypi//pyyaml"]', ']'), ["install_requires", "imports yaml"]),
    "prompts not in data": (('data = glob(["aira_jax/**/*.md"]),', ''),
                            ["aira_jax/prompts/draft.md is in 0 targets", "not in aira_jax's data"]),
    "a test file in no py_test": (('glob(["tests/**/*_test.py"])]', '[]]'),
                                  ["tests/core_test.py: pytest collects it, but no py_test holds it"]),
    "tests that reach no aira_jax": (('deps = [":aira_jax", "@pypi//pytest"]', 'deps = ["@pypi//pytest"]'),
                                     ["tests/core_test.py imports aira_jax, which is not in"]),
    "a test whose runfiles lack setup.cfg": (('data = ["setup.cfg", ":configs"]', 'data = [":configs"]'),
                                             ["lacks ['setup.cfg']"]),
}

_UNLOADABLE = {
    "a rule that was never loaded": ('filegroup(name = "configs"', 'sh_test(name = "configs"'),
    "a glob that matches nothing": ('glob(["experiments/*.yaml"])', 'glob(["configs/*.yaml"])'),
    "a def": ('load(', 'def f():\n    pass\n\nload('),
    "a load after a target": ('filegroup(name = "configs"',
                              'load("@rules_python//python:defs.bzl", "py_binary")\nfilegroup(name = "configs"'),
    "two targets with one name": ('name = "configs"', 'name = "aira_jax"'),
    "a misspelt attribute": ('testonly = True, deps', 'testonly = True, dep'),
}


@pytest.fixture
def project(tmp_path):
  (tmp_path / "setup.cfg").write_text(_SETUP_CFG)
  for path, text in _FILES.items():
    (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
    (tmp_path / path).write_text(text)
  return tmp_path


def _problems(root, build_text):
  tree = Tree.read(root, build_text)
  return [p for check in CHECKS for p in check(tree)]


def test_checks_pass_a_good_miniature_build(project):
  assert _problems(project, _GOOD_BUILD) == []


@pytest.mark.parametrize("case", sorted(_BROKEN))
def test_checks_catch_a_broken_build(project, case):
  (old, new), expected = _BROKEN[case]
  assert old in _GOOD_BUILD
  problems = "\n".join(_problems(project, _GOOD_BUILD.replace(old, new)))
  for fragment in expected:
    assert fragment in problems


@pytest.mark.parametrize("case", sorted(_UNLOADABLE))
def test_evaluation_rejects_what_bazel_would_not_load(project, case):
  old, new = _UNLOADABLE[case]
  assert old in _GOOD_BUILD
  with pytest.raises(BuildError):
    Tree.read(project, _GOOD_BUILD.replace(old, new))


def test_checks_catch_a_module_that_no_glob_reaches(project):
  (project / "experiments" / "sweep.py").write_text("")
  assert "experiments/sweep.py is in 0 targets" in "\n".join(_problems(project, _GOOD_BUILD))
