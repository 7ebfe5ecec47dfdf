"""The ``local`` backend: rlimits and a separate uid only, no namespaces, no isolation.

For machines with neither bubblewrap nor Docker, and only when named explicitly: the program
can read whatever the sandbox uid can read and reach the network. When the caller is root it
still runs as an unprivileged uid of its own (so the process limit holds and everything it
leaves behind is killed); otherwise it runs as the caller.
"""

from __future__ import annotations

import tempfile
import uuid
import warnings
from typing import Mapping

from .base import PROGRAM_NAME, Execution, Limits, check_files, execution, parse_answer, request_line, \
    sandbox_uid
from .channel import HostBackend


class LocalBackend(HostBackend):
    name = "local"

    def __init__(self, *, python: str = "python3"):
        warnings.warn("sandbox backend 'local' does not isolate programs (no namespaces, network and files "
                      "reachable); use 'bubblewrap' or 'docker' for untrusted code", RuntimeWarning, stacklevel=2)
        super().__init__()
        self.python = python

    @classmethod
    def availability(cls) -> str | None:
        return None

    def run(self, program: str, *, stdin: str | bytes = b"", files: Mapping[str, str | bytes] | None = None,
            limits: Limits | None = None) -> Execution:
        limits = limits or Limits()
        encoded, uid = check_files(files, program), sandbox_uid()
        data = stdin.encode() if isinstance(stdin, str) else stdin
        workdir = f"{tempfile.gettempdir()}/rewardgym-sandbox-{uuid.uuid4().hex}"
        request = request_line(argv=[self.python, "-s", PROGRAM_NAME], files=encoded, limits=limits, stdin=data,
                               uid=uid, workdir=workdir, dedicated=True)
        return execution(parse_answer(self._call(request, limits), self.name), self.name, uid)
