"""moto server whose Lambda functions run: a local Lambda executor for the emulated Organization.

moto (pinned 5.2.5) cannot run Lambda code without Docker, and its EventBridge has no Lambda
target (``send_to_targets`` raises NotImplementedError: HTTP 500 on PutEvents). This launcher
starts moto's own server application in-process and adds two narrow hooks:

1. an EventBridge rule that moto matched, whose target is a Lambda function, delivers the event
   to that function asynchronously, as EventBridge does;
2. Lambda ``Invoke`` (RequestResponse, Event, DryRun) runs the function.

"Runs the function" means: the deployed code zip (the bytes moto stored) is unpacked, and its
``bootstrap`` is started as a custom-runtime execution environment, talking to a Lambda Runtime
API (2018-06-01) served by this module, with the function's configuration (environment, timeout,
memory size, region) and with credentials of its execution role in its own account (an
in-process STS AssumeRole: moto maps a session's access key to the role's account, so the
function's calls land in the function's account).

What AWS does that is honoured here:

- rule state: DISABLED delivers nothing (moto itself ignores the state); ENABLED delivers
  everything except read-only management events delivered by CloudTrail, which only rules in
  ENABLED_WITH_ALL_CLOUDTRAIL_MANAGEMENT_EVENTS receive;
- the function's resource policy must let ``events.amazonaws.com`` invoke it for the rule
  (``aws:SourceArn`` = the rule's ARN, ``aws:SourceAccount`` = the rule's account); a missing
  function or permission is not retried and the event goes to the target's dead-letter queue
  with the attributes EventBridge sets (RULE_ARN, TARGET_ARN, ERROR_CODE, ERROR_MESSAGE), if the
  queue's policy lets ``events.amazonaws.com`` send for that rule;
- PutEvents refuses ``aws.*`` sources (NotAuthorizedForSourceException), as AWS does for
  customers; AWS service events reach the bus only through the test-only CloudTrail path below;
- asynchronous invocation: the function's EventInvokeConfig (MaximumRetryAttempts, default 2;
  MaximumEventAgeInSeconds; OnSuccess/OnFailure destinations on SQS or SNS), with the invocation
  record Lambda sends to destinations;
- timeout (the process is killed: "Task timed out"), memory size (resident memory above it
  kills the process: Runtime.OutOfMemory), 10 s init timeout, crash (Runtime.ExitError), the
  Runtime API's init and invocation errors, the bootstrap's file mode from the zip;
- the function's output goes to its log group ``/aws/lambda/<name>`` if that group exists, with
  START/END/REPORT lines.

What it cannot honour, said plainly:

- one execution environment per function version at a time (reserved concurrency 1): Lambda
  would scale out; a function that synchronously invokes itself times out here;
- retry delays are compressed (Lambda waits 1 and 2 minutes; here MOTO_LAMBDA_RETRY_SECONDS,
  default 1 s, times 1 and 2); EventBridge's RetryPolicy governs retryable delivery errors
  (throttling, outages), which never occur here;
- IAM is not evaluated for the function's own calls (moto does not enforce IAM), nor for the
  caller of Invoke; only the resource policies above are;
- no sandbox: the bootstrap runs as a local process with this machine's file system; only
  ``provided*`` (OS-only) runtimes on this machine's architecture run; the function reaches
  the emulator through AWS_ENDPOINT_URL, the one variable Lambda would not set;
- no layers, no extensions, no container images, no function-level DeadLetterConfig (moto does
  not store it), no reserved-concurrency throttling, no InputPath beyond ``$.a.b`` paths.

CloudWatch alarms tell EventBridge when their state changes (a "CloudWatch Alarm State Change"
event from ``aws.cloudwatch`` on the alarm's account and region default bus, as AWS documents
it); moto does not, so a state change (``SetAlarmState``; moto evaluates no metrics) emits that
event here. Only a change emits one, as on AWS.

moto's CloudFormation also ignores four resource settings the ctguard stacks rely on; they are
applied here as CloudFormation would: DynamoDB ``TimeToLiveSpecification``,
``AWS::Lambda::EventInvokeConfig``, ``AWS::SQS::QueuePolicy`` and ``AWS::CloudWatch::Alarm``
(metric alarms: name, metric, statistic, period, threshold, comparison, missing data, tags).

Service-managed StackSets (OU targeting, account filters, automatic deployment, no instance in
the management account, instances as real stacks in the member accounts) and the refusal of
AssumeRole into a member account's missing role come from ``scripts/moto_stacksets.py``, which
this launcher loads; its docstring lists what it honours and what it cannot. CloudWatch requests
in the Smithy RPC v2 CBOR protocol (the AWS SDK for Rust's), which moto does not parse, are
translated to its JSON protocol by ``scripts/moto_cbor.py``.

Test-only endpoints (not AWS APIs; loopback only):

- ``POST /_ctguard/cloudtrail`` ``{"records": [...], "account"?: "...", "region"?: "..."}``:
  delivers CloudTrail records to the default event bus of their account (``recipientAccountId``)
  and region (``awsRegion``), or of the given account/region, as CloudTrail delivers
  "AWS API Call via CloudTrail" events: only where a trail is logging, source ``aws.<service>``,
  the record as ``detail``. Answers ``{"delivered": n, "dropped": {reason: n}}``.
- ``POST /_ctguard/drain`` ``{"timeout": seconds}``: waits until no asynchronous invocation is
  queued or running (200) or the timeout passes (504).
- ``GET /_ctguard/stats``: invocations, errors and dead letters per function.

Usage: python scripts/moto_lambda.py [--host 127.0.0.1] [--port 0] [--exit-on-stdin-eof]
                                     [--max-lifetime SECONDS]
The first line on stdout is ``moto_lambda listening on http://HOST:PORT``.
"""

from __future__ import annotations

import argparse
import base64
import copy
import datetime as dt
import hashlib
import heapq
import io
import itertools
import json
import logging
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
import zipfile
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

os.environ.setdefault("MOTO_ALLOW_NONEXISTENT_REGION", "true")

from moto.awslambda import models as lambda_models  # noqa: E402
from moto.cloudwatch import models as cloudwatch_models  # noqa: E402
from moto.cloudformation import parsing as cfn_parsing  # noqa: E402
from moto.cloudtrail.models import cloudtrail_backends  # noqa: E402
from moto.core.common_models import CloudFormationModel  # noqa: E402
from moto.dynamodb.models import dynamodb_backends  # noqa: E402
from moto.dynamodb.models.table import Table  # noqa: E402
from moto.events import models as events_models  # noqa: E402
from moto.events.responses import EventsHandler  # noqa: E402
from moto.events.utils import EventTemplateParser  # noqa: E402
from moto.iam.models import iam_backends  # noqa: E402
from moto.logs.models import logs_backends  # noqa: E402
from moto.moto_server.werkzeug_app import (  # noqa: E402
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)
from moto.sns.models import sns_backends  # noqa: E402
from moto.sqs.models import sqs_backends  # noqa: E402
from moto.sts.models import sts_backends  # noqa: E402
from moto.utilities.utils import get_partition  # noqa: E402
from werkzeug.serving import make_server  # noqa: E402

import moto_cbor  # noqa: E402  (scripts/: CloudWatch's RPC v2 CBOR protocol, which the Rust SDK speaks)
import moto_stacksets  # noqa: E402  (scripts/: service-managed StackSets as AWS documents them)

