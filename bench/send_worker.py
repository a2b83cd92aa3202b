"""``flask --app wsgi worker`` with candidate patches applied first (``bench/send.py --whatif``).

The patches are the in-memory ones of ``bench/send_whatif.py``, named in ``PUSHGATE_BENCH_WHATIF``
(comma-separated). Nothing else differs from the real worker command, so the benchmark can measure a
suggested change end to end, in a separate process, before anyone edits the project's code.

    PUSHGATE_BENCH_WHATIF=load-core,apns-h2-lean python bench/send_worker.py
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.send_whatif import apply  # noqa: E402


def main() -> None:
    names = [name for name in os.environ.get("PUSHGATE_BENCH_WHATIF", "").split(",") if name]
    apply(names)
    print(f"whatif patches applied: {', '.join(names) or 'none'}", flush=True)
    from flask.cli import main as flask_main

    sys.argv = ["flask", "--app", "wsgi", "worker"]
    flask_main()


if __name__ == "__main__":
    main()
