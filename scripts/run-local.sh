#!/usr/bin/env bash
# The embedded default end to end: SQLite, in-process worker, local APNs/FCM emulators and a demo
# app whose welcome push shows up on the emulators' inbox page within seconds. Ctrl-C stops all.
# Ports: FLASK_RUN_PORT (gateway, 5000) and PUSHGATE_EMULATOR_*_PORT (8443, 8444, 8440, 8445).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-.venv/bin}
INSTANCE=${PUSHGATE_INSTANCE_PATH:-instance}
PORT=${FLASK_RUN_PORT:-5000}
INBOX_PORT=${PUSHGATE_EMULATOR_INBOX_PORT:-8440}
PIDFILE="$INSTANCE/make-run.pid"

# One make run per instance folder: a second one would replace the first one's emulators.env,
# which the first gateway's sync commands read, and find every port taken.
if [ -f "$PIDFILE" ] && ps -p "$(cat "$PIDFILE")" -o args= 2>/dev/null | grep -q run-local; then
  echo "pushgate is already running from $INSTANCE (make run, pid $(cat "$PIDFILE")): use it, or stop it" \
       "(Ctrl-C in its terminal, or kill $(cat "$PIDFILE")) before starting another" >&2
  exit 1
fi
if ! "$BIN/python" -c 'import socket, sys; s = socket.socket(); s.bind(("127.0.0.1", int(sys.argv[1])))' "$PORT" 2>/dev/null; then
  echo "port $PORT is in use by another program: stop it, or choose another port with FLASK_RUN_PORT=5001 make run" >&2
  exit 1
fi

"$BIN/flask" --app wsgi db upgrade
"$BIN/flask" --app wsgi keys create --role admin --name local-admin --if-none

mkdir -p "$INSTANCE"
echo $$ > "$PIDFILE"
EMULATORS= SERVER=
cleanup() {
  for child in $SERVER $EMULATORS; do kill "$child" 2>/dev/null || true; wait "$child" 2>/dev/null || true; done
  rm -f "$PIDFILE"
}
trap cleanup EXIT
trap 'exit 130' INT TERM  # Ctrl-C, or a kill of this script: stop the children through cleanup

rm -f "$INSTANCE/emulators.env"
PUSHGATE_WORKER=off "$BIN/flask" --app wsgi emulators &
EMULATORS=$!
for _ in $(seq 1 100); do
  [ -s "$INSTANCE/emulators.env" ] && break
  kill -0 "$EMULATORS" 2>/dev/null || exit 1  # it said why (a port in use, ...)
  sleep 0.1
done
[ -s "$INSTANCE/emulators.env" ] || { echo "the emulators did not start" >&2; exit 1; }
set -a; . "$INSTANCE/emulators.env"; set +a

"$BIN/flask" --app wsgi demo
# `flask run` starts the in-process worker with the first request it serves: this asks for /readyz
# as soon as the server answers (within 30 s), so the welcome push goes out without waiting for one.
"$BIN/python" - "http://127.0.0.1:$PORT/readyz" <<'PY' &
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
echo "gateway on http://127.0.0.1:$PORT — the welcome push appears at http://127.0.0.1:$INBOX_PORT/"
echo "console on http://127.0.0.1:$PORT/console/ — sign in with the 'console:' line above"
echo "sync commands in another shell need the emulators' settings first: set -a; . $INSTANCE/emulators.env; set +a"
"$BIN/flask" --app wsgi run --port "$PORT" &
SERVER=$!
wait "$SERVER"
