"""The README's launch command starts JupyterLab on the start notebook."""

import os
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.timeout(180)
def test_dev_lab_serves_the_start_notebook(tmp_path):
    port, token = _free_port(), "dmlkit-test-token"
    env = dict(os.environ, JUPYTER_RUNTIME_DIR=str(tmp_path), JUPYTER_CONFIG_DIR=str(tmp_path))
    proc = subprocess.Popen(
        [str(ROOT / "dev"), "lab", "--no-browser", f"--port={port}", "--ServerApp.ip=127.0.0.1",
         f"--IdentityProvider.token={token}", "--ServerApp.port_retries=0"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        start_new_session=True)
    try:
        deadline, last_error = time.monotonic() + 150, None
        while time.monotonic() < deadline:
            try:
                url = f"http://127.0.0.1:{port}/api/contents/00_start_here.ipynb?token={token}"
                with urllib.request.urlopen(url, timeout=5) as resp:
                    body = resp.read().decode()
                break
            except OSError as err:
                last_error = err
                assert proc.poll() is None, proc.stdout.read().decode()[-2000:]
                time.sleep(1)
        else:
            pytest.fail(f"JupyterLab did not answer on port {port}: {last_error}")
        assert '"type": "notebook"' in body or '"type":"notebook"' in body
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/lab?token={token}", timeout=10) as r:
            assert r.status == 200 and "JupyterLab" in r.read().decode()
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
