"""Test peer for the object storage sink: a moto S3 server on loopback, and boto3 as an S3
client nobody here wrote.

  s3_tool.py serve [BUCKET]           start moto on 127.0.0.1 (free port); print "PORT <n>";
                                      run until stdin closes. With BUCKET: create it, an IAM
                                      user allowed to write and read it and the user's access
                                      key (print "KEY <id> <secret>"); from then on moto checks
                                      every request's SigV4 signature and the key's policy
  s3_tool.py create ENDPOINT BUCKET   create a bucket
  s3_tool.py head ENDPOINT BUCKET KEY print JSON of head_object: etag, size, metadata,
                                      storage_class, sse, last_modified, and
                                      body_sha256 (hashlib's, of the body read back)
  s3_tool.py put ENDPOINT BUCKET KEY  store stdin as KEY
  s3_tool.py dump ENDPOINT BUCKET [CSV_DELIMITER CSV_QUOTE]
                                      print JSON: every object with its key, size, content
                                      type and its logs (decompressed by extension: gzip,
                                      zstandard, python-snappy raw and framed, lz4 frame; JSON
                                      lines parsed, or CSV rows read by Python's csv module)
  s3_tool.py parquet ENDPOINT BUCKET  download every .parquet object and print JSON: per object
                                      its key, content type, pyarrow's schema (name, type,
                                      nullable), rows, row groups, the column chunks' codecs and
                                      created_by; and DuckDB's count(*) over all of them
  s3_tool.py duckdb-csv ENDPOINT BUCKET DELIMITER QUOTE NULL_VALUE
                                      download every .csv.gz object and print JSON: the rows
                                      DuckDB's read_csv gives (header row, all text, NULL_VALUE
                                      as null)
"""
import csv
import gzip
import hashlib
import io
import json
import os
import sys
import tempfile

import lz4.frame
import snappy
import zstandard

import boto3
from botocore.config import Config


# The requests moto serves before it checks signatures: the four setup calls of `serve BUCKET`.
SETUP_CALLS = 4

# What the archive's key may do: store objects (single and multipart) and read them back.
POLICY = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Effect": "Allow",
            "Action": [
                "s3:PutObject",
                "s3:GetObject",
                "s3:ListBucket",
                "s3:AbortMultipartUpload",
                "s3:ListMultipartUploadParts",
            ],
            "Resource": "*",
        }
    ],
}


def client(endpoint, service="s3"):
    """A boto3 client signing with AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY (default test/test)."""
    return boto3.client(
        service,
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id=os.environ.get("AWS_ACCESS_KEY_ID", "test"),
        aws_secret_access_key=os.environ.get("AWS_SECRET_ACCESS_KEY", "test"),
        config=Config(s3={"addressing_style": "path"}),
    )


def serve(bucket):
    if bucket:
        # Read by moto when it is imported.
        os.environ["INITIAL_NO_AUTH_ACTION_COUNT"] = str(SETUP_CALLS)
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0)
    server.start()
    port = server.get_host_and_port()[1]
    print("PORT", port, flush=True)
    if bucket:
        endpoint = f"http://127.0.0.1:{port}"
        client(endpoint).create_bucket(Bucket=bucket)
        iam = client(endpoint, "iam")
        iam.create_user(UserName="archiver")
        key = iam.create_access_key(UserName="archiver")["AccessKey"]
        iam.put_user_policy(
            UserName="archiver", PolicyName="archive", PolicyDocument=json.dumps(POLICY)
        )
        print("KEY", key["AccessKeyId"], key["SecretAccessKey"], flush=True)
    sys.stdin.read()
    server.stop()


def decompress(key, body):
    if key.endswith(".gz"):
        return gzip.decompress(body)
    if key.endswith(".zst"):
        return zstandard.ZstdDecompressor().decompressobj().decompress(body)
    if key.endswith(".snappy"):
        return snappy.uncompress(body)
    if key.endswith(".sz"):
        return snappy.StreamDecompressor().decompress(body)
    if key.endswith(".lz4"):
        return lz4.frame.decompress(body)
    return body


def parse(key, text, dialect):
    if ".csv" in key:
        delimiter, quote = dialect
        return list(csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, quotechar=quote))
    return [json.loads(line) for line in text.splitlines()]


