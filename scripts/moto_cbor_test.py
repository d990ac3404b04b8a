"""Tests of the CloudWatch RPC v2 CBOR bridge (scripts/moto_cbor.py) in the emulator.

Run: .venv/bin/python scripts/moto_cbor_test.py   (scripts/test.sh does). Requests are made as
the AWS SDK for Rust makes them (botocore's RPC v2 CBOR serializer, the CBOR path and headers)
and answers read with botocore's RPC v2 CBOR parser.
"""

import datetime as dt
import logging
import unittest
import urllib.error
import urllib.request

import boto3
import botocore.session
from botocore.parsers import RpcV2CBORParser
from botocore.serialize import RpcV2CBORSerializer

import moto_lambda as ml

logging.getLogger("werkzeug").setLevel(logging.WARNING)
MODEL = botocore.session.get_session().get_service_model("cloudwatch")
AUTH = "AWS4-HMAC-SHA256 Credential=testing/20261201/us-east-1/monitoring/aws4_request, SignedHeaders=host, Signature=0"


class CborBridgeTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls) -> None:
        cls.emu = ml.Emulator().start()
        cls.json = boto3.client(
            "cloudwatch",
            region_name="us-east-1",
            endpoint_url=cls.emu.endpoint,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )

    @classmethod
    def tearDownClass(cls) -> None:
        cls.emu.stop()

    def call(self, operation: str, params: dict) -> tuple[int, dict, dict]:
        op = MODEL.operation_model(operation)
        req = RpcV2CBORSerializer().serialize_to_request(params, op)
        headers = {**req["headers"], "Content-Type": "application/cbor", "Authorization": AUTH}
        r = urllib.request.Request(self.emu.endpoint + req["url_path"], data=req["body"], method="POST", headers=headers)
        try:
            with urllib.request.urlopen(r, timeout=30) as resp:
                status, body, got = resp.status, resp.read(), dict(resp.headers)
        except urllib.error.HTTPError as e:
            status, body, got = e.code, e.read(), dict(e.headers)
        parsed = RpcV2CBORParser().parse({"body": body, "headers": got, "status_code": status}, op.output_shape)
        return status, got, parsed

    def test_metric_data_and_alarms_round_trip(self) -> None:
        now = dt.datetime.now(dt.timezone.utc)
        dim = [{"Name": "FunctionName", "Value": "f"}]
        self.json.put_metric_data(
            Namespace="AWS/Lambda",
            MetricData=[{"MetricName": "Errors", "Dimensions": dim, "Value": 3.0, "Timestamp": now - dt.timedelta(hours=1)}],
        )
        status, headers, out = self.call(
            "GetMetricData",
            {
                "MetricDataQueries": [
                    {
                        "Id": "e",
                        "MetricStat": {
                            "Metric": {"Namespace": "AWS/Lambda", "MetricName": "Errors", "Dimensions": dim},
                            "Period": 3600,
                            "Stat": "Sum",
                        },
                    }
                ],
                "StartTime": now - dt.timedelta(days=1),
                "EndTime": now,
            },
        )
        self.assertEqual(status, 200)
        self.assertEqual(headers.get("Content-Type"), "application/cbor")
        self.assertEqual(headers.get("smithy-protocol"), "rpc-v2-cbor")
        [result] = out["MetricDataResults"]
        self.assertEqual((result["Id"], result["Values"]), ("e", [3.0]))
        self.assertIsInstance(result["Timestamps"][0], dt.datetime, "timestamps come back as CBOR tag 1")

        self.json.put_metric_alarm(
            AlarmName="a1",
            Namespace="AWS/Lambda",
            MetricName="Errors",
            Statistic="Sum",
            Period=300,
            EvaluationPeriods=1,
            Threshold=0,
            ComparisonOperator="GreaterThanThreshold",
        )
        status, _, _ = self.call("SetAlarmState", {"AlarmName": "a1", "StateValue": "ALARM", "StateReason": "t"})
        self.assertEqual(status, 200)
        status, _, out = self.call("DescribeAlarms", {"AlarmNames": ["a1", "absent"]})
        self.assertEqual(status, 200)
        self.assertEqual([(a["AlarmName"], a["StateValue"]) for a in out["MetricAlarms"]], [("a1", "ALARM")])

    def test_errors_keep_their_status_and_code(self) -> None:
        status, headers, out = self.call("SetAlarmState", {"AlarmName": "nope", "StateValue": "OK", "StateReason": "t"})
        self.assertEqual(status, 404)
        self.assertEqual(headers.get("Content-Type"), "application/cbor")
        self.assertEqual(out["Error"]["Code"], "ResourceNotFound")

    def test_other_paths_reach_moto_untouched(self) -> None:
        r = urllib.request.Request(
            self.emu.endpoint + "/service/NoSuchService/operation/X", data=b"", method="POST", headers={"Authorization": AUTH}
        )
        with self.assertRaises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(r, timeout=30)
        self.assertNotEqual(e.exception.headers.get("smithy-protocol"), "rpc-v2-cbor")


if __name__ == "__main__":
    unittest.main()
