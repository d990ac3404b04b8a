"""Smithy RPC v2 CBOR in front of moto, for CloudWatch (loaded by moto_lambda.py).

The AWS SDK for Rust speaks CloudWatch's newest protocol, Smithy RPC v2 CBOR (``POST
/service/GraniteServiceVersion20100801/operation/<Operation>``, ``Content-Type:
application/cbor``, ``smithy-protocol: rpc-v2-cbor``); moto (pinned 5.2.5) parses CloudWatch's
JSON and query protocols only, and answers the CBOR path with 404. CloudWatch itself accepts all
three (botocore's model lists ``smithy-rpc-v2-cbor``, ``json``, ``query``), so this bridge
translates, operation by operation, with botocore's own codecs and CloudWatch's model:

- the CBOR request body is read against the operation's input shape and sent on to moto as the
  same operation in the JSON protocol (``X-Amz-Target``, ``application/x-amz-json-1.0``), with
  the caller's headers (its ``Authorization`` names the account and region);
- moto's JSON answer is read against the output shape and written back as CBOR (timestamps as
  tag 1 epoch seconds); an error keeps its HTTP status and becomes a CBOR map with ``__type``
  and ``message``, as RPC v2 CBOR errors are.

Only services listed in ``SERVICES`` (by the target prefix in the path) are bridged; every other
request goes to moto untouched. The bridge adds no behaviour: what moto's CloudWatch does and
does not do (no service metrics of its own, no alarm evaluation) stays as it is.
"""

from __future__ import annotations

import io
import json
import re
from typing import Any

import botocore.session
from botocore.model import OperationNotFoundError
from botocore.parsers import JSONParser, RpcV2CBORParser
from botocore.serialize import JSONSerializer, RpcV2CBORSerializer

# Target prefix (as in the URL path) → botocore service name.
SERVICES = {"GraniteServiceVersion20100801": "cloudwatch"}

_PATH = re.compile(r"^/service/([A-Za-z0-9_.]+)/operation/([A-Za-z0-9_]+)$")
_MODELS: dict[str, Any] = {}


def _model(prefix: str) -> Any:
    name = SERVICES.get(prefix)
    if name is None:
        return None
    if name not in _MODELS:
        _MODELS[name] = botocore.session.get_session().get_service_model(name)
    return _MODELS[name]


def _cbor_error(code: str, message: str) -> bytes:
    """``{"__type": code, "message": message}`` in CBOR."""
    out = bytearray()
    enc = RpcV2CBORSerializer()
    out.extend(b"\xa2")  # a map of two pairs
    for text in ("__type", code, "message", message):
        enc._serialize_type_string(out, text, None, None)
    return bytes(out)


def _strip_metadata(parsed: Any) -> Any:
    if isinstance(parsed, dict):
        parsed.pop("ResponseMetadata", None)
    return parsed


class CborBridge:
    """WSGI middleware: RPC v2 CBOR requests of the bridged services → moto's JSON protocol."""

    def __init__(self, app: Any) -> None:
        self.app = app

    def __call__(self, environ: dict, start_response: Any) -> Any:
        m = _PATH.match(environ.get("PATH_INFO", ""))
        model = _model(m.group(1)) if m and environ.get("REQUEST_METHOD") == "POST" else None
        if model is None:
            return self.app(environ, start_response)
        status, headers, body = self._bridge(environ, model, m.group(2))
        start_response(status, headers + [("Content-Length", str(len(body)))])
        return [body]

    def _bridge(self, environ: dict, model: Any, operation: str) -> tuple[str, list[tuple[str, str]], bytes]:
        cbor = [("Content-Type", "application/cbor"), ("smithy-protocol", "rpc-v2-cbor")]
        try:
            op = model.operation_model(operation)
        except OperationNotFoundError:
            return "404 Not Found", cbor, _cbor_error("UnknownOperationException", f"no operation {operation}")
        length = int(environ.get("CONTENT_LENGTH") or 0)
        raw = environ["wsgi.input"].read(length) if length else b""
        try:
            params = {}
            if raw and op.input_shape is not None:
                params = _strip_metadata(
                    RpcV2CBORParser().parse({"body": raw, "headers": {}, "status_code": 200}, op.input_shape)
                )
            request = JSONSerializer().serialize_to_request(params or {}, op)
        except Exception as e:  # a request the model cannot read is the caller's error, as on AWS
            return "400 Bad Request", cbor, _cbor_error("SerializationException", f"bad CBOR request: {e!r}")
        body = request["body"] if isinstance(request["body"], bytes) else str(request["body"]).encode()
        inner = dict(environ)
        inner.update(
            {
                "PATH_INFO": "/",
                "QUERY_STRING": "",
                "CONTENT_TYPE": request["headers"].get("Content-Type", "application/x-amz-json-1.0"),
                "CONTENT_LENGTH": str(len(body)),
                "HTTP_X_AMZ_TARGET": request["headers"].get("X-Amz-Target", f"{model.metadata['targetPrefix']}.{operation}"),
                "wsgi.input": io.BytesIO(body),
            }
        )
        inner.pop("HTTP_SMITHY_PROTOCOL", None)
        inner.pop("HTTP_ACCEPT", None)
        got: dict[str, Any] = {}

        def capture(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            got["status"], got["headers"] = status, headers
            return lambda _data: None

        answer = b"".join(self.app(inner, capture))
        status = got.get("status", "500 Internal Server Error")
        code = int(status.split(" ", 1)[0])
        request_id = [(k, v) for k, v in got.get("headers", []) if k.lower() == "x-amzn-requestid"]
        if code >= 300:
            try:
                err = json.loads(answer or b"{}")
            except ValueError:
                err = {}
            kind = str(err.get("__type") or err.get("code") or code)
            message = str(err.get("message") or err.get("Message") or answer.decode(errors="replace"))
            return status, cbor + request_id, _cbor_error(kind, message)
        out = bytearray()
        if op.output_shape is not None:
            parsed = _strip_metadata(
                JSONParser().parse({"body": answer, "headers": {}, "status_code": code}, op.output_shape)
            )
            RpcV2CBORSerializer()._serialize_data_item(out, parsed or {}, op.output_shape)
        else:
            out.extend(b"\xa0")  # an empty map
        return status, cbor + request_id, bytes(out)
