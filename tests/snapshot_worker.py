"""A fresh process that continues handshakes from snapshots: one JSON request per stdin line.

Request: {"spec": config spec, "snapshot": b64, "input": b64, "random": [seed, position] | null}.
Answer: what snapshot_kit.step returns, or {"error": "..."}.
"""

from __future__ import annotations

import base64
import json
import sys

from snapshot_kit import SeededRandom, restore, step


def main() -> int:
    for line in sys.stdin:
        request = json.loads(line)
        try:
            seeded = request["random"]
            random = SeededRandom(seeded[0], seeded[1]) if seeded is not None else None
            connection = restore(request["spec"], base64.b64decode(request["snapshot"]), random)
            answer = step(connection, base64.b64decode(request["input"]), random)
        except Exception as error:  # reported to the test, which fails with it
            answer = {"error": f"{type(error).__name__}: {error}"}
        sys.stdout.write(json.dumps(answer) + "\n")
        sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
