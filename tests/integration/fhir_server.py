"""A small FHIR R4 server for tests: answers transaction Bundles like a FHIR server does.

Python standard library only (http.server + ssl). It
- answers POST [base] with a transaction Bundle by a transaction-response Bundle: one entry per
  request entry, in order, each with its status ("201 Created" / "200 OK") and location;
- honours conditional create (request.ifNoneExist "identifier=[system|]value"): a resource whose
  identifier already exists is not stored again and answers 200 with the existing id;
- honours conditional update (PUT "Type?identifier=system|value"): replaces or creates;
- resolves urn:uuid: references between the entries, and conditional references
  ("Patient?identifier=system|value") to Patients it holds (add_patient());
- records every request (received()) and every stored resource (store());
- can be told to misbehave (set_mode): "unavailable" (503 + Retry-After), "throttle" (429 +
  Retry-After), "reject_entry" (an entry-level 4xx with an OperationOutcome for entries whose
  resource matches), "reject_transaction" (400 for the whole transaction, naming an entry),
  "drop" (close the connection without an answer), "slow" (answer after a delay), "ok".
- optionally requires a bearer token and/or a client certificate.

Python API (for pytest):
    server = FhirServer(certfile, keyfile, client_ca=None, token=None)
    port = server.start(port=0)
    server.set_mode("unavailable", retry_after=2)
    server.received(); server.store(); server.stop()
    validate_bundles(bundles, validator_dir)   # runs tests/fhir/validate.mjs on them

Command line (for the C++ link test): prints "PORT <n>", then takes commands on stdin, one per
line, and answers each with one line: `mode {"mode": ..., ...}` -> OK, `received` -> JSON,
`store` -> JSON. It serves until stdin closes. The same controls exist over HTTP:
POST /_control/mode, GET /_control/received, GET /_control/store.
"""

import argparse
import http.server
import json
import os
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import uuid


def _outcome(text, expression=None, code="processing"):
    issue = {"severity": "error", "code": code, "details": {"text": text}}
    if expression:
        issue["expression"] = [expression]
    return {"resourceType": "OperationOutcome", "issue": [issue]}


def _parse_identifier_query(query):
    """"identifier=[system|]value" -> (system or None, value) or None."""
    params = urllib.parse.parse_qs(query, keep_blank_values=True)
    values = params.get("identifier")
    if not values:
        return None
    token = values[0]
    if "|" in token:
        system, value = token.split("|", 1)
        return (system or None, value)
    return (None, token)


def _has_identifier(resource, system, value):
    for ident in resource.get("identifier", []) or []:
        if ident.get("value") == value and (system is None or ident.get("system") == system):
            return True
    return False


class _State:
    def __init__(self, token):
        self.lock = threading.Lock()
        self.mode = {"mode": "ok"}
        self.requests = []
        self.resources = {}  # type -> {id: resource}
        self.token = token

    def find(self, rtype, system, value):
        for rid, res in self.resources.get(rtype, {}).items():
            if _has_identifier(res, system, value):
                return rid
        return None


def _rewrite_references(obj, mapping):
    if isinstance(obj, dict):
        for key, val in obj.items():
            if key == "reference" and isinstance(val, str) and val in mapping:
                obj[key] = mapping[val]
            else:
                _rewrite_references(val, mapping)
    elif isinstance(obj, list):
        for item in obj:
            _rewrite_references(item, mapping)


