"""Import each project module alone, each in a process where no project module was loaded
before: a cycle that only breaks when one particular module is imported first shows up here.

Run as a script (``python tests/architecture/import_each.py MODULE...``): the parent imports
the heavy third-party libraries once, loads no project module, and forks one child per module,
so each child starts from a clean project state without paying torch's import again. Prints one
line per module that failed, with the error; exit status 1 if any failed."""

from __future__ import annotations

import importlib
import os
import sys
import traceback

HEAVY = ("torch", "numpy", "pydantic", "polars", "pyarrow", "ray", "typer", "rich", "yaml")


def main(names: list[str]) -> int:
    for lib in HEAVY:
        importlib.import_module(lib)
    project = {n.split(".")[0] for n in names}
    assert not [m for m in sys.modules if m.split(".")[0] in project], "a project module loaded"
    failed = 0
    for name in names:
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:  # child: import the one module, report, exit without cleanup
            os.close(r)
            sys.argv = [name]
            try:
                importlib.import_module(name)
                code = 0
            except BaseException:
                os.write(w, traceback.format_exc(limit=-3).encode())
                code = 1
            os._exit(code)
        os.close(w)
        with os.fdopen(r, "rb") as f:
            err = f.read().decode()
        _, status = os.waitpid(pid, 0)
        if os.waitstatus_to_exitcode(status) != 0:
            failed += 1
            print(f"{name}: {err.strip() or 'exit status ' + str(status)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
