"""The tutorial as a notebook (examples/pbt_visualization.ipynb) executes top to bottom, so it never rots."""

from __future__ import annotations

import os

import pytest

NOTEBOOK = os.path.join(os.path.dirname(__file__), os.pardir, "examples", "pbt_visualization.ipynb")


@pytest.mark.slow
def test_notebook_executes_and_shows_its_animations_inline(tmp_path):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    assert all(not cell.get("outputs") for cell in notebook.cells if cell.cell_type == "code"), \
        "commit the notebook without outputs"
    client = nbclient.NotebookClient(notebook, timeout=180, kernel_name="python3",
                                     resources={"metadata": {"path": str(tmp_path)}})
    client.execute()  # raises CellExecutionError on the first failing cell
    outputs = [output for cell in notebook.cells if cell.cell_type == "code" for output in cell.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    stderr = "".join(o.get("text", "") for o in outputs if o.output_type == "stream" and o.get("name") == "stderr")
    assert "Warning" not in stderr  # e.g. no label warning: the notebook labels trials in trial order
    html = [o["data"]["text/html"] for o in outputs if "text/html" in o.get("data", {})]
    assert len(html) == 2 and all(h.startswith('<img src="data:image/gif;base64,') for h in html)
    assert sum("image/png" in o.get("data", {}) for o in outputs) == 7
    for name in ("pbt.gif", "pbt4.gif", "figure2.png", "pbt_4_report.html"):
        assert os.path.getsize(tmp_path / name) > 10_000
