#!/usr/bin/env bash
# make demo: the whole Plantroom system on this machine.
#
#   local ClickHouse (scripts/clickhouse.sh, 127.0.0.1:19000)
#   bin/cloud        embedded broker 127.0.0.1:1883, console and API 127.0.0.1:8080, metrics :9464
#   bin/devsim       two simulated buildings (Modbus on 151xx/152xx, MQTT lighting)
#   bin/edge-agent   one per building (metrics on 9102/9103, local broker 1884/1885)
#
# The first run backfills three months of history through the broker, as a
# gateway would; later runs reuse the data under .data/. Ctrl-C stops all.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
DATA="$REPO/.data/demo"
LOGS="$DATA/logs"
mkdir -p "$LOGS"

API=http://127.0.0.1:8080
BUILDINGS=(garden tower)
declare -A GATEWAY=([garden]=gw-garden-1 [tower]=gw-tower-1)
declare -A EDGE_HTTP=([garden]=9102 [tower]=9103)

say() { printf '\033[1mdemo:\033[0m %s\n' "$*"; }
die() { printf 'demo: ERROR: %s\n' "$*" >&2; exit 1; }

command -v jq >/dev/null || die "jq is missing (the device check after start needs it): apt-get install jq"
for b in bin/cloud bin/devsim bin/edge-agent; do
    [[ -x $b ]] || die "$b is missing: run 'make build' (make demo does it for you)"
done

# Refuse to start on top of something else that holds our ports.
busy=()
for port in 1883 8080 9464 1884 1885 9102 9103 15190 15290 15101 15201; do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then busy+=("$port"); fi
done
if ((${#busy[@]})); then
    die "ports already in use on 127.0.0.1: ${busy[*]} — is another demo (or a system mosquitto on 1883) running? Stop it first."
fi

PIDS=()
declare -A NAME=() # pid → component name
STARTED_CH=0
CLEANED=0
stop_pids() { # pid…: TERM, then up to 10 s each before KILL
    local pid
    for pid in "$@"; do kill -TERM "$pid" 2>/dev/null || true; done
    for pid in "$@"; do
        for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$pid" 2>/dev/null || true
    done
}
cleanup() {
    ((CLEANED)) && return
    CLEANED=1
    say "stopping…"
    # The edge agents first: a simulator stopping under a running edge
    # would be its devices going offline (the MQTT ones say so), and the
    # next start would show that outage. An edge that stops ignores the
    # last wills its plant-room broker fires on the way out. Then the
    # simulators, the cloud last.
    local pid edges=() rest=() clouds=()
    for pid in "${PIDS[@]}"; do
        case ${NAME[$pid]} in
        edge-*) edges+=("$pid") ;;
        cloud) clouds+=("$pid") ;;
        *) rest+=("$pid") ;;
        esac
    done
    stop_pids "${edges[@]}"
    stop_pids "${rest[@]}"
    stop_pids "${clouds[@]}"
    if ((STARTED_CH)); then scripts/clickhouse.sh stop >/dev/null || true; fi
    say "stopped. Data kept in .data/ (make demo again reuses it; rm -rf .data to start over)."
}
trap 'cleanup; exit 0' INT TERM
trap cleanup EXIT

start() { # name, command…
    local name=$1; shift
    "$@" >"$LOGS/$name.log" 2>&1 &
    PIDS+=($!)
    NAME[$!]=$name
    say "started $name (pid $!, log .data/demo/logs/$name.log)"
}

wait_http() { # url, name, seconds
    local deadline=$((SECONDS + ${3:-30}))
    until curl -fsS -o /dev/null "$1" 2>/dev/null; do
        ((SECONDS < deadline)) || die "$2 did not answer $1 within ${3:-30}s; see .data/demo/logs/$2.log"
        for pid in "${PIDS[@]}"; do
            kill -0 "$pid" 2>/dev/null || die "$2 exited; last lines of its log:
$(tail -20 "$LOGS/$2.log")"
        done
        sleep 0.3
    done
}

if ! scripts/clickhouse.sh status >/dev/null 2>&1; then
    STARTED_CH=1
fi
scripts/clickhouse.sh start

start cloud bin/cloud -config configs/cloud.yaml
wait_http "$API/readyz" cloud 60
say "console: $API/ (sign in as hq-admin / demo-pw-hq-admin; all accounts are printed below once history is loaded)"

# History: three months up to now, published through the broker exactly as
# the gateway would. The simulators' counter state continues from it.
for b in "${BUILDINGS[@]}"; do
    gw=${GATEWAY[$b]}
    marker="$DATA/backfill-$gw.done"
    if [[ -f $marker ]]; then
        say "history for $gw already loaded ($(cat "$marker"))"
        continue
    fi
    from=$(TZ=Asia/Shanghai date -d "$(TZ=Asia/Shanghai date +%Y-%m-01) -3 months" +%Y-%m-%d)
    to=$(date -u +%Y-%m-%dT%H:%M:%SZ)
    say "backfilling $gw from $from to $to (first run only)…"
    bin/devsim backfill -config "configs/building-$b.yaml" -state "$DATA/devsim-$b.state.json" \
        -gateway "$gw" -company acme -project "$b" -from "$from" -to "$to" \
        -broker tcp://127.0.0.1:1883 -username "$gw" -password "demo-$gw-secret" \
        -expected "$DATA/expected-$gw.json" >"$LOGS/backfill-$gw.log" 2>&1 ||
        die "backfill of $gw failed; see .data/demo/logs/backfill-$gw.log"
    echo "$from … $to" >"$marker"
