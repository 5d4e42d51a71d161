#!/usr/bin/env bash
# Real-SLURM test: the smoke DAG through workflow/profiles/slurm on a one-node Slurm cluster on
# this machine, compared with a local run of the same DAG.
#
# Needs root on Debian 12 (apt). Installs Slurm 22.05 (slurmctld, slurmd, slurmdbd), munge and
# MariaDB (slurmdbd's database, so that sacct works as on a real cluster: the plugin polls job
# states with sacct), writes /etc/slurm/{slurm,slurmdbd}.conf for a cluster "rcfd-test" with
# node "localhost" (CPUs=2) in two partitions, "cpu" (default) and "gpu" (the same node, no GPU:
# it stands in for a cluster's GPU partition), starts the daemons without systemd, runs
#   1. the smoke DAG locally (`snakemake --cores 2`) into results/slurm_test/local,
#   2. the same DAG with `--workflow-profile workflow/profiles/slurm` into results/slurm_test/slurm,
# then checks that every job Snakemake submitted is COMPLETED in sacct, in the partition and
# account the profile asked for, and that both runs produced the same files, byte for byte (every
# per-run metrics.csv among them) but for those that record times, dates or paths (listed below,
# with why). 17.5 min measured on 2 shared cores (README). The daemons are stopped on exit
# (RCFD_SLURM_KEEP=1 leaves them running); the packages stay installed. Rerunning is safe.
#
# Usage: make slurm-test (from the repository root), or bash tests/slurm/run.sh (from anywhere)
# Environment: PYTHON (default: python3 on PATH; needs snakemake and snakemake-executor-plugin-slurm,
# `pip install -e '.[slurm]'`), RCFD_SLURM_TEST_DIR (daemon state and logs, default
# /var/tmp/rcfd-slurm-test), RCFD_SLURM_TIMEOUT (seconds per Snakemake run, default 2400).
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
PYTHON="${PYTHON:-python3}"
STATE="${RCFD_SLURM_TEST_DIR:-/var/tmp/rcfd-slurm-test}"
RUN_TIMEOUT="${RCFD_SLURM_TIMEOUT:-2400}"
CLUSTER=rcfd-test
ACCOUNT=rcfd
MARKER="# written by rcfd tests/slurm/run.sh"
LOCAL_DIR=results/slurm_test/local
SLURM_DIR=results/slurm_test/slurm
T0=$(date +%s)

log() { printf '[slurm-test %4ss] %s\n' "$(($(date +%s) - T0))" "$*"; }
die() { printf '[slurm-test] ERROR: %s\n' "$*" >&2; exit 1; }

# wait_for SECONDS DESCRIPTION COMMAND...: retry COMMAND once a second until it succeeds
wait_for() {
    local limit=$1 what=$2; shift 2
    local end=$(($(date +%s) + limit))
    until "$@" >/dev/null 2>&1; do
        [ "$(date +%s)" -lt "$end" ] || die "timed out after ${limit}s waiting for $what (logs: $STATE/log)"
        sleep 1
    done
}

# ---- preconditions -----------------------------------------------------------------------
[ "$(id -u)" = 0 ] || die "must run as root (installs packages, writes /etc/slurm, starts daemons)"
[ -f /etc/debian_version ] && command -v apt-get >/dev/null || die "needs Debian with apt-get"
"$PYTHON" -c "import snakemake, snakemake_executor_plugin_slurm" 2>/dev/null \
    || die "$PYTHON lacks snakemake or the SLURM executor plugin: pip install -e '.[slurm]'"
for f in /etc/slurm/slurm.conf /etc/slurm/slurmdbd.conf; do
    if [ -e "$f" ] && ! grep -qF "$MARKER" "$f"; then
        die "$f exists and was not written by this test: refusing to replace a real cluster's config"
    fi
done