def _matches(resource, match):
    """A reject_entry predicate: {"resourceType": ..., "code": ...} (code in resource.code.coding)."""
    if "resourceType" in match and resource.get("resourceType") != match["resourceType"]:
        return False
    if "code" in match:
        codes = [c.get("code") for c in (resource.get("code") or {}).get("coding", [])]
        if match["code"] not in codes:
            return False
    return True


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "fhir-test-server"

    def log_message(self, fmt, *args):  # keep test output quiet
        pass

    def _send(self, status, body=None, headers=None, content_type="application/fhir+json"):
        data = b"" if body is None else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def _read_body(self):
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def do_GET(self):
        state = self.server.state
        if self.path == "/_control/received":
            with state.lock:
                self._send(200, state.requests, content_type="application/json")
        elif self.path == "/_control/store":
            with state.lock:
                self._send(200, state.resources, content_type="application/json")
        else:
            self._send(404, _outcome("not found", code="not-found"))

    def do_POST(self):
        state = self.server.state
        raw = self._read_body()
        if self.path == "/_control/mode":
            with state.lock:
                state.mode = json.loads(raw or b"{}")
            self._send(200, {"ok": True}, content_type="application/json")
            return
        with state.lock:
            mode = dict(state.mode)
        if mode["mode"] == "drop":
            self.close_connection = True
            self.connection.shutdown(2)
            return
        if mode["mode"] == "slow":
            time.sleep(float(mode.get("delay_s", 5)))
        if state.token is not None and self.headers.get("Authorization") != "Bearer " + state.token:
            self._send(401, _outcome("missing or wrong bearer token", code="login"))
            return
        try:
            bundle = json.loads(raw)
        except ValueError:
            self._send(400, _outcome("body is not JSON", code="structure"))
            return
        with state.lock:
            state.requests.append({"path": self.path, "headers": dict(self.headers), "bundle": bundle})
        if mode["mode"] in ("unavailable", "throttle"):
            status = 503 if mode["mode"] == "unavailable" else 429
            self._send(status, _outcome("try later", code="transient"),
                       {"Retry-After": str(mode.get("retry_after", 1))})
            return
        if bundle.get("resourceType") != "Bundle" or bundle.get("type") != "transaction":
            self._send(400, _outcome("expected a transaction Bundle", code="structure"))
            return
        if mode["mode"] == "reject_transaction":
            index = int(mode.get("entry", 0))
            self._send(400, _outcome(mode.get("text", "entry refused"), "Bundle.entry[%d].resource" % index))
            return
        self._send(200, self._transaction(bundle, mode))

    def do_PUT(self):
        self._send(405, _outcome("PUT on the base is not supported"))

    def _transaction(self, bundle, mode):
        state = self.server.state
        entries = bundle.get("entry", [])
        responses = []
        mapping = {}
        pending = []
        with state.lock:
            # First pass: decide ids (conditional create/update resolve to existing ids).
            for entry in entries:
                res = entry.get("resource", {})
                req = entry.get("request", {})
                rtype = res.get("resourceType")
                if mode["mode"] == "reject_entry" and _matches(res, mode.get("match", {})):
                    status = int(mode.get("status", 422))
                    responses.append({"response": {
                        "status": "%d Unprocessable Entity" % status if status == 422 else str(status),
                        "outcome": _outcome(mode.get("text", "resource refused"))}})
                    pending.append(None)
                    continue
                method = req.get("method")
                existing = None
                if method == "POST" and req.get("ifNoneExist"):
                    ident = _parse_identifier_query(req["ifNoneExist"])
                    if ident:
                        existing = state.find(rtype, *ident)
                    if existing:
                        responses.append({"response": {"status": "200 OK",
                                                       "location": "%s/%s/_history/1" % (rtype, existing)}})
                        mapping[entry.get("fullUrl")] = "%s/%s" % (rtype, existing)
                        pending.append(None)
                        continue
                    rid = str(uuid.uuid4())
                    status = "201 Created"
                elif method == "POST":
                    rid = str(uuid.uuid4())
                    status = "201 Created"
                elif method == "PUT" and "?" in req.get("url", ""):
                    ident = _parse_identifier_query(req["url"].split("?", 1)[1])
                    existing = state.find(rtype, *ident) if ident else None
                    rid = existing or str(uuid.uuid4())
                    status = "200 OK" if existing else "201 Created"
                else:
                    responses.append({"response": {"status": "400 Bad Request",
                                                   "outcome": _outcome("unsupported request %r" % req)}})
                    pending.append(None)
                    continue
                mapping[entry.get("fullUrl")] = "%s/%s" % (rtype, rid)
                responses.append({"response": {"status": status,
                                               "location": "%s/%s/_history/1" % (rtype, rid)}})
                pending.append((rtype, rid, res))
            # Second pass: resolve references and store.
            for item in pending:
                if item is None:
                    continue
                rtype, rid, res = item
                res = json.loads(json.dumps(res))
                _rewrite_references(res, mapping)
                self._resolve_conditional(res)
                res["id"] = rid
                state.resources.setdefault(rtype, {})[rid] = res
        return {"resourceType": "Bundle", "type": "transaction-response", "entry": responses}

    def _resolve_conditional(self, obj):
        state = self.server.state
        if isinstance(obj, dict):
            for key, val in obj.items():
                if key == "reference" and isinstance(val, str) and "?" in val:
                    rtype, query = val.split("?", 1)
                    ident = _parse_identifier_query(query)
                    found = state.find(rtype, *ident) if ident else None
                    if found:
                        obj[key] = "%s/%s" % (rtype, found)
                else:
                    self._resolve_conditional(val)
        elif isinstance(obj, list):
            for item in obj:
                self._resolve_conditional(item)


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


