"""Runs a notebook's code cells in order in one namespace (no Jupyter needed).

  python notebooks/run_notebook.py notebooks/quickstart.ipynb

Used by tests/notebooks_test.py so the notebooks stay runnable.
"""

import json
import sys


def run(path: str) -> dict:
  namespace = {"__name__": "__notebook__"}
  with open(path) as f:
    cells = json.load(f)["cells"]
  for i, cell in enumerate(cells):
    if cell["cell_type"] != "code":
      continue
    source = "".join(cell["source"])
    lines = source.rstrip().splitlines()
    code = compile(source, f"{path}[cell {i}]", "exec")
    exec(code, namespace)  # pylint: disable=exec-used
    last = lines[-1] if lines else ""
    if last and not last.startswith((" ", "#", "print(")) and "=" not in last:
      try:  # show the last expression, as Jupyter would
        print(eval(lines[-1], namespace))  # pylint: disable=eval-used
      except SyntaxError:
        pass
  return namespace


if __name__ == "__main__":
  run(sys.argv[1])
