#!/usr/bin/env bash
# `make demo`: an operator's first day with zerog, against a throwaway local devnet.
# Everything happens in a temporary ZEROG_HOME; the devnet is stopped even when a step fails.
set -euo pipefail

ZEROG_HOME=$(mktemp -d "${TMPDIR:-/tmp}/zerog-demo.XXXXXX")
export ZEROG_HOME
export PYTHON_KEYRING_BACKEND=keyring.backends.null.Keyring
export NO_PROXY=127.0.0.1,localhost
WORK="$ZEROG_HOME/work"
mkdir -p "$WORK"
cd "$WORK"

finish() {
    status=$?
    zerog devnet down >/dev/null 2>&1 || true
    if [ "$status" -eq 0 ]; then
        echo "== demo finished: everything above ran against the devnet in $ZEROG_HOME"
    else
        echo "== demo FAILED (exit $status); the devnet was stopped; files are in $ZEROG_HOME" >&2
    fi
}
trap finish EXIT

step() {
    echo
    echo "== $1"
    shift
    echo "\$ $*"
    "$@"
}

step "set up a home folder, config and ledger" zerog init
step "start a local 0G devnet in the background (port chosen by the OS)" \
    zerog devnet up --detach --port 0 --quiet
step "check the machine is ready" zerog status
head -c 2000000 /dev/urandom > orders.db
step "create a namespace with a quota" zerog ns create backups --quota 1GB --meta team=sre
step "upload: policy and quota checked, paid once, finalized and read back" \
    zerog upload orders.db --ns backups
step "download: every segment proof and the SHA-256 checked before the file appears" \
    zerog download backups/orders.db -o restored.db
cmp orders.db restored.db
step "back up a file (an upload plus a backup record)" zerog backup create orders.db --ns backups --label nightly
step "verify every backup as cron would (silent on success; -v to see each item)" zerog verify --all -v
step "ask the devnet's model a question, within the user's budget" zerog infer "What is 0G?" --no-stream
step "this month's costs by service" zerog quota report --by service
step "quota usage of the acting user" zerog quota show
