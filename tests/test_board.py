"""``nnframe board``: a real TensorBoard server over a run's events, and its error messages."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
from typer.testing import CliRunner

from fixtures.console import NNFRAME
from nnframe.cli import app
from nnframe.board import launch_board
from nnframe.errors import UserError
from nnframe.plugins import get_plugin_manager
from nnframe.run import EvalMetrics, RunContext, StepMetrics
from nnframe.tracking import RunDirectory

STARTUP_TIMEOUT_S = 90


SESSION_GROUPS_QUERY = {
    "experimentName": "",
    "allowedStatuses": ["STATUS_UNKNOWN", "STATUS_SUCCESS", "STATUS_FAILURE", "STATUS_RUNNING"],
    "colParams": [{"metric": {"tag": "train/loss"}}],
    "startIndex": 0,
    "sliceSize": 10,
}


def write_run(runs_dir: Path, steps: int, every: int) -> str:
    """A run logged through the built-in logger; returns its TensorBoard run name."""
    run_dir = RunDirectory.create(runs_dir, "tiny")
    config = {"name": "tiny", "log": {"every": every, "grad_norms": False, "histograms_every": 0}}
    run_dir.write_config(config)
    plugins = get_plugin_manager()
    run = RunContext(name="tiny", config=config, run_dir=run_dir.path, plugin_manager=plugins.pm)
    run.hook.nnframe_configure_run(run=run)
    run.hook.nnframe_run_start(run=run)
    for step in range(1, steps + 1):
        logged = step % every == 0
        metrics = StepMetrics(step=step, epoch=0, loss=1.0 / step, lr=0.1, logged=logged,
                              accuracy=0.5 if logged else None)
        run.hook.nnframe_step_end(run=run, metrics=metrics)
        if logged:
            run.hook.nnframe_log_metrics(run=run, metrics=metrics)
    run.hook.nnframe_evaluation_end(run=run, metrics=EvalMetrics(steps, 0, 0.5, 0.5))
    run.hook.nnframe_run_end(run=run, status="completed", summary={})
    run.unregister_all()
    return f"tiny/{run_dir.path.name}"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def get_json(port: int, path: str, body: dict | None = None):
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=data,
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=5) as response:
        return json.loads(response.read())


def wait_for(port: int, path: str, ready, server: subprocess.Popen, log: Path, body: dict | None = None):
    """Poll ``path`` until ``ready(answer)``; fail with the server's output if it dies or takes too long."""
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        if server.poll() is not None:
            pytest.fail(f"TensorBoard exited with {server.returncode}:\n{log.read_text()}")
        try:
            answer = get_json(port, path, body)
        except (urllib.error.URLError, ConnectionError, TimeoutError, json.JSONDecodeError):
            answer = None
        if answer is not None and ready(answer):
            return answer
        time.sleep(0.5)
    pytest.fail(f"TensorBoard did not answer {path} within {STARTUP_TIMEOUT_S}s:\n{log.read_text()}")


