"""toolmod: load one of tools/'s extension-less Python scripts as a module,
for the check_*.py tests beside this file (they run as scripts, so this
directory is on their import path)."""

import os
import sys


def load_tool(path, name):
    """Execute the script at @path as module @name (its main() is not run:
    __name__ is @name) and return its globals. Its own directory goes on
    the import path first, for the scripts that import benchlib."""
    sys.path.insert(0, os.path.dirname(os.path.abspath(path)))
    mod = {"__name__": name, "__file__": path}
    with open(path) as f:
        exec(compile(f.read(), path, "exec"), mod)
    return mod
