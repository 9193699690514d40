#!/usr/bin/env bash
# Quick start: installs what is needed, builds, and runs treatyd on the
# embedded SQLite store with the travel booking example (flight, hotel, car):
# one saga that succeeds and one whose car step fails so that the flight and
# hotel are compensated. Leaves the coordinator and the example services
# running and prints where to reach them.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

scripts/install-deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DTREATY_BUILD_TESTS=OFF >/dev/null
cmake --build build -j2 --target treatyd treatyctl travel_services book_trip

data="$root/treaty-data"
mkdir -p "$data"
# Stop what an earlier run left behind.
for name in treatyd travel_services; do
  if [ -f "$data/$name.pid" ] && kill -0 "$(cat "$data/$name.pid")" 2>/dev/null; then
    # SIGTERM drains; wait for the exit (treatyd holds the SQLite file
    # exclusively until it has stopped).
    pid=$(cat "$data/$name.pid")
    kill "$pid" || true
    for _ in $(seq 1 150); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  fi
done

setsid nohup build/examples/travel_services --port 7500 --data "$data/travel" \
  >"$data/travel_services.log" 2>&1 &
echo $! >"$data/travel_services.pid"
setsid nohup build/coordinator/treatyd --store "sqlite:$data/treaty.db" --http 127.0.0.1:7480 \
  >"$data/treatyd.log" 2>&1 &
echo $! >"$data/treatyd.pid"

for _ in $(seq 1 100); do
  curl -sf http://127.0.0.1:7480/readyz >/dev/null && curl -s -o /dev/null http://127.0.0.1:7500/ && break
  sleep 0.1
done
curl -sf http://127.0.0.1:7480/readyz >/dev/null || { cat "$data/treatyd.log"; exit 1; }

echo
echo "== 1. Booking a trip: every step succeeds"
build/examples/book_trip --coordinator http://127.0.0.1:7480 --services http://127.0.0.1:7500 \
  --traveller Ada || true
echo
echo "== 2. Booking a trip with no car available: the car step fails (409),"
echo "==    the hotel and flight bookings are compensated"
build/examples/book_trip --coordinator http://127.0.0.1:7480 --services http://127.0.0.1:7500 \
  --traveller Grace --car-class none || true
echo
echo "== What the participants saw (treaty-data/travel_services.log):"
cat "$data/travel_services.log"
echo
echo "Treaty is running on the embedded SQLite store ($data/treaty.db)."
echo "  Dashboard:  http://127.0.0.1:7480/"
echo "  API:        http://127.0.0.1:7480   e.g. curl http://127.0.0.1:7480/v1/transactions"
echo "  CLI:        build/coordinator/treatyctl list"
echo "  Health:     http://127.0.0.1:7480/readyz   Metrics: http://127.0.0.1:7480/metrics"
echo "  Services:   http://127.0.0.1:7500 (flight, hotel, car)"
echo "  Logs:       $data/treatyd.log"
echo "  Stop:       kill \$(cat $data/treatyd.pid) \$(cat $data/travel_services.pid)"