# ---- packages ----------------------------------------------------------------------------
NEED=(slurmctld slurmd slurmdbd sbatch sacct sacctmgr munged mariadbd mysql)
missing=0
for b in "${NEED[@]}"; do command -v "$b" >/dev/null || missing=1; done
if [ "$missing" = 1 ]; then
    mkdir -p "$STATE"
    log "installing slurm-wlm (slurmctld, slurmd, slurmdbd, client), munge, mariadb-server"
    # keep the packages' init scripts from starting daemons: this script starts them itself
    policy=/usr/sbin/policy-rc.d
    own_policy=0
    if [ ! -e "$policy" ]; then printf '#!/bin/sh\nexit 101\n' > "$policy"; chmod +x "$policy"; own_policy=1; fi
    export DEBIAN_FRONTEND=noninteractive
    timeout --foreground 600 apt-get update -qq || die "apt-get update failed"
    timeout --foreground 900 apt-get install -y -qq --no-install-recommends \
        slurmctld slurmd slurm-client slurmdbd munge mariadb-server >"$STATE/apt.log" 2>&1 \
        || { tail -20 "$STATE/apt.log" >&2; die "apt-get install failed (log: $STATE/apt.log)"; }
    [ "$own_policy" = 1 ] && rm -f "$policy"
    log "packages installed"
fi
for b in "${NEED[@]}"; do command -v "$b" >/dev/null || die "$b not found after installing packages"; done

# ---- stop what a previous run of this script left, start clean ---------------------------
stop_pidfile() {  # stop the daemon whose pid is in $1, if it is still running
    local f=$1 pid
    [ -f "$f" ] || return 0
    pid=$(cat "$f" 2>/dev/null || true)
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
        kill "$pid" 2>/dev/null || true
        for _ in $(seq 30); do kill -0 "$pid" 2>/dev/null || break; sleep 1; done
        kill -0 "$pid" 2>/dev/null && kill -9 "$pid" 2>/dev/null || true
    fi
    rm -f "$f"
}
stop_all() {
    for d in slurmd slurmctld slurmdbd mariadb munged; do stop_pidfile "$STATE/run/$d.pid"; done
}
cleanup() {
    local rc=$?
    if [ "${RCFD_SLURM_KEEP:-0}" = 1 ]; then
        log "daemons left running (RCFD_SLURM_KEEP=1); stop them with: kill \$(cat $STATE/run/*.pid)"
    else
        stop_all
        log "daemons stopped"
    fi
    exit $rc
}
stop_all
for d in slurmctld slurmd slurmdbd; do
    if pgrep -x "$d" >/dev/null; then die "a $d not started by this test is running: refusing to interfere"; fi
done
trap cleanup EXIT
trap "exit 130" INT TERM
rm -rf "$STATE/ctld" "$STATE/slurmd" "$STATE/log"
mkdir -p "$STATE/run" "$STATE/ctld" "$STATE/slurmd" "$STATE/log" /etc/slurm