ENABLED_ALL = "ENABLED_WITH_ALL_CLOUDTRAIL_MANAGEMENT_EVENTS"
CLOUDTRAIL_DETAIL_TYPES = {
    "AwsApiCall": "AWS API Call via CloudTrail",
    "AwsConsoleSignIn": "AWS Console Sign In via CloudTrail",
    "AwsServiceEvent": "AWS Service Event via CloudTrail",
    "AwsConsoleAction": "AWS Console Action via CloudTrail",
}
# EventBridge sources that differ from the first label of the CloudTrail eventSource.
SOURCE_EXCEPTIONS = {"monitoring": "aws.cloudwatch"}
INIT_TIMEOUT_S = 10.0
MAX_PAYLOAD = 6 * 1024 * 1024
MAX_UNZIPPED = 250 * 1024 * 1024
# Lambda's own waits before the two asynchronous retries (1 and 2 minutes), compressed.
RETRY_UNIT_S = float(os.environ.get("MOTO_LAMBDA_RETRY_SECONDS", "1"))


def log(msg: str) -> None:
    print(f"moto_lambda: {msg}", file=sys.stderr, flush=True)


def iso_now() -> str:
    return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


# --- resource policies ------------------------------------------------------------------------


def _as_list(v: Any) -> list:
    if v is None:
        return []
    return v if isinstance(v, list) else [v]


def _glob(pattern: str, value: str, ignore_case: bool = False) -> bool:
    """IAM wildcards: `*` any run, `?` one character; nothing else is special."""
    rx = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in str(pattern))
    return re.fullmatch(rx, str(value), re.IGNORECASE if ignore_case else 0) is not None


def _condition_holds(op: str, key: str, expected: Any, context: dict[str, str]) -> bool:
    if_exists = op.endswith("IfExists")
    base = op[: -len("IfExists")] if if_exists else op
    actual = context.get(key.lower())
    values = [str(e) for e in _as_list(expected)]
    negated = base in ("StringNotEquals", "StringNotLike", "ArnNotEquals", "ArnNotLike")
    if actual is None:
        return if_exists or negated
    if base in ("StringEquals", "StringNotEquals"):
        hit = actual in values
    elif base == "StringEqualsIgnoreCase":
        hit = actual.lower() in (v.lower() for v in values)
    elif base in ("StringLike", "StringNotLike", "ArnLike", "ArnNotLike", "ArnEquals", "ArnNotEquals"):
        # IAM's ArnEquals accepts wildcards too.
        hit = any(_glob(v, actual) for v in values)
    else:
        log(f"policy condition operator {op} is not evaluated: the statement does not apply")
        return False
    return not hit if negated else hit


def policy_allows(statements: list, service: str, action: str, resource: str, context: dict[str, str]) -> bool:
    """Evaluates a resource policy for an AWS service principal: an explicit Deny wins, else any
    Allow whose principal, action, resource and conditions all match. Statements with
    NotPrincipal/NotAction/NotResource are not evaluated (they never apply)."""
    ctx = {k.lower(): v for k, v in context.items()}
    allowed = False
    for st in statements if isinstance(statements, list) else []:
        if not isinstance(st, dict) or any(k in st for k in ("NotPrincipal", "NotAction", "NotResource")):
            continue
        principal = st.get("Principal")
        if principal != "*":
            services = _as_list(principal.get("Service")) if isinstance(principal, dict) else []
            aws = _as_list(principal.get("AWS")) if isinstance(principal, dict) else []
            if service not in services and "*" not in aws:
                continue
        if not any(_glob(a, action, ignore_case=True) for a in _as_list(st.get("Action"))):
            continue
        if not any(_glob(r, resource) for r in _as_list(st.get("Resource", "*"))):
            continue
        conditions = st.get("Condition") or {}
        if not isinstance(conditions, dict) or not all(
            isinstance(kv, dict) and all(_condition_holds(op, k, v, ctx) for k, v in kv.items())
            for op, kv in conditions.items()
        ):
            continue
        if st.get("Effect") == "Deny":
            return False
        if st.get("Effect") == "Allow":
            allowed = True
    return allowed


# --- the Runtime API ----------------------------------------------------------------------------


@dataclass
class Invocation:
    request_id: str
    payload: bytes
    deadline_ms: int
    function_arn: str
    # (ok, body, error type) once the runtime answered.
    result: tuple[bool, bytes, str] | None = None


