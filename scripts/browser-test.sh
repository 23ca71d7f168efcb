#!/usr/bin/env bash
# Runs the admin UI's browser test (ui/tests) in headless Chromium against the real binary,
# built from this tree, on a fresh SQLite database. Screenshots land in screenshots/.
# --delivery-timeout is not the default (10s) so that tests can tell a stated setting from a
# hard-coded default (ui/tests/docs.test.mjs). The server traces to a stand-in OTLP/HTTP
# collector (node, discarding what it gets), so webhooks that ask for trace context get a
# traceparent (ui/tests/tracing.test.mjs).
set -euo pipefail
cd "$(dirname "$0")/.."

work=$(mktemp -d)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])' 2>/dev/null || echo 18099)
token="browser-test-token-$(date +%s)"
go build -o "$work/hookrelay" .
node -e '
  const s = require("http").createServer((q, r) => { q.resume(); q.on("end", () => { r.writeHead(200, {"Content-Type": "application/x-protobuf"}); r.end(); }); });
  s.listen(0, "127.0.0.1", () => require("fs").writeFileSync(process.argv[1], String(s.address().port)));
' "$work/otlp.port" &
otlp_pid=$!
for _ in $(seq 1 100); do [ -s "$work/otlp.port" ] && break; sleep 0.05; done
"$work/hookrelay" --addr "127.0.0.1:$port" --db "$work/ui.db" --admin-token "$token" \
  --allow-http --allow-private-targets --inspector-rate 0 --delivery-timeout 7s \
  --otlp-endpoint "http://127.0.0.1:$(cat "$work/otlp.port")" >"$work/server.log" 2>&1 &
pid=$!
cleanup() {
  kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true
  kill "$otlp_pid" 2>/dev/null || true; wait "$otlp_pid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
for _ in $(seq 1 100); do
  curl -fsS "http://127.0.0.1:$port/readyz" >/dev/null 2>&1 && break
  kill -0 "$pid" 2>/dev/null || { cat "$work/server.log"; exit 1; }
  sleep 0.1
done
export HOOKRELAY_URL="http://127.0.0.1:$port" HOOKRELAY_TOKEN="$token" SCREENSHOT_DIR="$PWD/screenshots"
if ! (cd ui && node --test ${BROWSER_TESTS:-tests/}); then
  echo "--- server log"; tail -50 "$work/server.log"; exit 1
fi