# ---- configuration -----------------------------------------------------------------------
CTLD_HOST=$(hostname -s)
MEM_MB=$(awk '/MemTotal/ {print int($2 / 1024) - 1024}' /proc/meminfo)  # leave 1 GB to the system
cat > /etc/slurm/slurm.conf <<EOF
$MARKER: a one-node test cluster
ClusterName=$CLUSTER
SlurmctldHost=$CTLD_HOST(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=$STATE/ctld
SlurmdSpoolDir=$STATE/slurmd
SlurmctldPidFile=$STATE/run/slurmctld.pid
SlurmdPidFile=$STATE/run/slurmd.pid
SlurmctldLogFile=$STATE/log/slurmctld.log
SlurmdLogFile=$STATE/log/slurmd.log
# no cgroups (containers and VMs without systemd): track processes by parent pid, no binding
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
ReturnToService=2
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
# job accounting in slurmdbd (MariaDB): sacct lists every job, as on a real cluster
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
JobAcctGatherType=jobacct_gather/linux
JobCompType=jobcomp/none
AccountingStoreFlags=job_comment  # the plugin's comment (rule and wildcards) in sacct -o Comment
NodeName=localhost NodeAddr=127.0.0.1 CPUs=2 RealMemory=$MEM_MB State=UNKNOWN
PartitionName=cpu Nodes=localhost Default=YES MaxTime=INFINITE State=UP
PartitionName=gpu Nodes=localhost Default=NO MaxTime=INFINITE State=UP
EOF
DB_PASS=rcfd-slurm-test
cat > /etc/slurm/slurmdbd.conf <<EOF
$MARKER
AuthType=auth/munge
DbdHost=localhost
SlurmUser=root
PidFile=$STATE/run/slurmdbd.pid
LogFile=$STATE/log/slurmdbd.log
StorageType=accounting_storage/mysql
StorageHost=localhost
StorageUser=slurm
StoragePass=$DB_PASS
StorageLoc=slurm_acct_db
EOF
chmod 600 /etc/slurm/slurmdbd.conf

# ---- daemons -----------------------------------------------------------------------------
# munge: reuse a running one (a real cluster's, or the system's), else start ours
if munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
    log "munged already running"
else
    [ -s /etc/munge/munge.key ] || runuser -u munge -- mungekey -c
    mkdir -p /run/munge && chown munge:munge /run/munge
    rm -f /run/munge/munged.pid
    runuser -u munge -- munged 2>"$STATE/log/munged.log" || die "munged did not start (log: $STATE/log/munged.log)"
    wait_for 15 "munged's pid file" test -s /run/munge/munged.pid
    cp /run/munge/munged.pid "$STATE/run/munged.pid"  # where stop_all looks
    wait_for 30 "munge credentials" sh -c 'munge -n | unmunge'
    log "munged started"
fi

# MariaDB for slurmdbd: reuse a running server, else start ours
if mysqladmin ping >/dev/null 2>&1; then
    log "MariaDB already running"
else
    mkdir -p /run/mysqld && chown mysql:mysql /run/mysqld
    [ -d /var/lib/mysql/mysql ] || mariadb-install-db --user=mysql >"$STATE/log/mariadb-install.log" 2>&1
    mariadbd --user=mysql >"$STATE/log/mariadb.log" 2>&1 &
    echo $! > "$STATE/run/mariadb.pid"
    wait_for 60 "MariaDB" mysqladmin ping
    log "MariaDB started"
fi
mysql -e "CREATE DATABASE IF NOT EXISTS slurm_acct_db;
          CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED BY '$DB_PASS';
          GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost'; FLUSH PRIVILEGES;" \
    || die "could not create the slurmdbd database user"

slurmdbd || die "slurmdbd did not start (log: $STATE/log/slurmdbd.log)"
wait_for 60 "slurmdbd (sacctmgr)" sacctmgr -n list cluster
sacctmgr -n -P list cluster format=cluster | grep -qx "$CLUSTER" || sacctmgr -i add cluster "$CLUSTER" >/dev/null
sacctmgr -n -P list account format=account | grep -qx "$ACCOUNT" \
    || sacctmgr -i add account "$ACCOUNT" cluster="$CLUSTER" description="rcfd slurm test" organization=rcfd >/dev/null
sacctmgr -n -P list assoc user=root account="$ACCOUNT" format=user | grep -qx root \
    || sacctmgr -i add user root account="$ACCOUNT" cluster="$CLUSTER" >/dev/null
log "slurmdbd started; account $ACCOUNT on cluster $CLUSTER"

slurmctld -c || die "slurmctld did not start (log: $STATE/log/slurmctld.log)"
slurmd -N localhost || die "slurmd did not start (log: $STATE/log/slurmd.log)"
wait_for 60 "node localhost idle in sinfo" sh -c 'sinfo -h -n localhost -p cpu -o %t | grep -qx idle'
log "cluster up: $(sinfo -h -o '%P %D %t %c cpus %m MB' | tr '\n' ';')"
timeout --foreground 120 srun -p cpu -A "$ACCOUNT" -n1 -t 1 true || die "a one-second srun job did not run (logs: $STATE/log)"

# ---- the two runs ------------------------------------------------------------------------
cd "$REPO"
rm -rf "$LOCAL_DIR" "$SLURM_DIR"
log "local run: snakemake --cores 2 --configfile configs/smoke.yaml into $LOCAL_DIR"
t=$(date +%s)
timeout --foreground "$RUN_TIMEOUT" "$PYTHON" -m snakemake --cores 2 --configfile configs/smoke.yaml \
    --config results_dir="$LOCAL_DIR" figures_dir="$LOCAL_DIR/figures" >"$STATE/log/local.log" 2>&1 \
    || { tail -30 "$STATE/log/local.log" >&2; die "local smoke run failed (log: $STATE/log/local.log)"; }
LOCAL_S=$(($(date +%s) - t))
log "local run done in ${LOCAL_S}s"

log "SLURM run: snakemake --workflow-profile workflow/profiles/slurm --configfile configs/smoke.yaml into $SLURM_DIR"
t=$(date +%s)
# the profile's account and partitions, as a user sets them; status checks every few seconds
# instead of the plugin's 40 s (a tiny cluster, short jobs)
RCFD_SLURM_ACCOUNT=$ACCOUNT RCFD_SLURM_PARTITION=cpu RCFD_SLURM_GPU_PARTITION=gpu \
    timeout --foreground "$RUN_TIMEOUT" "$PYTHON" -m snakemake --workflow-profile workflow/profiles/slurm \
    --configfile configs/smoke.yaml --config results_dir="$SLURM_DIR" figures_dir="$SLURM_DIR/figures" \
    --slurm-init-seconds-before-status-checks 5 >"$STATE/log/slurm.log" 2>&1 \
    || { tail -30 "$STATE/log/slurm.log" >&2; die "SLURM smoke run failed (log: $STATE/log/slurm.log)"; }
SLURM_S=$(($(date +%s) - t))
log "SLURM run done in ${SLURM_S}s"

# ---- checks ------------------------------------------------------------------------------
# Snakemake's log names each submission: "Job 57 has been submitted with SLURM jobid 14 (log:
# .../slurm_logs/rule_train/summaries_sft_0/14.log)", i.e. the SLURM job id and the rule
RUN_ID=$(grep -oP 'SLURM run ID: \K\S+' "$STATE/log/slurm.log" | head -1)
[ -n "$RUN_ID" ] || die "no 'SLURM run ID' in $STATE/log/slurm.log"
grep -oP 'submitted with SLURM jobid \K[0-9]+ \(log: \S*/slurm_logs/rule_[A-Za-z0-9_]+' "$STATE/log/slurm.log" \
    | sed -E 's#^([0-9]+) .*/rule_([A-Za-z0-9_]+)$#\1 \2#' | sort -u > "$STATE/submitted.txt"
N_SUBMITTED=$(wc -l < "$STATE/submitted.txt")
[ "$N_SUBMITTED" -gt 0 ] || die "Snakemake submitted no SLURM job (log: $STATE/log/slurm.log)"
# the plugin's own status query (sacct by job name = the run ID), with partition and account
sacct -X -n -P --name "$RUN_ID" --starttime now-1days --endtime now \
    -o JobID,State,ExitCode,Partition,Account,Elapsed,Comment > "$STATE/sacct.txt"
"$PYTHON" - "$STATE/submitted.txt" "$STATE/sacct.txt" "$ACCOUNT" <<'PY'
import sys
submitted = dict(line.split() for line in open(sys.argv[1]).read().splitlines())
jobs = {r[0]: r for r in (line.split("|") for line in open(sys.argv[2]).read().splitlines() if line)}
problems = []
if set(jobs) != set(submitted):
    problems.append(f"sacct lists {len(jobs)} jobs of this run, Snakemake submitted {len(submitted)}: missing in "
                    f"sacct {sorted(set(submitted) - set(jobs))}, not submitted {sorted(set(jobs) - set(submitted))}")
gpu_rules = {"train_reward_model", "score_demos", "train", "generate", "evaluate", "validate_judge"}  # the profile's set-resources
by_rule = {}
for jobid, state, exitcode, partition, account, elapsed, comment in jobs.values():
    rule = submitted.get(jobid, "?")
    by_rule[rule] = by_rule.get(rule, 0) + 1
    want = "gpu" if rule in gpu_rules else "cpu"
    if state != "COMPLETED" or exitcode != "0:0":
        problems.append(f"SLURM job {jobid} (rule {rule}): {state}, exit code {exitcode}")
    if partition != want or account != sys.argv[3]:
        problems.append(f"SLURM job {jobid} (rule {rule}): partition {partition}, account {account}; "
                        f"the profile asks for {want}, {sys.argv[3]}")
    if not comment.startswith(f"rule_{rule}"):
        problems.append(f"SLURM job {jobid}: comment {comment!r}, expected the rule {rule}")
print(f"sacct: {len(jobs)} jobs, all COMPLETED in the profile's partition and account ("
      + ", ".join(f"{r} {n}" for r, n in sorted(by_rule.items())) + ")")
if problems:
    sys.exit("\n".join(problems))
PY

# Both runs must produce the same files (logs and benchmarks aside), byte for byte, except those
# that record when, how fast or where a job ran:
#   *.provenance.json             written_at and the jobs' benchmark seconds
#   policy/train_log.csv, policy/train_summary.json, reward_models/*/metrics.json
#                                 wall-clock columns (train_runtime, samples per second, seconds)
#   policy/roofline.json          the GEMM throughput and memory bandwidth the job measured
#   policy/training_args.bin      the pickled TrainingArguments hold output_dir (the results dir)
#   policy/adapter_config.json    PEFT writes target_modules from a set: its order follows the
#                                 process's hash seed, so it is compared as sorted JSON
#   tables/claims.md              its links name the run's results folder: compared without it
"$PYTHON" - "$LOCAL_DIR" "$SLURM_DIR" <<'PY'
import fnmatch, json, re, sys
from pathlib import Path
local, slurm = map(Path, sys.argv[1:])
VARY = ["*.provenance.json", "*/policy/train_log.csv", "*/policy/train_summary.json", "*/policy/roofline.json",
        "reward_models/*/metrics.json", "*/policy/training_args.bin", "tables/time_breakdown.*",
        "tables/rl_step_breakdown.*"]
def files(root):
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()
            and p.relative_to(root).parts[0] not in ("logs", "benchmarks")}