done

started=$(date +%s)
for b in "${BUILDINGS[@]}"; do
    gw=${GATEWAY[$b]}
    start "edge-$gw" bin/edge-agent -config "configs/edge-$gw.yaml"
    wait_http "http://127.0.0.1:${EDGE_HTTP[$b]}/healthz" "edge-$gw" 30
    start "devsim-$b" bin/devsim -config "configs/building-$b.yaml" -state "$DATA/devsim-$b.state.json"
done

# Every configured device must report within its stale window after start
# (3 poll intervals, at least 11 minutes: api.StalePolls and api.MinStale):
# a device that does not is misconfigured (wrong address, wrong broker) and the demo says which.
check_devices() { # start (unix seconds)
    local started=$1 id poll seen window late pending list p waiting waited=$SECONDS
    while true; do
        late=() pending=0 list="" waiting=""
        for p in garden tower; do
            list+=$(curl -fsS -H 'Authorization: Bearer demo-hq-admin' "$API/api/v1/projects/$p/devices") ||
                die "cannot list the devices of project $p; see .data/demo/logs/cloud.log"
        done
        while read -r id poll seen; do
            [[ $seen != null ]] && (($(date -d "$seen" +%s) >= started)) && continue
            # poll_interval is a Go duration: 10s, 1m0s, 1h0m0s
            window=$(awk -v d="$poll" 'BEGIN { s = 0; while (match(d, /^[0-9.]+[hms]/)) {
                v = substr(d, 1, RLENGTH - 1); u = substr(d, RLENGTH, 1); d = substr(d, RLENGTH + 1)
                s += v * (u == "h" ? 3600 : u == "m" ? 60 : 1) }; s *= 3; print (s < 660 ? 660 : int(s)) }')
            pending=1 waiting+="$id "
            (($(date +%s) - started > window)) && late+=("$id (stale window ${window}s)")
        done < <(jq -r '.devices[] | "\(.id) \(.poll_interval) \(.last_seen)"' <<<"$list")
        ((pending)) || return 0
        (((SECONDS - waited) % 30 < 2)) && say "still waiting for: $waiting"
        if ((${#late[@]})); then
            die "no reading since start from: ${late[*]}; check its address in configs/org.yaml and configs/building-*.yaml and the edge logs in .data/demo/logs/"
        fi
        sleep 2
    done
}
say "waiting for every device's first reading…"
check_devices "$started"
say "every configured device reports"

month=$(TZ=Asia/Shanghai date +%Y-%m)
last=$(TZ=Asia/Shanghai date -d "$(TZ=Asia/Shanghai date +%Y-%m-15) -1 month" +%Y-%m)
today=$(TZ=Asia/Shanghai date +%Y-%m-%d)
first=$(TZ=Asia/Shanghai date +%Y-%m-01)
# Who is on duty at garden now (configs/org.yaml): 陈磊 08:00–20:00, 赵强 20:00–08:00.
hour=$(TZ=Asia/Shanghai date +%-H)
if ((hour >= 8 && hour < 20)); then tech=tech-garden-1; else tech=tech-garden-2; fi
# Garden's public repair-request link (the lobby poster's QR code).
request_link=$API$(curl -fsS -H 'Authorization: Bearer demo-pm-garden' "$API/api/v1/projects/garden/resident-link" | jq -r .path) ||
    die "cannot read garden's request link; see .data/demo/logs/cloud.log"
cat <<EOF

Plantroom is running. Open the console:

  $API/

  sign in as         password                 sees
  hq-admin           demo-pw-hq-admin         HQ overview: every project (王建国, hq_admin)
  hq-viewer          demo-pw-hq-viewer        the same, read only (李娜)
  pm-garden          demo-pw-pm-garden        翠湖花园 garden (张伟, project manager)
  pm-tower           demo-pw-pm-tower         滨江商务中心 tower (刘洋, project manager)
  $tech      demo-pw-$tech    garden's alarms and his work orders (on duty now)
  tech-tower-1       demo-pw-tech-tower-1     tower's alarms and his work orders

  The repair loop (a resident reports, the technician on duty fixes, the resident rates):
  1. As a resident (no account; best on a phone or a narrow window), open garden's request link
       $request_link
     choose 电梯 (lift), give a location and what is wrong, optionally a phone number, 提交报修.
     You land on your private tracking page: keep its address.
  2. Sign in as $tech / demo-pw-$tech (on duty now), open $API/my: the request is there
     (reload); press 接单 (accept), 开始处理 (start), 已解决 (resolve), each with a note if you like.
  3. Reload the tracking page: 已修好 (fixed); give 1–5 stars and a comment, once.
  4. Sign in as pm-garden / demo-pw-pm-garden: $API/projects/garden/requests lists the
     requests (phones masked), shows the poster's QR code and rotates the link (the old one stops).
     Close the order as the manager through the API:
       curl -s -X POST -H 'Authorization: Bearer demo-pm-garden' -H 'Content-Type: application/json' \\
            -d '{"to":"closed"}' "$API/api/v1/workorders/<id>/transitions"
  5. Sign in as hq-admin: the HQ overview's "住户报修与满意度" counts it (requests, response and
     resolution minutes, satisfaction), the same figures as
       curl -s -H 'Authorization: Bearer demo-hq-admin' '$API/api/v1/stats/residents?month=$month'

  Watch an alarm arrive: sign in as $tech, open $API/alarms, press
  "开启声音和通知" (sound and notifications), then trap a passenger:
  curl -s -X POST http://127.0.0.1:15190/devices/garden-elevator-1/trapped
  and release them again:
  curl -s -X POST http://127.0.0.1:15190/devices/garden-elevator-1/events/release

The same through the API (tokens are listed in README.md):

  # HQ: every project of the company, ranked by kWh/m²
  curl -s -H 'Authorization: Bearer demo-hq-admin' '$API/api/v1/energy/monthly?month=$last'

  # a project's monthly report as CSV (opens in Excel with the Chinese names intact)
  curl -s -H 'Authorization: Bearer demo-pm-garden' '$API/api/v1/projects/garden/energy/monthly?month=$last&format=csv' -o garden-$last.csv

  # daily kWh for a chart
  curl -s -H 'Authorization: Bearer demo-pm-garden' '$API/api/v1/projects/garden/energy/daily?from=$first&to=$today'

  # devices with their latest values and online state
  curl -s -H 'Authorization: Bearer demo-pm-tower' '$API/api/v1/projects/tower/devices'

  # the on-duty technician's alarm feed (Server-Sent Events; $tech is on duty now)…
  curl -sN -H 'Authorization: Bearer demo-$tech' '$API/api/v1/alarms/stream'
  # …and, in another terminal, trap a passenger in an elevator
  curl -s -X POST http://127.0.0.1:15190/devices/garden-elevator-1/trapped

  # the work order it opened (30-minute SLA; it appears within the elevator's 10 s poll
  # interval), then accept it as the technician
  curl -s -H 'Authorization: Bearer demo-$tech' '$API/api/v1/workorders?project=garden'
  id=\$(curl -s -H 'Authorization: Bearer demo-$tech' '$API/api/v1/workorders?project=garden&state=assigned' | sed -n 's/.*"id":"\\(wo-[^"]*\\)".*/\\1/p' | head -1)
  curl -s -X POST -H 'Authorization: Bearer demo-$tech' -H 'Content-Type: application/json' \\
       -d '{"to":"accepted","note":"on my way"}' "$API/api/v1/workorders/\$id/transitions"
  # release the passenger; the alarm clears
  curl -s -X POST http://127.0.0.1:15190/devices/garden-elevator-1/events/release

  # remote control: switch garden's public lighting circuit 1 off as its manager (reason required),
  # follow the command until "applied" (before/after read back), see the next reading
  curl -s -X POST -H 'Authorization: Bearer demo-pm-garden' -H 'Content-Type: application/json' \\
       -d '{"point":"circuit1_on","value":0,"reason":"白天常亮 lit at noon"}' '$API/api/v1/devices/garden-lighting-1/commands'
  curl -s -H 'Authorization: Bearer demo-pm-garden' '$API/api/v1/devices/garden-lighting-1/commands?limit=1'
  curl -s -H 'Authorization: Bearer demo-pm-garden' '$API/api/v1/devices/garden-lighting-1'
  # the garden garage lights (a Tasmota relay on the plant-room MQTT broker) off, the same way
  curl -s -X POST -H 'Authorization: Bearer demo-pm-garden' -H 'Content-Type: application/json' \\
       -d '{"point":"switch_on","value":0,"reason":"车库灯白天常亮 garage lit at noon"}' '$API/api/v1/devices/garden-plug-1/commands'

  # the edge box's own metrics (queue depth, device state, uplink)
  curl -s http://127.0.0.1:9102/metrics | grep plantroom_edge_

Logs: .data/demo/logs/. Ctrl-C stops everything.
EOF
# On a desktop, open the console in the browser.
if [[ -n ${DISPLAY:-}${WAYLAND_DISPLAY:-} ]] && command -v xdg-open >/dev/null; then
    xdg-open "$API/" >/dev/null 2>&1 || true
fi

# Stay in the foreground until Ctrl-C or until a component dies.
while true; do
    for i in "${!PIDS[@]}"; do
        if ! kill -0 "${PIDS[$i]}" 2>/dev/null; then
            die "a component (pid ${PIDS[$i]}) exited; see .data/demo/logs/"
        fi
    done
    sleep 2
done
