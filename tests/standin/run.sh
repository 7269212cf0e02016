#!/usr/bin/env bash
# Stand-in of Bitwarden's run.sh, for bwguard's tests: it drives the real
# Docker daemon through `docker compose` or `docker-compose` the way the
# real one does (see README.md beside this file). Arguments: COMMAND
# OUTPUT_DIR COREVERSION WEBVERSION KEYCONNECTORVERSION.
set -e

if docker compose &> /dev/null; then
  dccmd='docker compose'
elif command -v docker-compose &> /dev/null; then
  dccmd='docker-compose'
  echo "docker compose not found, falling back to docker-compose."
else
  echo "Error: neither 'docker compose' nor 'docker-compose' was found. Install Docker Compose." >&2
  exit 1
fi

OUTPUT_DIR=${2:-..}
COREVERSION=${3:-latest}
WEBVERSION=${4:-latest}
KEYCONNECTORVERSION=${5:-latest}
ENV_DIR="$OUTPUT_DIR/env"
DOCKER_DIR="$OUTPUT_DIR/docker"
STANDIN=${STANDIN_DIR:?the stand-in needs STANDIN_DIR}

if ! grep -q "^LOCAL_UID=" "$ENV_DIR/uid.env" 2>/dev/null; then
  uid=$(id -u); gid=$(id -g)
  [ "$uid" = 0 ] && uid=65534
  [ "$gid" = 0 ] && gid=65534
  mkdir -p "$ENV_DIR"
  printf 'LOCAL_UID=%s\nLOCAL_GID=%s\n' "$uid" "$gid" > "$ENV_DIR/uid.env"
fi

has_fault() { [ -f "$STANDIN/faults" ] && grep -qx "$1" "$STANDIN/faults"; }

# The registry: a pull succeeds when the registry is up (the image comes
# from the test's local copy when it is not there yet), and fails as an
# unreachable ghcr.io does.
pull() {
  if has_fault registry || has_fault "${STANDIN_CALL:-}:registry"; then
    echo "Error response from daemon: Get \"https://ghcr.io/v2/\": dial tcp: lookup ghcr.io: no such host" >&2
    return 1
  fi
  if ! docker image inspect "$1" > /dev/null 2>&1; then
    docker import --change 'LABEL com.bitwarden.product=bitwarden' "$STANDIN/registry/rootfs.tar" "$1" > /dev/null
  fi
  echo "$1: Pulled"
}

pullSetup() {
  pull "ghcr.io/bitwarden/setup:$COREVERSION"
}

dockerComposeFiles() {
  export COMPOSE_FILE="$DOCKER_DIR/docker-compose.yml"
  export COMPOSE_HTTP_TIMEOUT="300"
}

dockerComposeDown() {
  dockerComposeFiles
  if [ "$($dccmd ps | wc -l)" -gt 2 ]; then
    if has_fault "${STANDIN_CALL:-}:stop-leaves-db"; then
      for c in $($dccmd ps -q); do
        [ "$(docker inspect --format '{{.Name}}' "$c")" = /bitwarden-mssql ] || docker rm -f "$c" > /dev/null
      done
    else
      $dccmd down
    fi
  fi
}

dockerComposePull() {
  dockerComposeFiles
  for image in $(sed -n 's/^ *image: //p' "$DOCKER_DIR/docker-compose.yml"); do
    pull "$image"
  done
}

dockerComposeUp() {
  dockerComposeFiles
  mkdir -p "$OUTPUT_DIR/core/attachments" "$OUTPUT_DIR/logs/mssql" "$OUTPUT_DIR/logs/nginx" \
    "$OUTPUT_DIR/mssql/backups" "$OUTPUT_DIR/mssql/data"
  $dccmd up -d
}

setup() {
  docker run -i --rm --name setup $1 --network ${2:-none} -e STANDIN_CALL="${STANDIN_CALL:-}" \
    -v "$OUTPUT_DIR:/bitwarden" -v "$STANDIN:/standin" --env-file "$ENV_DIR/uid.env" \
    "ghcr.io/bitwarden/setup:$COREVERSION" /app/Setup "${@:3}" -os lin \
    -corev "$COREVERSION" -webv "$WEBVERSION" -keyconnectorv "$KEYCONNECTORVERSION"
}

update() {
  if [ "$1" == "withpull" ]; then
    pullSetup
  fi
  setup "" none -update 1
}

printEnvironment() {
  pullSetup
  setup "" none -printenv 1
}

restart() {
  dockerComposeDown
  dockerComposePull
  dockerComposeUp
  printEnvironment
}

dockerPrune() {
  docker image prune --all --force --filter="label=com.bitwarden.product=bitwarden"
}

updateDatabase() {
  pullSetup
  dockerComposeFiles
  local network=none
  if grep -q 'Data Source=tcp:mssql,1433' "$ENV_DIR/global.override.env"; then
    network="container:$($dccmd ps -q mssql)"
  fi
  setup "" "$network" -update 1 -db 1
  echo "Database update complete"
}

updatebw() {
  BUILT_IN_MS_SQL_ENABLED=$(grep 'enable_built_in_ms_sql:' "$OUTPUT_DIR/config.yml" | awk '{ print $2 }')
  CORE_ID=$($dccmd ps -q admin)
  WEB_ID=$($dccmd ps -q web)
  if docker inspect --format='{{.Config.Image}}:' $CORE_ID | grep -F ":$COREVERSION:" | grep -q ":[0-9.]*:$" &&
    docker inspect --format='{{.Config.Image}}:' $WEB_ID | grep -F ":$WEBVERSION:" | grep -q ":[0-9.]*:$"; then
    echo "Update not needed"
    exit
  fi
  dockerComposeDown
  update withpull
  restart
  dockerPrune
  if [ "$BUILT_IN_MS_SQL_ENABLED" != false ]; then
    echo "Pausing ${STANDIN_DB_PAUSE:-1} seconds for database to come online. Please wait..."
    sleep "${STANDIN_DB_PAUSE:-1}"
  fi
}

case $1 in
  "start" | "restart") restart ;;
  "stop") dockerComposeDown ;;
  "updateconf") dockerComposeDown; update withpull ;;
  "updatedb") updateDatabase ;;
  "update") dockerComposeFiles; updatebw; updateDatabase ;;
  "rebuild") dockerComposeDown; update nopull ;;
esac
