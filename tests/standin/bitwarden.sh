#!/usr/bin/env bash
# Stand-in of Bitwarden's bitwarden.sh, for bwguard's tests (see README.md
# beside this file in bwguard's repository). Arguments: COMMAND [DATA_DIR].
set -e

cat << "EOF"
  ___ _____ _   _  _ ___    ___ _  _
 / __|_   _/_\ | \| |   \  |_ _| \| |
 \__ \ | |/ _ \| .` | |) |  | || .` |
 |___/ |_/_/ \_\_|\_|___/  |___|_|\_|

Open source password management solutions (a stand-in for bwguard's tests)
===================================================
EOF

STANDIN=${STANDIN_DIR:?the stand-in needs STANDIN_DIR}
n=$(( $(grep -c "^$1 " "$STANDIN/calls.log" 2>/dev/null || true) + 1 ))
echo "$1 uid=$(id -u) groups=$(id -G | tr ' ' ',') home=${HOME:-} user=${USER:-} args=$*" >> "$STANDIN/calls.log"
export STANDIN_CALL="$1:$n"
# Another run that tries to get in while this one runs (a scheduled backup):
# its exit code goes to the log.
if [ -n "${STANDIN_BACKUP:-}" ]; then
  if $STANDIN_BACKUP > /dev/null 2>&1; then echo "backup-in-window 0" >> "$STANDIN/calls.log"; else echo "backup-in-window $?" >> "$STANDIN/calls.log"; fi
fi

if [ "$EUID" -eq 0 ]; then
  echo "WARNING: This script is running as the root user!"
  read -r -p "Do you still want to continue? (y/n): " choice || choice=""
  case "$choice" in
    [Yy]|[Yy][Ee][Ss]) echo "Continuing...." ;;
    *) exit 1 ;;
  esac
fi

if [ -f "$STANDIN/faults" ] && grep -qx "$STANDIN_CALL:fail" "$STANDIN/faults"; then
  echo "simulated failure of $STANDIN_CALL" >&2
  exit 1
fi
if [ -f "$STANDIN/faults" ] && grep -qx "$STANDIN_CALL:hang" "$STANDIN/faults"; then
  echo "$STANDIN_CALL hangs"
  sleep 600
fi

DIR="$( cd "$( dirname "${BASH_SOURCE[0]}" )" && pwd )"
SCRIPT_PATH="$DIR/$(basename "$0")"
OUTPUT="$DIR/bwdata"
if [ $# -eq 2 ]; then
  OUTPUT=$2
fi
if docker compose &> /dev/null; then
  dccmd='docker compose'
elif command -v docker-compose &> /dev/null; then
  dccmd='docker-compose'
  echo "docker compose not found, falling back to docker-compose."
else
  echo "Error: neither 'docker compose' nor 'docker-compose' was found. Install Docker Compose." >&2
  exit 1
fi

SCRIPTS_DIR="$OUTPUT/scripts"
COREVERSION="2026.8.0"
WEBVERSION="2026.8.0"
KEYCONNECTORVERSION="2025.11.0"

echo "bitwarden.sh version $COREVERSION"
docker --version
if [[ "$dccmd" == "docker compose" ]]; then $dccmd version; else $dccmd --version; fi
echo ""

downloadSelf() {
  if curl -L -s -S -w "http_code %{http_code}" -o "$SCRIPT_PATH.1" "https://func.bitwarden.com/api/dl/?app=self-host&platform=linux" | grep -q "^http_code 20[0-9]"; then
    mv -f "$SCRIPT_PATH.1" "$SCRIPT_PATH"
    chmod u+x "$SCRIPT_PATH"
  else
    exit_code=$?
    rm -f "$SCRIPT_PATH.1"
    exit $exit_code
  fi
}

downloadRunFile() {
  [ -d "$SCRIPTS_DIR" ] || mkdir "$SCRIPTS_DIR"
  local tmp
  tmp=$(mktemp)
  code=$(curl -s -S -L -w "%{http_code}" -o "$tmp" "https://func.bitwarden.com/api/dl/?app=self-host&platform=linux&variant=run")
  if echo "$code" | grep -q "^20[0-9]"; then
    mv "$tmp" "$SCRIPTS_DIR/run.sh"
    chmod u+x "$SCRIPTS_DIR/run.sh"
  else
    echo "Unable to download run script. Received status code: $code"
    rm -f "$tmp"
    exit 1
  fi
}

checkOutputDirExists() {
  if [ ! -d "$OUTPUT" ]; then
    echo "Cannot find a Bitwarden installation at $OUTPUT."
    exit 1
  fi
}

run() {
  "$SCRIPTS_DIR/run.sh" "$1" "$OUTPUT" "$COREVERSION" "$WEBVERSION" "$KEYCONNECTORVERSION"
}

case $1 in
  "start" | "restart") checkOutputDirExists; run restart ;;
  "update") checkOutputDirExists; downloadRunFile; run update ;;
  "rebuild") checkOutputDirExists; run rebuild ;;
  "updateconf") checkOutputDirExists; run updateconf ;;
  "updatedb") checkOutputDirExists; run updatedb ;;
  "stop") checkOutputDirExists; run stop ;;
  "updateself") downloadSelf && echo "Updated self." && exit ;;
  "help") echo "Available commands: start restart stop update updatedb updateself updateconf rebuild help" ;;
  *) echo "No command found." ;;
esac
