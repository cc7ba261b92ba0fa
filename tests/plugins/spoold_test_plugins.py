"""Test-only converters that misbehave on purpose (loaded with SPOOLD_PLUGINS).

Each takes a file of its own suffix and writes HTML:
  .slow   sleeps for the number of seconds in the file, then succeeds
          ("SECONDS PIDFILE" also writes the worker's pid to PIDFILE)
  .gate   "GATEFILE": converts until GATEFILE exists (the test opens the gate when it
          is ready, whatever the machine's load), then succeeds
  .hang   never returns
  .spin   busy-loops on the CPU
  .child  starts a child process (its pid written next to the input), then hangs
  .flaky  "N": fails with a retryable I/O error N times, then succeeds
  .hog    allocates memory until the limit stops it
  .alloc  "MB": reserves that much address space, then succeeds
  .pid    writes the process id of the worker that converted it
  .fcenv  writes where the worker's fontconfig looks (FONTCONFIG_FILE, XDG_CACHE_HOME)
Light ones (spool/formats.py LIGHT_SOURCES: a free worker may take several at once,
daemon/batch.py):
  .die    kills its own worker (SIGKILL)
  .lhang  as .hang
  .lgate  as .gate, and GATEFILE.started appears when it begins
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

from spoold.convert.base import SUFFIX_TYPES, ConversionContext, ConversionResult, register
from spoold.errors import ErrorCode, JobError
from spoold.spool.formats import LIGHT_SOURCES

SUFFIXES = ("slow", "gate", "hang", "spin", "child", "flaky", "hog", "alloc", "pid", "fcenv")
for suffix in (*SUFFIXES, "die", "lhang", "lgate"):
    SUFFIX_TYPES["." + suffix] = suffix
LIGHT_SOURCES.update({"die", "lhang", "lgate"})


def _write(output: Path, text: str) -> ConversionResult:
    output.write_text(f"<!DOCTYPE html><html><body><p>{text}</p></body></html>\n")
    return ConversionResult()


class _Base:
    source_type = ""
    target = "html"

    def __init__(self, target: str = "html") -> None:
        self.target = target


class Slow(_Base):
    source_type = "slow"

    def convert(self, source: Path, output: Path, ctx: ConversionContext) -> ConversionResult:
        # "SECONDS" or "SECONDS PIDFILE": the worker's pid goes to PIDFILE (to kill it).
        seconds_text, _, pid_file = source.read_text().strip().partition(" ")
        if pid_file:
            Path(pid_file).write_text(str(os.getpid()))
        seconds = float(seconds_text or "1")
        ctx.stage("layout")
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            time.sleep(0.02)
        return _write(output, f"slept {seconds} for {self.target}")


class Gate(_Base):
    source_type = "gate"
    CAP_S = 600.0  # a test that never opens the gate still ends

    def convert(self, source: Path, output: Path, ctx: ConversionContext) -> ConversionResult:
        gate = Path(source.read_text().strip())
        ctx.stage("layout")
        deadline = time.monotonic() + self.CAP_S
        while not gate.exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        return _write(output, f"gate {gate.name} open for {self.target}")


class Hang(_Base):
    source_type = "hang"

    def convert(self, source: Path, output: Path, ctx: ConversionContext) -> ConversionResult:
        while True:
            time.sleep(1)


class Spin(_Base):
    source_type = "spin"

    def convert(self, source: Path, output: Path, ctx: ConversionContext) -> ConversionResult:
        x = 0
        while True:
            x += 1


class Child(_Base):
    source_type = "child"

    def convert(self, source: Path, output: Path, ctx: ConversionContext) -> ConversionResult:
        proc = subprocess.Popen(["sleep", "1000"])
        pid_file = Path(source.read_text().strip())
        pid_file.write_text(str(proc.pid))
        while True:
            time.sleep(1)


class Flaky(_Base):
    source_type = "flaky"

    def convert(self, source: Path, output: Path, ctx: ConversionContext) -> ConversionResult:
        failures = int(source.read_text().strip() or "1")
        counter = source.with_name(".flaky-count")
        seen = int(counter.read_text()) if counter.exists() else 0
        if seen < failures:
            # Atomic: a chaos test may SIGKILL this worker mid-write, and a truncated
            # counter must not turn a transient failure into a permanent one.
            scratch = counter.with_name(f".flaky-count.{os.getpid()}")
            scratch.write_text(str(seen + 1))
            scratch.replace(counter)
            raise JobError(ErrorCode.IO_ERROR, f"simulated transient failure {seen + 1}")
        return _write(output, f"succeeded after {seen} failures")


class Hog(_Base):
    source_type = "hog"

    def convert(self, source: Path, output: Path, ctx: ConversionContext) -> ConversionResult:
        blocks = []
        while True:
            blocks.append(bytearray(64 * 1024 * 1024))


class Alloc(_Base):
    """Reserves the number of megabytes in the file (address space), then succeeds."""

    source_type = "alloc"

    def convert(self, source: Path, output: Path, ctx: ConversionContext) -> ConversionResult:
        block = bytearray(int(source.read_text().strip()) * 1024 * 1024)
        return _write(output, f"<p>{len(block)} bytes</p>")


class Pid(_Base):
    """Writes the worker's process id: which worker ran a job."""

    source_type = "pid"

    def convert(self, source: Path, output: Path, ctx: ConversionContext) -> ConversionResult:
        return _write(output, f"worker {os.getpid()}")


class FcEnv(_Base):
    """Writes the worker's fontconfig variables, one `NAME=value` a line."""

    source_type = "fcenv"

    def convert(self, source: Path, output: Path, ctx: ConversionContext) -> ConversionResult:
        names = ("FONTCONFIG_FILE", "XDG_CACHE_HOME")
        output.write_text("".join(f"{n}={os.environ.get(n, '')}\n" for n in names))
        return ConversionResult()


class Die(_Base):
    source_type = "die"

    def convert(self, source: Path, output: Path, ctx: ConversionContext) -> ConversionResult:
        os.kill(os.getpid(), signal.SIGKILL)
        raise AssertionError("not reached")


class LightHang(Hang):
    source_type = "lhang"


class LightGate(Gate):
    """As .gate, and GATEFILE.started appears when it begins."""

    source_type = "lgate"

    def convert(self, source: Path, output: Path, ctx: ConversionContext) -> ConversionResult:
        Path(source.read_text().strip() + ".started").touch()
        return super().convert(source, output, ctx)


for cls in (
    Slow,
    Gate,
    Hang,
    Spin,
    Child,
    Flaky,
    Hog,
    Alloc,
    Pid,
    FcEnv,
    Die,
    LightHang,
    LightGate,
):
    for target in ("html", "pdf", "docx"):
        register(cls(target))