def stop(server: subprocess.Popen) -> None:
    """End the server's process group (launch_board and the TensorBoard it started)."""
    if server.poll() is None:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()
    try:
        os.killpg(server.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def group_ends(group: int, timeout: float = 15) -> bool:
    """Whether every process of the group has exited within ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.killpg(group, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.2)
    return False


def test_real_tensorboard_serves_the_logged_scalars(tmp_path):
    runs_dir = tmp_path / "runs"
    run_name = write_run(runs_dir, steps=50, every=5)
    port = free_port()
    log = tmp_path / "tensorboard.log"

    with open(log, "wb") as output:
        server = subprocess.Popen([NNFRAME, "board", str(runs_dir), "--host", "127.0.0.1", "--port", str(port)],
                                  stdout=output, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        runs = wait_for(port, "/data/runs", lambda answer: run_name in answer, server, log)
        query = urllib.parse.urlencode({"run": run_name, "tag": "train/loss"})
        scalars = wait_for(port, f"/data/plugin/scalars/scalars?{query}", lambda answer: len(answer) == 10,
                           server, log)
        groups = get_json(port, "/data/plugin/hparams/session_groups", SESSION_GROUPS_QUERY)["sessionGroups"]
        server.send_signal(signal.SIGTERM)  # to nnframe alone: it must stop TensorBoard too
        assert server.wait(timeout=30) == 143
        assert group_ends(server.pid), "TensorBoard outlived nnframe board"
    finally:
        stop(server)

    assert runs == [run_name]
    assert [step for _, step, _ in scalars] == [5, 10, 15, 20, 25, 30, 35, 40, 45, 50]  # one per log.every
    assert scalars[0][2] == pytest.approx(1 / 5)
    [group] = groups  # the hparams live in the run itself: no second, empty session
    assert group["name"] == run_name
    assert group["hparams"]["log.every"] == 5
    metrics = {value["name"]["tag"]: value["value"] for value in group["metricValues"]}
    assert metrics["train/loss"] == pytest.approx(1 / 50)  # the last logged point


def test_tensorboard_serves_on_after_the_reader_of_its_output_quit(tmp_path):
    """``nnframe board runs 2>&1 | head -1``: TensorBoard's banner goes to a pipe nobody reads any more."""
    runs_dir = tmp_path / "runs"
    run_name = write_run(runs_dir, steps=10, every=5)
    port = free_port()
    reader, writer = os.pipe()
    os.close(reader)
    server = subprocess.Popen([NNFRAME, "board", str(runs_dir), "--host", "127.0.0.1", "--port", str(port)],
                              stdout=writer, stderr=writer, start_new_session=True)
    os.close(writer)
    log = tmp_path / "board.log"
    log.write_text("(the output went to a pipe nobody read)\n")
    try:
        time.sleep(3)  # past TensorBoard's first lines, which found the pipe broken
        assert wait_for(port, "/data/runs", lambda answer: run_name in answer, server, log) == [run_name]
        server.send_signal(signal.SIGTERM)
        assert server.wait(timeout=30) == 143
    finally:
        stop(server)


def test_tensorboards_last_output_is_passed_on_before_board_exits(tmp_path):
    """A stand-in ``tensorboard`` that writes a lot and exits 1: its last line still reaches board's stderr."""
    fake = tmp_path / "fake" / "tensorboard"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("")
    (fake / "main.py").write_text("import sys\nfor i in range(200000):\n    print('line', i)\n"
                                  "print('the last line', file=sys.stderr)\nsys.exit(1)\n")
    (tmp_path / "runs").mkdir()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(fake.parent), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([NNFRAME, "board", str(tmp_path / "runs"), "--port", str(free_port())],
                          capture_output=True, text=True, timeout=60, env=env)
    assert done.returncode == 1
    assert done.stderr.splitlines()[-1] == "the last line"


def test_missing_tensorboard_names_the_install_command(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorboard", None)

    with pytest.raises(UserError) as info:
        launch_board(tmp_path)

    assert "pip install -e '.[board]' in a clone of nnframe" in str(info.value)


def test_missing_logdir_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        launch_board(tmp_path / "runs")


def test_a_file_named_as_the_runs_directory_is_said_to_be_a_file(tmp_path):
    config = tmp_path / "spiral.yaml"
    config.write_text("name: spiral\n", encoding="utf-8")
    with pytest.raises(UserError, match=r"'.*spiral.yaml' is a file, not a runs directory; name the directory"):
        launch_board(config)


def test_an_address_of_no_interface_here_points_at_host_not_port(tmp_path):
    with pytest.raises(UserError) as info:
        launch_board(tmp_path, host="192.0.2.1", port=6123)  # TEST-NET-1: never this machine's
    assert str(info.value).startswith("cannot start TensorBoard on 192.0.2.1:6123: ")
    assert str(info.value).endswith("choose another address with --host (127.0.0.1 for this machine alone, "
                                    "0.0.0.0 for all)")


def test_port_in_use_is_a_user_error(tmp_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]

        with pytest.raises(UserError, match=f"127.0.0.1:{port}.*--port"):
            launch_board(tmp_path, port=port)


def test_board_command_on_a_missing_directory_exits_2_with_one_message(tmp_path):
    result = CliRunner().invoke(app, ["board", str(tmp_path / "nowhere")])
    assert result.exit_code == 2
    assert result.output.count("error: ") == 1 and "nowhere" in result.output
    assert "Traceback" not in result.output


def test_a_port_out_of_range_exits_2(tmp_path):
    done = subprocess.run([NNFRAME, "board", str(tmp_path), "--port", "99999"], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 2
    assert "--port" in done.stderr and "65535" in done.stderr and "Traceback" not in done.stderr
