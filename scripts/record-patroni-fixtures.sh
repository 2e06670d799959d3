#!/usr/bin/env bash
# Records real Patroni REST API responses into pgha-client/tests/fixtures/patroni/LABEL/ from a
# throw-away pgha-devcluster: healthy, replay stuck on a standby, just after a switchover, history,
# config and the status of an unauthenticated POST.
#
#   scripts/record-patroni-fixtures.sh LABEL PATRONI SYNC
#   e.g. scripts/record-patroni-fixtures.sh 4.1.5-sync 4 1
#
# Needs root (the cluster runs as `postgres`), curl, psql and a built pgha-devcluster
# (cargo build -p pgha-testkit --features cli). Ports and scopes differ per recording; tests assert on shapes.
set -euo pipefail
label=$1; flavor=$2; sync=${3:-0}
root=$(cd "$(dirname "$0")/.." && pwd)
out=$root/pgha-client/tests/fixtures/patroni/$label
mkdir -p $out
DC=$root/target/debug/pgha-devcluster
export PGHA_DEVCLUSTER_DIR=/tmp/pgha-capture-$label
# Connection info holds passwords: keep it in a private temp dir, removed with the cluster.
tmp=$(mktemp -d)
trap '$DC down >/dev/null 2>&1 || true; rm -rf "$tmp"' EXIT
$DC up --patroni $flavor $([ "$sync" = 1 ] && echo --synchronous-mode) --json > $tmp/info.json
python3 - "$tmp" <<'PY'
import json,sys
i=json.load(open(f"{sys.argv[1]}/info.json"))
with open(f"{sys.argv[1]}/env","w") as f:
    for m in i["members"]:
        f.write(f"{m['name']}_api={m['api_url']}\n{m['name']}_port={m['port']}\n")
    f.write(f"su_pw={i['credentials']['superuser']['password']}\nrest_pw={i['credentials']['rest']['password']}\n")
PY
source $tmp/env
sleep 3
api=$node1_api
curl -s $api/cluster | python3 -m json.tool > $out/cluster_healthy.json
leader=$(python3 -c "import json;print([m['name'] for m in json.load(open('$out/cluster_healthy.json'))['members'] if m['role']=='leader'][0])")
for n in node1 node2 node3; do
  a=${n}_api; role=$([ $n = $leader ] && echo primary || echo replica)
  curl -s ${!a}/patroni | python3 -m json.tool > $out/patroni_$role.json
done
# a standby with replay paused and the leader writing
rep=$(python3 -c "import json;print([m['name'] for m in json.load(open('$out/cluster_healthy.json'))['members'] if m['role']!='leader'][0])")
lp=${leader}_port
pm=$(head -1 $PGHA_DEVCLUSTER_DIR/$rep/data/postmaster.pid)
startup=$(ps -o pid=,args= --ppid $pm | awk '/startup/{print $1}')
kill -STOP $startup
PGPASSWORD=$su_pw psql -qAt -h 127.0.0.1 -p ${!lp} -U postgres -d pgha -c "create table filler as select g, repeat('x',200) pad from generate_series(1,20000) g" >/dev/null
sleep 5
curl -s $api/cluster | python3 -m json.tool > $out/cluster_replay_paused.json
ra=${rep}_api
curl -s ${!ra}/patroni | python3 -m json.tool > $out/patroni_replica_replay_paused.json
kill -CONT $startup
# switchover → history with an entry
cand=$(python3 -c "import json;print([m['name'] for m in json.load(open('$out/cluster_healthy.json'))['members'] if m['role']!='leader'][-1])")
la=${leader}_api
curl -s -u pgha:$rest_pw -XPOST ${!la}/switchover -d "{\"leader\":\"$leader\",\"candidate\":\"$cand\"}" > $out/switchover_response.txt; echo >> $out/switchover_response.txt
sleep 1
curl -s $api/cluster | python3 -m json.tool > $out/cluster_after_switchover_early.json || true
sleep 8
curl -s $api/cluster | python3 -m json.tool > $out/cluster_after_switchover.json
curl -s $api/history | python3 -m json.tool > $out/history.json
curl -s $api/config | python3 -m json.tool > $out/config.json
curl -s -o /dev/null -w '%{http_code}\n' -XPOST ${!la}/switchover -d '{}' > $out/unauth_status.txt
echo captured $label