class RuntimeApi:
    """The Lambda Runtime API (2018-06-01) for one execution environment: one invocation at a
    time, as Lambda does. Served on a loopback port of its own."""

    PREFIX = "/2018-06-01/runtime"

    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.pending: Invocation | None = None
        self.current: Invocation | None = None
        self.polled = False
        self.init_error: tuple[str, bytes] | None = None
        self.closed = False
        api = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:  # noqa: N802
                api._get(self)

            def do_POST(self) -> None:  # noqa: N802
                api._post(self)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, name="runtime-api", daemon=True).start()

    @property
    def address(self) -> str:
        host, port = self.server.server_address[:2]
        return f"{host}:{port}"

    def close(self) -> None:
        with self.cond:
            self.closed = True
            self.cond.notify_all()
        self.server.shutdown()
        self.server.server_close()

    @staticmethod
    def _reply(h: BaseHTTPRequestHandler, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
        try:
            h.send_response(status)
            for k, v in (headers or {}).items():
                h.send_header(k, v)
            h.send_header("Content-Type", "application/json")
            h.send_header("Content-Length", str(len(body)))
            h.end_headers()
            h.wfile.write(body)
        except OSError:
            pass  # the runtime went away

    @staticmethod
    def _read_body(h: BaseHTTPRequestHandler) -> bytes | None:
        """The request body (Content-Length or chunked), None when larger than 6 MB."""
        if h.headers.get("Transfer-Encoding", "").lower() == "chunked":
            out = bytearray()
            while True:
                size = int(h.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    h.rfile.readline()
                    return bytes(out)
                if len(out) + size > MAX_PAYLOAD:
                    return None
                out += h.rfile.read(size)
                h.rfile.readline()
        n = int(h.headers.get("Content-Length") or 0)
        if n > MAX_PAYLOAD:
            return None
        return h.rfile.read(n) if n > 0 else b""

    def _get(self, h: BaseHTTPRequestHandler) -> None:
        if h.path != f"{self.PREFIX}/invocation/next":
            return self._reply(h, 404, b'{"errorMessage":"not found"}')
        with self.cond:
            self.polled = True
            self.cond.notify_all()
            while self.pending is None and not self.closed:
                self.cond.wait()
            if self.closed:
                return self._reply(h, 500, b'{"errorMessage":"shutting down"}')
            inv = self.current = self.pending
            self.pending = None
        self._reply(
            h,
            200,
            inv.payload,
            {
                "Lambda-Runtime-Aws-Request-Id": inv.request_id,
                "Lambda-Runtime-Deadline-Ms": str(inv.deadline_ms),
                "Lambda-Runtime-Invoked-Function-Arn": inv.function_arn,
                "Lambda-Runtime-Trace-Id": f"Root=1-{int(time.time()):08x}-{uuid.uuid4().hex[:24]};Sampled=0",
            },
        )

    def _post(self, h: BaseHTTPRequestHandler) -> None:
        body = self._read_body(h)
        if h.path == f"{self.PREFIX}/init/error":
            with self.cond:
                self.init_error = (h.headers.get("Lambda-Runtime-Function-Error-Type", "Runtime.Unknown"), body or b"")
                self.cond.notify_all()
            return self._reply(h, 202, b'{"status":"OK"}')
        m = re.fullmatch(rf"{self.PREFIX}/invocation/([^/]+)/(response|error)", h.path)
        if not m:
            return self._reply(h, 404, b'{"errorMessage":"not found"}')
        with self.cond:
            inv = self.current
            if inv is None or inv.request_id != m.group(1):
                status, answer = 400, b'{"errorType":"InvalidRequestID","errorMessage":"Invalid request ID"}'
            else:
                if body is None:
                    too_large = "Response payload size exceeded maximum allowed payload size (6291556 bytes)."
                    err = _error_body("Function.ResponseSizeTooLarge", too_large)
                    inv.result = (False, err, "Function.ResponseSizeTooLarge")
                elif m.group(2) == "response":
                    inv.result = (True, body, "")
                else:
                    etype = h.headers.get("Lambda-Runtime-Function-Error-Type", "")
                    inv.result = (False, body, etype)
                self.current = None
                self.cond.notify_all()
                status, answer = 202, b'{"status":"OK"}'
        self._reply(h, status, answer)


# --- execution environments ---------------------------------------------------------------------


@dataclass
class Outcome:
    ok: bool
    payload: bytes
    error_type: str = ""
    duration_ms: float = 0.0
    logs: list[str] = field(default_factory=list)


class InitFailure(Exception):
    def __init__(self, error_type: str, message: str):
        super().__init__(message)
        self.error_type = error_type
        self.message = message


def _error_body(error_type: str, message: str) -> bytes:
    return json.dumps({"errorType": error_type, "errorMessage": message}).encode()


def _fingerprint(fn: Any) -> tuple:
    """What makes Lambda start a new execution environment when it changes."""
    return (
        fn.code_sha_256,
        json.dumps(fn.environment_vars, sort_keys=True),
        str(fn.timeout),
        str(fn.memory_size),
        fn.role,
        fn.run_time,
        fn.handler,
        tuple(fn.architectures),
    )


def _extract(code: bytes, into: str) -> None:
    """Unpacks a code zip like Lambda: file modes from the zip, no path outside the root, at
    most 250 MB unzipped."""
    try:
        zf = zipfile.ZipFile(io.BytesIO(code))
    except zipfile.BadZipFile as e:
        raise InitFailure("Runtime.InvalidEntrypoint", f"the function's code is not a zip: {e}") from None
    total = 0
    root = os.path.realpath(into)
    for info in zf.infolist():
        total += info.file_size
        if total > MAX_UNZIPPED:
            raise InitFailure("Runtime.InvalidEntrypoint", "Unzipped size must be smaller than 262144000 bytes")
        target = os.path.realpath(os.path.join(root, info.filename))
        if not target.startswith(root + os.sep):
            raise InitFailure("Runtime.InvalidEntrypoint", f"zip entry {info.filename!r} escapes the task root")
        if info.is_dir():
            os.makedirs(target, exist_ok=True)
            continue
        os.makedirs(os.path.dirname(target), exist_ok=True)
        with zf.open(info) as src, open(target, "wb") as dst:
            shutil.copyfileobj(src, dst)
        # Zips written without Unix attributes carry no mode: Lambda then sees a non-executable
        # file, and so does this executor.
        os.chmod(target, ((info.external_attr >> 16) & 0o777) or 0o644)


def _rss_mb(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0.0


class Instance:
    """One execution environment: the unpacked code, the bootstrap process, its Runtime API."""

    def __init__(self, fn: Any, endpoint: str, code_dir: str):
        self.fn = fn
        self.fingerprint = _fingerprint(fn)
        self.arn = fn.function_arn
        self.timeout_s = float(fn.timeout or 3)
        self.memory_mb = int(fn.memory_size or 128)
        self.log_group = f"/aws/lambda/{fn.function_name}"
        self.log_stream = f"{dt.datetime.now(dt.timezone.utc):%Y/%m/%d}/[{fn.version}]{uuid.uuid4().hex}"
        self.lines: deque[str] = deque(maxlen=5000)
        self.lines_lock = threading.Lock()
        self.proc: subprocess.Popen | None = None
        self.api = RuntimeApi()
        self.dir = code_dir
        try:
            self._start(endpoint)
        except BaseException:
            time.sleep(0.05)  # let the output pump read the last lines
            for line in self.take_lines():
                log(f"[{fn.function_name} {fn.account_id} {fn.region} init] {line}")
            self.stop()
            raise

    def _start(self, endpoint: str) -> None:
        fn = self.fn
        if not str(fn.run_time or "").startswith("provided"):
            raise InitFailure(
                "Runtime.InvalidRuntime",
                f"the emulator runs only OS-only runtimes (provided*), not {fn.run_time}",
            )
        machine = {"x86_64": "x86_64", "amd64": "x86_64", "aarch64": "arm64", "arm64": "arm64"}.get(platform.machine())
        if machine not in fn.architectures:
            raise InitFailure(
                "Runtime.InvalidEntrypoint", f"a {fn.architectures} function cannot run on this {machine} machine"
            )
        bootstrap = os.path.join(self.dir, "bootstrap")
        if not os.path.isfile(bootstrap):
            raise InitFailure("Runtime.InvalidEntrypoint", "Couldn't find valid bootstrap(s): [/var/task/bootstrap]")
        partition = get_partition(fn.region)
        try:
            iam_backends[fn.account_id][partition].get_role_by_arn(fn.role)
        except Exception:
            why = f"The role defined for the function cannot be assumed by Lambda: {fn.role}"
            raise InitFailure("Lambda.AccessDeniedException", why) from None
        # The execution role's session, in the role's account: moto maps its key to that account.
        creds = sts_backends[fn.account_id][partition].assume_role(
            region_name=fn.region,
            role_session_name=fn.function_name,
            role_arn=fn.role,
            policy=None,
            duration=43200,
            external_id=None,
        )
        env = {k: str(v) for k, v in (fn.environment_vars or {}).items()}
        env.update(
            {
                "PATH": "/usr/local/bin:/usr/bin:/bin",
                "LANG": "en_US.UTF-8",
                "TZ": ":UTC",
                "LAMBDA_TASK_ROOT": self.dir,
                "LAMBDA_RUNTIME_DIR": self.dir,
                "_HANDLER": str(fn.handler or ""),
                "AWS_LAMBDA_FUNCTION_NAME": fn.function_name,
                "AWS_LAMBDA_FUNCTION_VERSION": str(fn.version),
                "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(self.memory_mb),
                "AWS_LAMBDA_LOG_GROUP_NAME": self.log_group,
                "AWS_LAMBDA_LOG_STREAM_NAME": self.log_stream,
                "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",
                "AWS_REGION": fn.region,
                "AWS_DEFAULT_REGION": fn.region,
                "AWS_ACCESS_KEY_ID": creds.access_key_id,
                "AWS_SECRET_ACCESS_KEY": creds.secret_access_key,
                "AWS_SESSION_TOKEN": creds.session_token,
                # Lambda sets host:port, without a scheme.
                "AWS_LAMBDA_RUNTIME_API": self.api.address,
                # The one variable Lambda would not set: the function's AWS is the emulator.
                "AWS_ENDPOINT_URL": endpoint,
            }
        )
        try:
            self.proc = subprocess.Popen(
                [bootstrap],
                cwd=self.dir,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
            )
        except OSError as e:
            raise InitFailure("Runtime.InvalidEntrypoint", f"cannot start /var/task/bootstrap: {e}") from None
        threading.Thread(target=self._pump, args=(self.proc.stdout,), name="fn-output", daemon=True).start()
        deadline = time.monotonic() + INIT_TIMEOUT_S
        with self.api.cond:
            while not self.api.polled and self.api.init_error is None:
                if self.proc.poll() is not None:
                    raise InitFailure(
                        "Runtime.ExitError", f"Runtime exited with error: exit status {self.proc.returncode}"
                    )
                if time.monotonic() > deadline:
                    why = f"INIT_REPORT Init Duration: {INIT_TIMEOUT_S * 1000:.0f} ms Phase: init Status: timeout"
                    raise InitFailure("Runtime.Unknown", why)
                self.api.cond.wait(0.05)
            if self.api.init_error is not None:
                etype, body = self.api.init_error
                try:
                    posted = json.loads(body)
                except ValueError:
                    posted = None
                if isinstance(posted, dict):
                    raise InitFailure(str(posted.get("errorType") or etype), str(posted.get("errorMessage", "")))
                raise InitFailure(etype, body.decode("utf-8", "replace"))

    def _pump(self, stream: Any) -> None:
        with stream:
            for raw in iter(stream.readline, b""):
                with self.lines_lock:
                    self.lines.append(raw.decode("utf-8", "replace").rstrip("\n"))

    def take_lines(self) -> list[str]:
        with self.lines_lock:
            out = list(self.lines)
            self.lines.clear()
        return out

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def invoke(self, payload: bytes) -> tuple[Outcome, bool]:
        """Runs one invocation; returns the outcome and whether the environment survived."""
        request_id = str(uuid.uuid4())
        started = time.monotonic()
        inv = Invocation(request_id, payload, int((time.time() + self.timeout_s) * 1000), self.arn)
        with self.api.cond:
            self.api.pending = inv
            self.api.cond.notify_all()
        deadline = started + self.timeout_s
        while True:
            with self.api.cond:
                if inv.result is None:
                    self.api.cond.wait(0.02)
                result = inv.result
            elapsed = (time.monotonic() - started) * 1000
            if result is not None:
                ok, body, etype = result
                return Outcome(ok, body, etype, elapsed), True
            pid = self.proc.pid if self.proc else 0
            if not self.alive():
                code = self.proc.returncode if self.proc else -1
                why = f"signal: {-code}" if code < 0 else f"exit status {code}"
                msg = f"RequestId: {request_id} Error: Runtime exited with error: {why}"
                return Outcome(False, _error_body("Runtime.ExitError", msg), "Runtime.ExitError", elapsed), False
            if time.monotonic() > deadline:
                msg = f"{iso_now()} {request_id} Task timed out after {self.timeout_s:.2f} seconds"
                return Outcome(False, _error_body("Sandbox.Timedout", msg), "Sandbox.Timedout", elapsed), False
            if _rss_mb(pid) > self.memory_mb:
                msg = (
                    f"RequestId: {request_id} Error: Runtime exited with error: signal: killed"
                    f" (memory above {self.memory_mb} MB)"
                )
                return Outcome(False, _error_body("Runtime.OutOfMemory", msg), "Runtime.OutOfMemory", elapsed), False

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                log(f"bootstrap {self.proc.pid} did not exit after SIGKILL")
        self.api.close()


# --- the executor -------------------------------------------------------------------------------


@dataclass(order=True)
class AsyncItem:
    ready_at: float
    seq: int
    function_arn: str = field(compare=False)
    payload: bytes = field(compare=False)
    enqueued_at: float = field(compare=False)
    request_id: str = field(compare=False)
    attempts: int = field(compare=False, default=0)


class Executor:
    """Runs functions: one execution environment per function version, invocations in turn;
    an asynchronous queue per function version (Lambda's internal queue), first in, first out
    except for retries, which wait their turn."""

    def __init__(self, endpoint: str):
        self.endpoint = endpoint
        remove_stale_workdirs()
        self.workdir = tempfile.mkdtemp(prefix=f"moto-lambda-{os.getpid()}-")
        self.instances: dict[str, Instance] = {}
        self.locks: dict[str, threading.Lock] = {}
        self.guard = threading.Lock()
        self.queues: dict[str, list[AsyncItem]] = {}
        self.queue_cond = threading.Condition()
        self.outstanding = 0
        self.seq = itertools.count()
        self.stats: dict[str, dict[str, int]] = {}
        self.closed = False

    def _count(self, arn: str, what: str, n: int = 1) -> None:
        with self.guard:
            s = self.stats.setdefault(arn, {})
            s[what] = s.get(what, 0) + n

    def _lock(self, key: str) -> threading.Lock:
        with self.guard:
            return self.locks.setdefault(key, threading.Lock())

    def code_dir(self, fn: Any) -> str:
        """The function's code, unpacked once per CodeSha256 and shared by its environments."""
        digest = hashlib.sha256(fn.code_bytes or b"").hexdigest()
        path = os.path.join(self.workdir, f"code-{digest[:32]}")
        with self._lock(path):
            if not os.path.isdir(path):
                partial = tempfile.mkdtemp(prefix="partial-", dir=self.workdir)
                try:
                    _extract(fn.code_bytes or b"", partial)
                except BaseException:
                    shutil.rmtree(partial, ignore_errors=True)
                    raise
                os.rename(partial, path)
        return path

    def run(self, fn: Any, payload: bytes) -> Outcome:
        """One synchronous invocation."""
        key = f"{fn.function_arn}:{fn.version}"
        with self._lock(key):
            inst = self.instances.get(key)
            if inst is not None and (inst.fingerprint != _fingerprint(fn) or not inst.alive()):
                # New code or configuration, or a dead process: a fresh environment, as Lambda.
                self.instances.pop(key, None)
                inst.stop()
                inst = None
            if inst is None:
                try:
                    inst = Instance(fn, self.endpoint, self.code_dir(fn))
                except InitFailure as e:
                    self._count(fn.function_arn, "init_errors")
                    log(f"{fn.function_arn}: init failed: {e.error_type}: {e.message}")
                    return Outcome(False, _error_body(e.error_type, e.message), e.error_type)
                self.instances[key] = inst
                self._count(fn.function_arn, "instances")
            outcome, survived = inst.invoke(payload)
            if not survived:
                self.instances.pop(key, None)
                inst.stop()
            outcome.logs = inst.take_lines()
        self._count(fn.function_arn, "invocations")
        if not outcome.ok:
            self._count(fn.function_arn, "errors")
        self._write_logs(fn, inst, outcome)
        return outcome

    def _write_logs(self, fn: Any, inst: Instance, outcome: Outcome) -> None:
        for line in outcome.logs:
            log(f"[{fn.function_name} {fn.account_id} {fn.region}] {line}")
        if not outcome.ok:
            log(f"[{fn.function_name} {fn.account_id} {fn.region}] invocation failed: {outcome.payload[:500]!r}")
        backend = logs_backends[fn.account_id][fn.region]
        if inst.log_group not in backend.groups:
            return  # Lambda cannot create it either without logs:CreateLogGroup
        now = int(time.time() * 1000)
        lines = outcome.logs + [
            f"REPORT Duration: {outcome.duration_ms:.2f} ms Memory Size: {inst.memory_mb} MB Status: "
            + ("ok" if outcome.ok else outcome.error_type or "error")
        ]
        try:
            if inst.log_stream not in backend.groups[inst.log_group].streams:
                backend.create_log_stream(inst.log_group, inst.log_stream)
            backend.put_log_events(inst.log_group, inst.log_stream, [{"timestamp": now, "message": m} for m in lines])
        except Exception as e:  # logging must never fail an invocation
            log(f"cannot write to {inst.log_group}: {e}")

    def invoke_async(self, fn: Any, payload: bytes) -> str:
        """Queues an asynchronous invocation (InvocationType Event, or an EventBridge delivery)."""
        request_id = str(uuid.uuid4())
        now = time.monotonic()
        key = f"{fn.function_arn}:{fn.version}"
        item = AsyncItem(now, next(self.seq), key, payload, now, request_id)
        with self.queue_cond:
            if self.closed:
                raise RuntimeError("the executor is shutting down")
            self.outstanding += 1
            if key not in self.queues:
                self.queues[key] = []
                threading.Thread(target=self._worker, args=(key,), name=f"async {key}", daemon=True).start()
            heapq.heappush(self.queues[key], item)
            self.queue_cond.notify_all()
        return request_id

    def _worker(self, key: str) -> None:
        heap = self.queues[key]
        while True:
            with self.queue_cond:
                while not self.closed and (not heap or heap[0].ready_at > time.monotonic()):
                    self.queue_cond.wait((heap[0].ready_at - time.monotonic()) if heap else None)
                if self.closed:
                    return
                item = heapq.heappop(heap)
            requeued = False
            try:
                requeued = self._process(item)
            except Exception as e:
                log(f"asynchronous invocation of {item.function_arn} failed in the emulator: {e!r}")
            finally:
                with self.queue_cond:
                    if requeued:
                        heapq.heappush(heap, item)
                    else:
                        self.outstanding -= 1
                    self.queue_cond.notify_all()

    def _process(self, item: AsyncItem) -> bool:
        """Runs one queued invocation; True when it is to be retried later."""
        arn, _, version = item.function_arn.rpartition(":")
        fn = find_function(arn, version)
        if fn is None:
            log(f"{item.function_arn} no longer exists: queued event dropped")
            return False
        cfg = fn.event_invoke_config[0].config if getattr(fn, "event_invoke_config", None) else {}
        max_retries = int(cfg.get("MaximumRetryAttempts", 2))
        max_age = float(cfg.get("MaximumEventAgeInSeconds", 21600))
        destinations = cfg.get("DestinationConfig") or {}
        if time.monotonic() - item.enqueued_at > max_age:
            self._destination(fn, item, None, destinations.get("OnFailure"), "EventAgeExceeded")
            return False
        item.attempts += 1
        outcome = self.run(fn, item.payload)
        if outcome.ok:
            self._destination(fn, item, outcome, destinations.get("OnSuccess"), "Success")
            return False
        if item.attempts <= max_retries:
            item.ready_at = time.monotonic() + RETRY_UNIT_S * item.attempts
            item.seq = next(self.seq)
            self._count(fn.function_arn, "retries")
            return True
        self._destination(fn, item, outcome, destinations.get("OnFailure"), "RetriesExhausted")
        return False

    def _destination(self, fn: Any, item: AsyncItem, outcome: Outcome | None, dest: Any, condition: str) -> None:
        if not isinstance(dest, dict) or not dest.get("Destination"):
            if condition != "Success":
                self._count(fn.function_arn, "dropped")
                log(f"{fn.function_arn}: event dropped ({condition}); no on-failure destination")
            return
        try:
            request_payload: Any = json.loads(item.payload or b"null")
        except ValueError:
            request_payload = item.payload.decode("utf-8", "replace")
        record: dict[str, Any] = {
            "version": "1.0",
            "timestamp": iso_now(),
            "requestContext": {
                "requestId": item.request_id,
                "functionArn": f"{fn.function_arn}:{fn.version}",
                "condition": condition,
                "approximateInvokeCount": item.attempts,
            },
            "requestPayload": request_payload,
        }
        if outcome is not None:
            record["responseContext"] = {"statusCode": 200, "executedVersion": str(fn.version)}
            if not outcome.ok:
                record["responseContext"]["functionError"] = "Unhandled"
            try:
                record["responsePayload"] = json.loads(outcome.payload or b"null")
            except ValueError:
                record["responsePayload"] = outcome.payload.decode("utf-8", "replace")
        if send_to(dest["Destination"], json.dumps(record)):
            self._count(fn.function_arn, "destination_" + ("success" if condition == "Success" else "failure"))

    def drain(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        with self.queue_cond:
            while self.outstanding > 0:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self.queue_cond.wait(min(left, 0.1))
        return True

    def shutdown(self) -> None:
        with self.queue_cond:
            self.closed = True
            self.queue_cond.notify_all()
        with self.guard:
            instances = list(self.instances.values())
            self.instances.clear()
        for inst in instances:
            inst.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)


def remove_stale_workdirs() -> None:
    """Removes the unpacked code of emulators that were killed (SIGKILL leaves it behind)."""
    for d in os.listdir(tempfile.gettempdir()):
        m = re.fullmatch(r"moto-lambda-(\d+)-\w+", d)
        if m and not os.path.exists(f"/proc/{m.group(1)}"):
            shutil.rmtree(os.path.join(tempfile.gettempdir(), d), ignore_errors=True)


EXECUTOR: Executor | None = None


def executor() -> Executor:
    if EXECUTOR is None:
        raise RuntimeError("the Lambda executor is not running")
    return EXECUTOR


def _parse_arn(arn: str) -> list[str]:
    parts = str(arn).split(":", 5)
    return parts if len(parts) == 6 and parts[0] == "arn" else []


def find_function(arn: str, qualifier: str | None = None) -> Any:
    """The function (version) an ARN names, or None."""
    parts = _parse_arn(arn)
    if not parts or parts[2] != "lambda":
        return None
    _, _, _, region, account, rest = parts
    bits = rest.split(":")  # function:name[:qualifier]
    if len(bits) < 2 or bits[0] != "function":
        return None
    q = qualifier if qualifier is not None else (bits[2] if len(bits) > 2 else None)
    try:
        return lambda_models.lambda_backends[account][region].get_function(bits[1], q)
    except Exception:
        return None


def send_to(arn: str, body: str, attributes: dict[str, str] | None = None) -> bool:
    """Sends to an SQS queue or SNS topic named by ARN (in-process, as the service would)."""
    parts = _parse_arn(arn)
    attrs = {k: {"DataType": "String", "StringValue": v} for k, v in (attributes or {}).items()}
    try:
        if parts and parts[2] == "sqs":
            sqs_backends[parts[4]][parts[3]].send_message(parts[5], body, message_attributes=attrs)
            return True
        if parts and parts[2] == "sns":
            sns_backends[parts[4]][parts[3]].publish(body, arn=arn, message_attributes=attrs or None)
            return True
        log(f"destination {arn} is not supported by the emulator (only SQS and SNS): not delivered")
    except Exception as e:
        log(f"cannot deliver to {arn}: {e!r}")
    return False


# --- hook 1: EventBridge rules with a Lambda target -----------------------------------------------


def is_cloudtrail_read_only(event: dict) -> bool:
    """A read-only management event delivered by CloudTrail (customers cannot put `aws.*`
    sources, so such an event can only come from the CloudTrail path)."""
    detail = event.get("detail") if isinstance(event.get("detail"), dict) else {}
    return (
        str(event.get("source", "")).startswith("aws.")
        and event.get("detail-type") in CLOUDTRAIL_DETAIL_TYPES.values()
        and detail.get("readOnly") is True
        and detail.get("managementEvent", True) is not False
        and detail.get("eventCategory", "Management") == "Management"
    )


def lambda_envelope(event: dict) -> dict:
    t = event.get("time")
    if isinstance(t, (int, float)):
        t = dt.datetime.fromtimestamp(t, tz=dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    keys = ("version", "id", "detail-type", "source", "account", "time", "region", "resources", "detail")
    out = {k: event.get(k) for k in keys}
    out["time"] = t
    return out


def target_input(target: dict, event: dict) -> bytes:
    """What EventBridge passes to the target: the event, or the target's Input / InputPath /
    InputTransformer."""
    envelope = lambda_envelope(event)
    if target.get("Input") is not None:
        return str(target["Input"]).encode()
    if target.get("InputPath"):
        node: Any = envelope
        for part in str(target["InputPath"]).removeprefix("$").strip(".").split("."):
            node = node.get(part) if isinstance(node, dict) and part else node
        return json.dumps(node).encode()
    if target.get("InputTransformer"):
        t = target["InputTransformer"]
        out = EventTemplateParser.parse(t.get("InputTemplate"), t.get("InputPathsMap", {}), envelope)
        return (out if isinstance(out, str) else json.dumps(out)).encode()
    return json.dumps(envelope).encode()


def eventbridge_dead_letter(rule: Any, target: dict, event: dict, code: str, message: str) -> None:
    """A target EventBridge cannot invoke, for a reason it does not retry: the target's DLQ."""
    executor()._count(target["Arn"], "eventbridge_" + code.lower())
    log(f"rule {rule.arn} -> {target['Arn']}: {code}: {message}")
    dlq = (target.get("DeadLetterConfig") or {}).get("Arn")
    if not dlq:
        return
    parts = _parse_arn(dlq)
    try:
        queue = sqs_backends[parts[4]][parts[3]].get_queue(parts[5]) if parts else None
    except Exception:
        queue = None
    statements = json.loads(queue.policy).get("Statement", []) if queue is not None and queue.policy else []
    context = {"aws:SourceArn": rule.arn, "aws:SourceAccount": rule.account_id}
    if queue is None or not policy_allows(statements, "events.amazonaws.com", "sqs:SendMessage", dlq, context):
        log(f"rule {rule.arn}: the dead-letter queue {dlq} does not accept the event (InvocationsFailedToBeSentToDLQ)")
        return
    attrs = {"RULE_ARN": rule.arn, "TARGET_ARN": target["Arn"], "ERROR_CODE": code, "ERROR_MESSAGE": message}
    if send_to(dlq, json.dumps(lambda_envelope(event)), attrs):
        executor()._count(target["Arn"], "eventbridge_dead_letters")


def deliver_to_lambda(rule: Any, target: dict, event: dict) -> None:
    arn = target["Arn"]
    fn = find_function(arn)
    if fn is None:
        return eventbridge_dead_letter(rule, target, event, "NO_RESOURCE", f"Function not found: {arn}")
    resource = arn[: -len(":$LATEST")] if arn.endswith(":$LATEST") else arn
    context = {"aws:SourceArn": rule.arn, "aws:SourceAccount": rule.account_id}
    if not policy_allows(fn.policy.statements, "events.amazonaws.com", "lambda:InvokeFunction", resource, context):
        return eventbridge_dead_letter(
            rule,
            target,
            event,
            "NO_PERMISSIONS",
            f"events.amazonaws.com is not authorized to perform: lambda:InvokeFunction on resource: {resource} "
            f"because no resource-based policy allows it for {rule.arn}",
        )
    executor()._count(fn.function_arn, "eventbridge_deliveries")
    executor().invoke_async(fn, target_input(target, event))


_original_send_to_targets = events_models.Rule.send_to_targets


def send_to_targets(self: Any, event: Any, transform_input: bool = True) -> None:
    if self.state == "DISABLED":
        return
    if is_cloudtrail_read_only(event) and self.state != ENABLED_ALL:
        return
    lambda_targets = [t for t in self.targets if (_parse_arn(t.get("Arn", "")) or ["", "", ""])[2] == "lambda"]
    others = [t for t in self.targets if t not in lambda_targets]
    if others:
        clone = copy.copy(self)
        clone.targets = others
        _original_send_to_targets(clone, event, transform_input)
    # moto matches a rule without a pattern (a scheduled rule) against every event; AWS does not.
    if lambda_targets and self.event_pattern.get_pattern() and self.event_pattern.matches_event(event):
        for t in lambda_targets:
            deliver_to_lambda(self, t, event)


# --- hook 2: Lambda Invoke ------------------------------------------------------------------------


def lambda_invoke(self: Any, body: Any, request_headers: Any, response_headers: Any) -> bytes:
    payload = body.encode() if isinstance(body, str) else (body or b"")
    if not payload.strip():
        payload = b"{}"
    kind = request_headers.get("x-amz-invocation-type", "RequestResponse")
    if kind == "DryRun":
        return b""
    if kind == "Event":
        executor().invoke_async(self, payload)
        return b""
    outcome = executor().run(self, payload)
    response_headers["x-amz-executed-version"] = str(self.version)
    if not outcome.ok:
        response_headers["x-amz-function-error"] = "Unhandled"
    if str(request_headers.get("x-amz-log-type", "")).lower() == "tail":
        tail = "\n".join(outcome.logs).encode()[-4096:]
        response_headers["x-amz-log-result"] = base64.b64encode(tail).decode()
    return outcome.payload


# --- PutEvents: customers cannot send aws.* sources -------------------------------------------------

_original_put_events = EventsHandler.put_events


def put_events(self: Any) -> str:
    entries = self._get_param("Entries") or []
    refused = [i for i, e in enumerate(entries) if str((e or {}).get("Source", "")).startswith("aws.")]
    if not refused or len(entries) > 10:
        return _original_put_events(self)
    accepted = [e for i, e in enumerate(entries) if i not in refused]
    results = iter(self.events_backend.put_events(accepted) if accepted else [])
    out = [
        {"ErrorCode": "NotAuthorizedForSourceException", "ErrorMessage": "Not authorized for the source."}
        if i in refused
        else next(results)
        for i in range(len(entries))
    ]
    return json.dumps({"FailedEntryCount": sum(1 for e in out if "ErrorCode" in e), "Entries": out})


# --- moto CloudFormation gaps the ctguard stacks meet ----------------------------------------------

_original_table_create = Table.create_from_cloudformation_json.__func__


def table_create(
    cls: Any, resource_name: str, cloudformation_json: Any, account_id: str, region_name: str, **kw: Any
) -> Any:
    table = _original_table_create(cls, resource_name, cloudformation_json, account_id, region_name, **kw)
    spec = cloudformation_json.get("Properties", {}).get("TimeToLiveSpecification")
    if isinstance(spec, dict) and "AttributeName" in spec:
        enabled = str(spec.get("Enabled", False)).lower() == "true"
        dynamodb_backends[account_id][region_name].update_time_to_live(
            table.name, {"Enabled": enabled, "AttributeName": spec["AttributeName"]}
        )
    return table


class EventInvokeConfigResource(CloudFormationModel):
    """AWS::Lambda::EventInvokeConfig, which moto's CloudFormation skips."""

    # moto's model registry files every model under the second part of its module name.
    __module__ = "moto.awslambda.ctguard_emulator"

    def __init__(self, function_name: str, account_id: str, region: str):
        self.function_name = function_name
        self.account_id = account_id
        self.region = region

    @property
    def physical_resource_id(self) -> str:
        return f"{self.function_name}:$LATEST"

    @staticmethod
    def cloudformation_name_type() -> str:
        return ""

    @staticmethod
    def cloudformation_type() -> str:
        return "AWS::Lambda::EventInvokeConfig"

    @classmethod
    def create_from_cloudformation_json(  # type: ignore[override]
        cls, resource_name: str, cloudformation_json: Any, account_id: str, region_name: str, **kwargs: Any
    ) -> EventInvokeConfigResource:
        p = cloudformation_json["Properties"]
        name = str(p["FunctionName"]).split(":function:")[-1].split(":")[0]
        config = {k: p[k] for k in ("MaximumRetryAttempts", "MaximumEventAgeInSeconds", "DestinationConfig") if k in p}
        backend = lambda_models.lambda_backends[account_id][region_name]
        backend.get_function(name).event_invoke_config = []
        backend.put_function_event_invoke_config(name, config)
        return cls(name, account_id, region_name)

    @classmethod
    def delete_from_cloudformation_json(  # type: ignore[override]
        cls, resource_name: str, cloudformation_json: Any, account_id: str, region_name: str
    ) -> None:
        name = str(cloudformation_json["Properties"]["FunctionName"]).split(":function:")[-1].split(":")[0]
        try:
            lambda_models.lambda_backends[account_id][region_name].get_function(name).event_invoke_config = []
        except Exception:
            pass


class AlarmResource(CloudFormationModel):
    """AWS::CloudWatch::Alarm (a metric alarm), which moto's CloudFormation skips."""

    __module__ = "moto.cloudwatch.ctguard_emulator"

    def __init__(self, name: str, arn: str):
        self.name = name
        self.arn = arn

    @property
    def physical_resource_id(self) -> str:
        return self.name

    @staticmethod
    def cloudformation_name_type() -> str:
        return "AlarmName"

    @staticmethod
    def cloudformation_type() -> str:
        return "AWS::CloudWatch::Alarm"

    @classmethod
    def has_cfn_attr(cls, attr: str) -> bool:
        return attr == "Arn"

    def get_cfn_attribute(self, attribute_name: str) -> Any:
        if attribute_name == "Arn":
            return self.arn
        raise KeyError(attribute_name)

    @classmethod
    def create_from_cloudformation_json(  # type: ignore[override]
        cls, resource_name: str, cloudformation_json: Any, account_id: str, region_name: str, **kwargs: Any
    ) -> AlarmResource:
        p = cloudformation_json["Properties"]
        name = str(p.get("AlarmName") or resource_name)
        alarm = cloudwatch_models.cloudwatch_backends[account_id][region_name].put_metric_alarm(
            name=name,
            namespace=p.get("Namespace"),
            metric_name=p.get("MetricName"),
            comparison_operator=p.get("ComparisonOperator"),
            evaluation_periods=int(p.get("EvaluationPeriods", 1)),
            period=int(p["Period"]) if "Period" in p else None,
            threshold=float(p["Threshold"]) if "Threshold" in p else None,
            statistic=p.get("Statistic"),
            description=p.get("AlarmDescription"),
            dimensions=[{"Name": d.get("Name"), "Value": d.get("Value")} for d in p.get("Dimensions", [])],
            alarm_actions=p.get("AlarmActions", []),
            ok_actions=p.get("OKActions", []),
            insufficient_data_actions=p.get("InsufficientDataActions", []),
            treat_missing_data=p.get("TreatMissingData"),
            datapoints_to_alarm=int(p["DatapointsToAlarm"]) if "DatapointsToAlarm" in p else None,
            tags=p.get("Tags", []),
        )
        return cls(name, alarm.alarm_arn)

    @classmethod
    def delete_from_cloudformation_json(  # type: ignore[override]
        cls, resource_name: str, cloudformation_json: Any, account_id: str, region_name: str
    ) -> None:
        name = str(cloudformation_json["Properties"].get("AlarmName") or resource_name)
        cloudwatch_models.cloudwatch_backends[account_id][region_name].delete_alarms([name])


class QueuePolicyResource(CloudFormationModel):
    """AWS::SQS::QueuePolicy, which moto's CloudFormation skips."""

    __module__ = "moto.sqs.ctguard_emulator"

    def __init__(self, name: str):
        self.name = name

    @property
    def physical_resource_id(self) -> str:
        return self.name

    @staticmethod
    def cloudformation_name_type() -> str:
        return ""

    @staticmethod
    def cloudformation_type() -> str:
        return "AWS::SQS::QueuePolicy"

    @staticmethod
    def _queues(cloudformation_json: Any, account_id: str, region_name: str) -> list:
        out = []
        for url in cloudformation_json["Properties"].get("Queues", []):
            name = str(url).rstrip("/").split("/")[-1]
            try:
                out.append(sqs_backends[account_id][region_name].get_queue(name))
            except Exception:
                log(f"AWS::SQS::QueuePolicy: no queue {url}")
        return out

    @classmethod
    def create_from_cloudformation_json(  # type: ignore[override]
        cls, resource_name: str, cloudformation_json: Any, account_id: str, region_name: str, **kwargs: Any
    ) -> QueuePolicyResource:
        doc = cloudformation_json["Properties"].get("PolicyDocument", {})
        for q in cls._queues(cloudformation_json, account_id, region_name):
            q.policy = json.dumps(doc)
        return cls(resource_name)

    @classmethod
    def delete_from_cloudformation_json(  # type: ignore[override]
        cls, resource_name: str, cloudformation_json: Any, account_id: str, region_name: str
    ) -> None:
        for q in cls._queues(cloudformation_json, account_id, region_name):
            q.policy = None


_original_update_state = cloudwatch_models.Alarm.update_state


def _alarm_time(t: Any) -> str:
    """CloudWatch's timestamp form in alarm events: 2026-11-30T10:00:00.000+0000."""
    if not isinstance(t, dt.datetime):
        return iso_now()
    if t.tzinfo is None:
        t = t.replace(tzinfo=dt.timezone.utc)
    return t.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}+0000"


def alarm_update_state(self: Any, reason: str, reason_data: str, state_value: str) -> None:
    """Alarm.update_state, plus the EventBridge event CloudWatch sends on a state change."""
    previous = (self.state_value, self.state_reason, self.state_updated_timestamp)
    _original_update_state(self, reason, reason_data, state_value)
    if previous[0] == state_value:
        return
    parts = str(self.alarm_arn).split(":")
    if len(parts) < 7:
        return
    region, account = parts[3], parts[4]
    detail = {
        "alarmName": self.name,
        "state": {"value": state_value, "reason": reason or "", "timestamp": _alarm_time(self.state_updated_timestamp)},
        "previousState": {"value": previous[0], "reason": previous[1] or "", "timestamp": _alarm_time(previous[2])},
        "configuration": {"description": getattr(self, "description", None) or "", "metrics": []},
    }
    entry = {
        "Source": "aws.cloudwatch",
        "DetailType": "CloudWatch Alarm State Change",
        "Detail": json.dumps(detail),
        "Resources": [self.alarm_arn],
        "EventBusName": "default",
    }
    try:
        events_models.events_backends[account][region].put_events([entry])
    except Exception as e:  # an emulator gap must be visible, never a silent loss
        log(f"alarm state change event for {self.alarm_arn} not delivered: {e!r}")


def install_hooks() -> None:
    cloudwatch_models.Alarm.update_state = alarm_update_state
    events_models.Rule.send_to_targets = send_to_targets
    lambda_models.LambdaFunction.invoke = lambda_invoke
    EventsHandler.put_events = put_events
    Table.create_from_cloudformation_json = classmethod(table_create)
    # moto caches its CloudFormation model list: rebuild it with the two models above.
    for cached in (cfn_parsing.get_model_list, cfn_parsing.get_model_map, cfn_parsing.get_name_type_map):
        cached.cache_clear()
    moto_stacksets.install_hooks()


# --- test-only endpoints ------------------------------------------------------------------------------


def trail_logging(account: str, region: str) -> bool:
    """A trail of the account logs in that region (a regional trail there, or a multi-region one)."""
    try:
        backends = list(cloudtrail_backends[account].items())
    except Exception:
        return False
    for r, backend in backends:
        for trail in list(backend.trails.values()):
            if trail.status.is_logging and (r == region or trail.is_multi_region):
                return True
    return False


def cloudtrail_source(record: dict) -> str:
    label = str(record.get("eventSource", "")).split(".")[0]
    return SOURCE_EXCEPTIONS.get(label, f"aws.{label}")


def deliver_cloudtrail(records: list, account: str | None, region: str | None) -> dict:
    delivered, dropped = 0, {}

    def drop(why: str) -> None:
        dropped[why] = dropped.get(why, 0) + 1

    for rec in records:
        if not isinstance(rec, dict):
            drop("not_a_record")
            continue
        acct = account or rec.get("recipientAccountId")
        reg = region or rec.get("awsRegion")
        detail_type = CLOUDTRAIL_DETAIL_TYPES.get(str(rec.get("eventType")))
        if not acct or not reg or not rec.get("eventSource"):
            drop("no_account_region_or_source")
        elif detail_type is None:
            drop("event_type_not_delivered")
        elif not trail_logging(str(acct), str(reg)):
            drop("no_logging_trail")
        else:
            when = rec.get("eventTime")
            try:
                epoch = dt.datetime.fromisoformat(str(when).replace("Z", "+00:00")).timestamp()
            except ValueError:
                epoch = time.time()
            entry = {
                "Source": cloudtrail_source(rec),
                "DetailType": detail_type,
                "Detail": json.dumps(rec),
                "Time": epoch,
                "EventBusName": "default",
            }
            result = events_models.events_backends[str(acct)][str(reg)].put_events([entry])
            if result and "EventId" in result[0]:
                delivered += 1
            else:
                drop("rejected_by_eventbridge")
    return {"delivered": delivered, "dropped": dropped}


class App:
    """moto's server application, with the test-only endpoints in front."""

    def __init__(self) -> None:
        self.moto = moto_cbor.CborBridge(DomainDispatcherApplication(create_backend_app))

    def __call__(self, environ: dict, start_response: Any) -> Any:
        path = environ.get("PATH_INFO", "")
        if not path.startswith("/_ctguard/"):
            return self.moto(environ, start_response)
        status, body = self._test_api(environ, path)
        start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
        return [body]

    @staticmethod
    def _test_api(environ: dict, path: str) -> tuple[str, bytes]:
        method = environ.get("REQUEST_METHOD", "GET")
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
            if length > 64 * 1024 * 1024:
                return "413 Payload Too Large", b'{"error":"body above 64 MiB"}'
            raw = environ["wsgi.input"].read(length) if length else b""
            req = json.loads(raw) if raw.strip() else {}
            if not isinstance(req, dict):
                raise ValueError("the body must be a JSON object")
        except ValueError as e:
            return "400 Bad Request", json.dumps({"error": f"bad request: {e}"}).encode()
        if path == "/_ctguard/cloudtrail" and method == "POST":
            records = req.get("records")
            if not isinstance(records, list):
                return "400 Bad Request", b'{"error":"records must be a list of CloudTrail records"}'
            return "200 OK", json.dumps(deliver_cloudtrail(records, req.get("account"), req.get("region"))).encode()
        if path == "/_ctguard/drain" and method == "POST":
            try:
                timeout = min(float(req.get("timeout", 30)), 600.0)
            except (TypeError, ValueError):
                return "400 Bad Request", b'{"error":"timeout must be a number of seconds"}'
            idle = executor().drain(timeout)
            return ("200 OK" if idle else "504 Gateway Timeout"), json.dumps({"idle": idle}).encode()
        if path == "/_ctguard/stats" and method == "GET":
            with executor().guard:
                return "200 OK", json.dumps({"functions": executor().stats}).encode()
        return "404 Not Found", b'{"error":"no such test endpoint"}'


class Emulator:
    """moto's server application with the executor, on a loopback port (0: any free one)."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0):
        install_hooks()
        self.server = make_server(host, port, App(), threaded=True, request_handler=MotoRequestHandler)
        self.endpoint = f"http://{host}:{self.server.server_port}"
        os.environ["MOTO_PORT"] = str(self.server.server_port)
        global EXECUTOR
        EXECUTOR = Executor(self.endpoint)
        self.thread = threading.Thread(target=self.server.serve_forever, name="moto", daemon=True)

    def start(self) -> Emulator:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        executor().shutdown()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--exit-on-stdin-eof", action="store_true", help="stop when stdin closes (for test harnesses)")
    ap.add_argument("--max-lifetime", type=float, default=0, help="stop after this many seconds (0: never)")
    ap.add_argument("--verbose", action="store_true", help="log every request (as moto_server does)")
    args = ap.parse_args(argv)
    if not args.verbose:
        logging.getLogger("werkzeug").setLevel(logging.WARNING)
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        ap.error("the emulator serves loopback only")
    emu = Emulator(args.host, args.port).start()
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    if args.exit_on_stdin_eof:

        def watch_stdin() -> None:
            while sys.stdin.buffer.read(4096):
                pass
            stop.set()

        threading.Thread(target=watch_stdin, daemon=True).start()
    print(f"moto_lambda listening on {emu.endpoint}", flush=True)
    stop.wait(args.max_lifetime or None)
    emu.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
