"""Command lines run as forks of one process that has already imported JAX.

A command refusing a bad flag spends ~1.8 s of its ~2 s importing JAX (ml_dtypes alone 0.9 s on
a 2-core EPYC), so a table of a hundred refused command lines spent minutes importing it again.
Here one server process imports the libraries and forks a child per command line: the child runs
the command as `python script.py ...` / `python -m module ...` would (`__main__`, sys.argv,
sys.path[0], exit code, an uncaught exception's traceback on stderr, atexit handlers) with its
stdout and stderr in files.

Only libraries that never touch the environment a command sets up are imported beforehand:
gigagan_jax.cli sets USE_TORCH=0 before transformers is imported, so neither is, and a command
that imported transformers first would still load PyTorch in its fork.
"""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import tempfile
import time

PRELOADED = ("jax", "jax.numpy", "numpy", "absl.app", "absl.flags", "absl.logging", "ml_collections",
             "ml_collections.config_flags", "PIL.Image", "flax.linen", "optax", "orbax.checkpoint")


class CommandForks:
    """The client: `run(["-m", "gigagan_jax.eval", ...])`, `run(["-c", code])` or `run(["train.py", ...])`."""

    def __init__(self, cwd: str, env: dict[str, str]):
        self.server = subprocess.Popen([sys.executable, os.path.abspath(__file__)], cwd=cwd, env=env,
                                       stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.folder = tempfile.mkdtemp(prefix="forked_commands-")
        ready = self._reply(timeout=300)
        if ready.get("ready") is not True:
            raise RuntimeError(f"the fork server did not start: {ready}")
        self.torch_free = ready["torch_free"]

    def _reply(self, timeout: float) -> dict:
        if not select.select([self.server.stdout], [], [], timeout)[0]:
            raise TimeoutError(f"no reply from the fork server within {timeout:.0f} s")
        line = self.server.stdout.readline()
        if not line:
            raise RuntimeError(f"the fork server exited with {self.server.wait()}")
        return json.loads(line)

    def run(self, argv: list[str], timeout: float = 600, cwd: str | None = None) -> subprocess.CompletedProcess:
        """`argv` as `python *argv` would run it, in `cwd` (default: the server's)."""
        out, err = os.path.join(self.folder, "stdout"), os.path.join(self.folder, "stderr")
        self.server.stdin.write(json.dumps({"argv": argv, "stdout": out, "stderr": err, "cwd": cwd}) + "\n")
        self.server.stdin.flush()
        pid = self._reply(timeout=60)["pid"]
        deadline = time.time() + timeout
        try:
            code = self._reply(timeout=max(deadline - time.time(), 0))["code"]
        except TimeoutError:
            os.kill(pid, signal.SIGKILL)
            self._reply(timeout=60)
            raise TimeoutError(f"{argv} ran past {timeout} s (killed)") from None
        with open(out) as f_out, open(err) as f_err:
            return subprocess.CompletedProcess(argv, code, f_out.read(), f_err.read())

    def close(self) -> None:
        self.server.stdin.close()
        self.server.wait(timeout=60)


def _run_child(request: dict) -> None:
    """In the fork: the command line as its own interpreter would run it; never returns."""
    import atexit
    import runpy
    import traceback

    for fd, path in ((1, request["stdout"]), (2, request["stderr"])):
        target = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.dup2(target, fd)
        os.close(target)
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    argv = request["argv"]
    code = 0
    try:
        if request.get("cwd"):
            os.chdir(request["cwd"])
        if argv[0] == "-m":
            sys.argv = [argv[1], *argv[2:]]
            sys.path[0] = os.getcwd()
            runpy.run_module(argv[1], run_name="__main__", alter_sys=True)
        elif argv[0] == "-c":
            sys.argv = ["-c", *argv[2:]]
            sys.path[0] = ""
            exec(compile(argv[1], "<string>", "exec"), {"__name__": "__main__", "__builtins__": __builtins__})
        else:
            sys.argv = list(argv)
            sys.path[0] = os.path.dirname(os.path.abspath(argv[0]))
            runpy.run_path(argv[0], run_name="__main__")
    except SystemExit as e:
        if e.code is None or isinstance(e.code, int):
            code = e.code or 0
        else:
            print(e.code, file=sys.stderr)
            code = 1
    except BaseException:  # what the interpreter does with an uncaught exception
        traceback.print_exc()
        code = 1
    try:
        atexit._run_exitfuncs()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def serve() -> None:
    import importlib

    for name in PRELOADED:
        importlib.import_module(name)
    replies = sys.stdout
    torch_free = not any(name == "torch" or name.startswith("torch.") for name in sys.modules)
    print(json.dumps({"ready": True, "torch_free": torch_free}), file=replies, flush=True)
    for line in sys.stdin:
        request = json.loads(line)
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            _run_child(request)
        print(json.dumps({"pid": pid}), file=replies, flush=True)
        _, status = os.waitpid(pid, 0)
        print(json.dumps({"code": os.waitstatus_to_exitcode(status)}), file=replies, flush=True)


if __name__ == "__main__":
    serve()