class FhirServer:
    """A FHIR test server on 127.0.0.1; TLS when certfile/keyfile are given."""

    def __init__(self, certfile=None, keyfile=None, client_ca=None, token=None):
        self._certfile = certfile
        self._keyfile = keyfile
        self._client_ca = client_ca
        self._state = _State(token)
        self._httpd = None
        self._thread = None

    def start(self, port=0):
        httpd = _Server(("127.0.0.1", port), _Handler)
        httpd.state = self._state
        if self._certfile:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(self._certfile, self._keyfile)
            if self._client_ca:
                ctx.load_verify_locations(self._client_ca)
                ctx.verify_mode = ssl.CERT_REQUIRED
            httpd.socket = ctx.wrap_socket(httpd.socket, server_side=True)
        self._httpd = httpd
        self._thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.1},
                                        daemon=True)
        self._thread.start()
        return httpd.server_address[1]

    @property
    def port(self):
        return self._httpd.server_address[1]

    def set_mode(self, mode, **kwargs):
        with self._state.lock:
            self._state.mode = dict(mode=mode, **kwargs)

    def add_patient(self, system, value):
        rid = str(uuid.uuid4())
        with self._state.lock:
            self._state.resources.setdefault("Patient", {})[rid] = {
                "resourceType": "Patient", "id": rid,
                "identifier": [{"system": system, "value": value}]}
        return rid

    def received(self):
        with self._state.lock:
            return json.loads(json.dumps(self._state.requests))

    def store(self):
        with self._state.lock:
            return json.loads(json.dumps(self._state.resources))

    def stop(self):
        if self._httpd:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._thread.join(timeout=5)
            self._httpd = None


def start(port=0, certs=None, client_ca=None, token=None):
    """Starts a server; certs = (certfile, keyfile) or None for plain HTTP."""
    certfile, keyfile = certs if certs else (None, None)
    server = FhirServer(certfile, keyfile, client_ca, token)
    server.start(port)
    return server


def validate_bundles(bundles, validator_dir, timeout=300):
    """Runs validate.mjs (installed in validator_dir with its node_modules) on the bundles.

    Returns (ok, output). Transaction Bundles are validated as sent.
    """
    with tempfile.TemporaryDirectory() as tmp:
        for i, bundle in enumerate(bundles):
            with open(os.path.join(tmp, "received-%04d.json" % i), "w") as f:
                json.dump(bundle, f)
        proc = subprocess.run(["node", os.path.join(validator_dir, "validate.mjs"), tmp],
                              capture_output=True, text=True, timeout=timeout, check=False)
        return proc.returncode == 0, proc.stdout + proc.stderr


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--cert")
    parser.add_argument("--key")
    parser.add_argument("--client-ca")
    parser.add_argument("--token")
    args = parser.parse_args()
    server = FhirServer(args.cert, args.key, args.client_ca, args.token)
    port = server.start(args.port)
    print("PORT %d" % port, flush=True)
    # Commands on stdin, one per line; answers on stdout, one line each. EOF stops the server.
    for line in sys.stdin:
        command, _, arg = line.strip().partition(" ")
        if command == "mode":
            options = json.loads(arg or "{}")
            server.set_mode(options.pop("mode", "ok"), **options)
            print("OK", flush=True)
        elif command == "received":
            print(json.dumps(server.received()), flush=True)
        elif command == "store":
            print(json.dumps(server.store()), flush=True)
        else:
            print("ERROR unknown command", flush=True)
    server.stop()


if __name__ == "__main__":
    main()
