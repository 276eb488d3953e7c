#!/usr/bin/python3
"""A fault-injecting HTTP proxy in front of an S3 server, for the S3 fault
cells (tests/location/s3_faults_test.cpp).

    fault_proxy.py UPSTREAM_PORT   -> prints "port=PORT" once listening

Requests are forwarded to 127.0.0.1:UPSTREAM_PORT unchanged (the Host header
too, so signatures stay valid). Faults are scripted over the proxy itself:

    PUT /__fault__/rules   a JSON list of rules, replacing the old ones
    GET /__fault__/stats   {"injected": N, "forwarded": N}

A rule: {"method": "PUT"|"GET"|..., "contains": "substring of the path",
"fault": "500"|"503"|"403"|"reset"|"reset_after"|"latency"|"truncate"|"redirect",
"skip": N (let the first N matches through), "count": N (then inject N times),
"ms": latency, "region": for redirect}.

  500 / 503     answer InternalError / SlowDown without forwarding
  403           answer AccessDenied without forwarding (not retried)
  reset         read the request, then reset the connection (nothing forwarded)
  reset_after   forward, then reset instead of answering (the server acted)
  latency       wait "ms" before forwarding
  truncate      forward, send the headers and half the body, close
  redirect      answer 301 PermanentRedirect naming "region"
"""
import http.client
import http.server
import json
import socket
import struct
import sys
import threading
import time

UPSTREAM = int(sys.argv[1])
LOCK = threading.Lock()
RULES = []
STATS = {"injected": 0, "forwarded": 0}


def pick(method, path):
    with LOCK:
        for r in RULES:
            if r.get("method") and r["method"] != method:
                continue
            if r.get("contains") and r["contains"] not in path:
                continue
            if r.get("skip", 0) > 0:
                r["skip"] -= 1
                return None
            if r.get("count", 1) <= 0:
                continue
            r["count"] = r.get("count", 1) - 1
            STATS["injected"] += 1
            return r
    return None


class Proxy(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def body(self):
        n = int(self.headers.get("Content-Length", "0") or 0)
        return self.rfile.read(n) if n else b""

    def reply(self, status, body=b"", headers=()):
        self.send_response(status)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if body:
            self.wfile.write(body)

    def reset(self):
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.connection.close()
        self.close_connection = True

    def forward(self, data):
        conn = http.client.HTTPConnection("127.0.0.1", UPSTREAM, timeout=120)
        headers = {k: v for k, v in self.headers.items()}
        conn.request(self.command, self.path, body=data, headers=headers)
        resp = conn.getresponse()
        payload = resp.read() if self.command != "HEAD" else b""
        with LOCK:
            STATS["forwarded"] += 1
        return resp, payload, conn

    def handle_any(self):
        data = self.body()
        if self.path.startswith("/__fault__/"):
            if self.path == "/__fault__/rules":
                global RULES
                with LOCK:
                    RULES = json.loads(data or b"[]")
                return self.reply(200)
            with LOCK:
                return self.reply(200, json.dumps(STATS).encode(), [("Content-Type", "application/json")])
        rule = pick(self.command, self.path)
        fault = rule["fault"] if rule else None
        if fault in ("500", "503", "403"):
            code = {"500": "InternalError", "503": "SlowDown", "403": "AccessDenied"}[fault]
            xml = ("<?xml version=\"1.0\"?><Error><Code>%s</Code><Message>injected by fault_proxy</Message></Error>" % code).encode()
            return self.reply(int(fault), xml if self.command != "HEAD" else b"", [("Content-Type", "application/xml")])
        if fault == "redirect":
            region = rule.get("region", "eu-west-1")
            xml = ("<?xml version=\"1.0\"?><Error><Code>PermanentRedirect</Code><Message>The bucket is in another region"
                   "</Message><Region>%s</Region></Error>" % region).encode()
            return self.reply(301, xml if self.command != "HEAD" else b"", [("x-amz-bucket-region", region)])
        if fault == "reset":
            return self.reset()
        if fault == "latency":
            time.sleep(rule.get("ms", 500) / 1000.0)
        resp, payload, conn = self.forward(data)
        conn.close()
        if fault == "reset_after":
            return self.reset()
        self.send_response(resp.status)
        for k, v in resp.getheaders():
            if k.lower() not in ("connection", "transfer-encoding", "keep-alive"):
                self.send_header(k, v)
        if "Content-Length" not in resp.headers:
            self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if fault == "truncate":
            self.wfile.write(payload[: len(payload) // 2])
            self.wfile.flush()
            return self.reset()
        if payload:
            self.wfile.write(payload)

    do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = handle_any


def exit_with_parent():
    # The test holds our stdin: when it closes (or the test dies), stop.
    sys.stdin.read()
    import os
    os._exit(0)


def main():
    threading.Thread(target=exit_with_parent, daemon=True).start()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Proxy)
    server.daemon_threads = True
    print("port=%d" % server.server_address[1], flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