def normal(path):
    if path.endswith("adapter_config.json"):
        c = json.loads((local / path).read_text()), json.loads((slurm / path).read_text())
        for d in c:
            d["target_modules"] = sorted(d["target_modules"])
        return c
    if path.endswith("claims.md"):  # its links name the run's own tables folder: compared without it
        return tuple(re.sub(r"\]\([^)]*/tables/", "](tables/", (root / path).read_text()) for root in (local, slurm))
    return (local / path).read_bytes(), (slurm / path).read_bytes()
a, b = files(local), files(slurm)
problems = []
if a != b:
    problems.append(f"only in the local run: {sorted(a - b)[:10]}; only in the SLURM run: {sorted(b - a)[:10]}")
vary = {p for p in a & b if any(fnmatch.fnmatch(p, g) for g in VARY)}
same = sorted((a & b) - vary)
differ = [p for p in same if (lambda x: x[0] != x[1])(normal(p))]
if differ:
    problems.append(f"{len(differ)} files differ between the local and the SLURM run: {differ}")
metrics = [p for p in same if p.endswith("/metrics.csv")]
if not metrics:
    problems.append("no per-run metrics.csv to compare")
def cpu_minutes(root):  # the jobs' own CPU time, from their benchmark files
    return sum(float(line.split("\t")[-1]) for f in (root / "benchmarks").rglob("*.tsv")
               for line in f.read_text().splitlines()[1:]) / 60
print(f"job CPU time (benchmarks): local run {cpu_minutes(local):.1f} min, SLURM run {cpu_minutes(slurm):.1f} min")
print(f"outputs: {len(a)} files in each run; {len(same) - len(differ)} identical (all {len(metrics)} per-run "
      f"metrics.csv among them), {len(vary)} not compared (timings, dates, paths)")
if problems:
    sys.exit("\n".join(problems))
PY

log "PASSED: local run ${LOCAL_S}s, SLURM run ${SLURM_S}s ($N_SUBMITTED SLURM jobs); total $(($(date +%s) - T0))s"
