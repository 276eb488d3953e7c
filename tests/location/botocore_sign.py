#!/usr/bin/python3
"""Reference SigV4 signatures from botocore (Debian's python3-botocore), for
tests/location/sigv4_test.cpp.

Reads a JSON list of requests on stdin; writes, for each, the Authorization
header and canonical request botocore's S3SigV4Auth computes:
  {"method", "url" (already percent-encoded as botocore's serializer would),
   "params": {name: value}, "headers": {name: value}, "body" (text),
   "access_key", "secret_key", "token" (or ""), "region", "time" (YYYYmmddTHHMMSSZ),
   "sign_payload": true|false}
"""
import datetime
import json
import sys
from unittest import mock

import botocore.auth
import botocore.config
import botocore.credentials
from botocore.awsrequest import AWSRequest


def sign(case):
    creds = botocore.credentials.Credentials(case["access_key"], case["secret_key"], case["token"] or None)
    auth = botocore.auth.S3SigV4Auth(creds, "s3", case["region"])
    req = AWSRequest(method=case["method"], url=case["url"], data=case["body"].encode(), headers=case["headers"],
                     params=case["params"])
    req.context["client_config"] = botocore.config.Config(s3={"payload_signing_enabled": case["sign_payload"]})
    fixed = datetime.datetime.strptime(case["time"], "%Y%m%dT%H%M%SZ")

    class FrozenDateTime(datetime.datetime):
        @classmethod
        def utcnow(cls):
            return fixed

    with mock.patch("botocore.auth.datetime.datetime", FrozenDateTime):
        req.context["timestamp"] = fixed.strftime(botocore.auth.SIGV4_TIMESTAMP)
        auth._modify_request_before_signing(req)
        canonical = auth.canonical_request(req)
        auth.add_auth(req)
    return {"authorization": req.headers["Authorization"], "canonical": canonical,
            "payload_hash": req.headers["X-Amz-Content-SHA256"]}


def main():
    cases = json.load(sys.stdin)
    json.dump([sign(c) for c in cases], sys.stdout)


if __name__ == "__main__":
    main()
