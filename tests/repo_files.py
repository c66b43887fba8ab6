"""Loading the repository's scripts and config files (not packages) as modules in tests."""
import importlib.util
import os

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def load_module(relative_path: str, name: str | None = None):
  """The Python file at ``ROOT/relative_path``, executed as a fresh module."""
  path = os.path.join(ROOT, relative_path)
  name = name or relative_path.replace(os.sep, "_").removesuffix(".py")
  spec = importlib.util.spec_from_file_location(name, path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module
