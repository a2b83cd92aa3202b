#!/usr/bin/env bash
# The embedded default end to end: SQLite, in-process worker, local APNs/FCM emulators and a demo
# app whose welcome push shows up on the emulators' inbox page within seconds. Ctrl-C stops all.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-.venv/bin}
INSTANCE=${PUSHGATE_INSTANCE_PATH:-instance}

"$BIN/flask" --app wsgi db upgrade
"$BIN/flask" --app wsgi keys create --role admin --name local-admin --if-none

rm -f "$INSTANCE/emulators.env"
PUSHGATE_WORKER=off "$BIN/flask" --app wsgi emulators &
EMULATORS=$!
trap 'kill $EMULATORS 2>/dev/null; wait $EMULATORS 2>/dev/null' EXIT
for _ in $(seq 1 100); do [ -s "$INSTANCE/emulators.env" ] && break; sleep 0.1; done
[ -s "$INSTANCE/emulators.env" ] || { echo "the emulators did not start" >&2; exit 1; }
set -a; . "$INSTANCE/emulators.env"; set +a

"$BIN/flask" --app wsgi demo
# `flask run` starts the in-process worker with the first request it serves: this asks for /readyz
# as soon as the server answers (within 30 s), so the welcome push goes out without waiting for one.
"$BIN/python" - "http://127.0.0.1:${FLASK_RUN_PORT:-5000}/readyz" <<'PY' &
import sys, time, urllib.error, urllib.request
deadline = time.monotonic() + 30
while time.monotonic() < deadline:
    try:
        urllib.request.urlopen(sys.argv[1], timeout=2).close()
        break
    except urllib.error.HTTPError:  # served all the same
        break
    except OSError:  # not listening yet
        time.sleep(0.2)
PY
echo "gateway on http://127.0.0.1:${FLASK_RUN_PORT:-5000} — the welcome push appears at http://127.0.0.1:8440/"
echo "console on http://127.0.0.1:${FLASK_RUN_PORT:-5000}/console/ — sign in with the 'console:' line above"
"$BIN/flask" --app wsgi run
