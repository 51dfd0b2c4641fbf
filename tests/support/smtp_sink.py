"""An aiosmtpd server as a process of its own, as a mail server would be: it accepts every
message on a loopback port and writes one JSON line per message to its standard output, the
time it accepted it and the message's bytes (base64). Started by `servers.smtp_server_process`.

    python tests/support/smtp_sink.py PORT
"""

from __future__ import annotations

import base64
import json
import sys
import threading
import time
from typing import Any

from aiosmtpd.controller import Controller


def main() -> None:
    port = int(sys.argv[1])
    lock = threading.Lock()

    class Handler:
        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
            line = json.dumps(
                {
                    "at": time.time(),
                    "message": base64.b64encode(envelope.original_content).decode(),
                }
            )
            with lock:
                sys.stdout.write(line + "\n")
                sys.stdout.flush()
            return "250 Message accepted for delivery"

    controller = Controller(Handler(), hostname="127.0.0.1", port=port)
    controller.start()
    sys.stdout.write(json.dumps({"ready": port}) + "\n")
    sys.stdout.flush()
    try:
        sys.stdin.read()  # until the parent closes the pipe
    finally:
        controller.stop()


if __name__ == "__main__":
    main()