def dump(endpoint, bucket, dialect):
    s3 = client(endpoint)
    objects = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for entry in page.get("Contents", []):
            got = s3.get_object(Bucket=bucket, Key=entry["Key"])
            body = got["Body"].read()
            body = decompress(entry["Key"], body)
            objects.append(
                {
                    "key": entry["Key"],
                    "size": entry["Size"],
                    "content_type": got.get("ContentType"),
                    "logs": parse(entry["Key"], body.decode("utf-8"), dialect),
                }
            )
    json.dump(objects, sys.stdout)


def head(endpoint, bucket, key):
    s3 = client(endpoint)
    got = s3.head_object(Bucket=bucket, Key=key)
    body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    json.dump(
        {
            "body_sha256": hashlib.sha256(body).hexdigest(),
            "etag": got["ETag"],
            "size": got["ContentLength"],
            "metadata": got.get("Metadata", {}),
            "storage_class": got.get("StorageClass"),
            "sse": got.get("ServerSideEncryption"),
            "last_modified": got["LastModified"].isoformat(),
        },
        sys.stdout,
    )


def download(endpoint, bucket, suffix, directory):
    """Saves every object whose key ends with `suffix` under `directory`; returns (key, path,
    content type) of each."""
    s3 = client(endpoint)
    saved = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for entry in page.get("Contents", []):
            if not entry["Key"].endswith(suffix):
                continue
            got = s3.get_object(Bucket=bucket, Key=entry["Key"])
            path = os.path.join(directory, f"{len(saved):06}{suffix}")
            with open(path, "wb") as file:
                file.write(got["Body"].read())
            saved.append((entry["Key"], path, got.get("ContentType")))
    return saved


def parquet(endpoint, bucket):
    import duckdb
    import pyarrow.parquet as pq

    with tempfile.TemporaryDirectory() as directory:
        objects = []
        for key, path, content_type in download(endpoint, bucket, ".parquet", directory):
            file = pq.ParquetFile(path)
            metadata = file.metadata
            codecs = sorted(
                {
                    metadata.row_group(group).column(column).compression
                    for group in range(metadata.num_row_groups)
                    for column in range(metadata.num_columns)
                }
            )
            schema = file.schema_arrow
            objects.append(
                {
                    "key": key,
                    "content_type": content_type,
                    "schema": [[field.name, str(field.type), field.nullable] for field in schema],
                    "rows": file.read().to_pylist(),
                    "row_groups": metadata.num_row_groups,
                    "codecs": codecs,
                    "created_by": metadata.created_by,
                }
            )
        pattern = os.path.join(directory, "*.parquet")
        count = duckdb.sql(f"SELECT count(*) FROM read_parquet('{pattern}')").fetchall()[0][0]
    json.dump({"objects": objects, "duckdb_count": count}, sys.stdout)


def duckdb_csv(endpoint, bucket, delimiter, quote, null_value):
    import duckdb

    with tempfile.TemporaryDirectory() as directory:
        download(endpoint, bucket, ".csv.gz", directory)
        pattern = os.path.join(directory, "*.csv.gz")
        relation = duckdb.read_csv(
            pattern,
            sep=delimiter,
            quotechar=quote,
            escapechar=quote,
            header=True,
            all_varchar=True,
            na_values=[null_value],
        )
        columns = relation.columns
        rows = [dict(zip(columns, row)) for row in relation.fetchall()]
    json.dump(rows, sys.stdout)


if __name__ == "__main__":
    command = sys.argv[1]
    if command == "serve":
        serve(sys.argv[2] if len(sys.argv) > 2 else None)
    elif command == "create":
        client(sys.argv[2]).create_bucket(Bucket=sys.argv[3])
    elif command == "head":
        head(sys.argv[2], sys.argv[3], sys.argv[4])
    elif command == "put":
        client(sys.argv[2]).put_object(Bucket=sys.argv[3], Key=sys.argv[4], Body=sys.stdin.buffer.read())
    elif command == "dump":
        dump(sys.argv[2], sys.argv[3], sys.argv[4:6] or None)
    elif command == "parquet":
        parquet(sys.argv[2], sys.argv[3])
    elif command == "duckdb-csv":
        duckdb_csv(*sys.argv[2:7])
    else:
        sys.exit(f"unknown command {command}")
