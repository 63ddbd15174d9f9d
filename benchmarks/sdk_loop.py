"""What operators write today: the official Huawei Cloud SDK (``huaweicloudsdkdcs``) calling
ListBackgroundTask for each instance, one after another. Runs inside ``.venv-bench``.

Reads one JSON object on stdin (``url``, ``project_id``, ``access_key``, ``secret_key``,
``instances``, ``start_time``) and prints one: ``seconds``, ``requests``, ``tasks``, ``errors``,
``cpu_seconds`` and the SDK version. The SDK signs every request with its own AK/SK signer.
"""

from __future__ import annotations

import json
import sys
import time
from importlib.metadata import version
from typing import Any


def main() -> int:
    """One sequential pass over every instance, timed."""
    from huaweicloudsdkcore.auth.credentials import BasicCredentials
    from huaweicloudsdkcore.exceptions import exceptions
    from huaweicloudsdkcore.http.http_config import HttpConfig
    from huaweicloudsdkdcs.v2 import (  # type: ignore[import-not-found, unused-ignore]
        DcsClient,
        ListBackgroundTaskRequest,
    )

    job: dict[str, Any] = json.loads(sys.stdin.read())
    config = HttpConfig.get_default_config()
    config.ignore_ssl_verification = True  # the endpoint is plain http on loopback anyway
    config.timeout = (10, 10)
    credentials = BasicCredentials(job["access_key"], job["secret_key"], job["project_id"])
    client = (
        DcsClient.new_builder()
        .with_http_config(config)
        .with_credentials(credentials)
        .with_endpoint(job["url"])  # http:// is kept as given; no region, so no IAM call
        .build()
    )

    def one(instance_id: str) -> int:
        request = ListBackgroundTaskRequest(
            instance_id=instance_id, offset=0, limit=1000, start_time=job["start_time"]
        )
        response = client.list_background_task(request)
        return len(response.tasks or [])

    instances: list[str] = job["instances"]
    one(instances[0])  # warm-up: the connection, lazy imports
    requests = tasks = errors = 0
    cpu = time.process_time()
    started = time.perf_counter()
    for instance_id in instances:
        requests += 1
        try:
            tasks += one(instance_id)
        except exceptions.SdkException:
            errors += 1
    seconds = time.perf_counter() - started
    result = {
        "seconds": seconds,
        "cpu_seconds": time.process_time() - cpu,
        "requests": requests,
        "tasks": tasks,
        "errors": errors,
        "sdk_version": version("huaweicloudsdkdcs"),
    }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
