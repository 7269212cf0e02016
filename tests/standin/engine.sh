#!/bin/sh
# Stand-in of SQL Server in Bitwarden's mssql image, for bwguard's tests:
# the entrypoint chowns its mounts as root, then the engine runs as
# LOCAL_UID, holds the database files open, writes log pages while it runs,
# and closes them on SIGTERM (docker stop). See README.md beside this file.
set -eu
D=/var/opt/mssql/data
if [ "$(id -u)" = 0 ]; then
  chown -R "$LOCAL_UID:$LOCAL_GID" "$D" /etc/bitwarden/mssql/backups /var/opt/mssql/log
  grep -q '^engine:' /etc/group || echo "engine:x:$LOCAL_GID:" >> /etc/group
  grep -q '^engine:' /etc/passwd || echo "engine:x:$LOCAL_UID:$LOCAL_GID:engine:/tmp:/bin/sh" >> /etc/passwd
  exec su -s /bin/sh engine -c "exec /bin/sh $0"
fi
# A fault for the tests: told to, the engine does not come up.
if [ -e /var/opt/mssql/log/fail-start ]; then
  echo "engine: cannot start (the test said so)" >&2
  exit 1
fi
# The first start in an empty data directory (a new Docker volume): SQL
# Server creates its system databases, Bitwarden's admin the vault.
if [ -z "$(ls -A "$D")" ]; then
  for f in vault.mdf vault_log.ldf master.mdf mastlog.ldf; do
    dd if=/dev/zero of="$D/$f" bs=8192 count=4 2>/dev/null
    printf 'NEW %s' "$f" | dd of="$D/$f" conv=notrunc 2>/dev/null
  done
fi
for f in vault.mdf vault_log.ldf master.mdf mastlog.ldf; do
  [ -f "$D/$f" ] || { echo "engine: $D/$f is missing" >&2; exit 1; }
done
exec 3<>"$D/vault.mdf" 4<>"$D/vault_log.ldf" 5<>"$D/master.mdf" 6<>"$D/mastlog.ldf"
echo "SQL Server is now ready for client connections." >> /var/opt/mssql/log/errorlog
trap 'echo "SQL Server is terminating in response to a stop request." >> /var/opt/mssql/log/errorlog; exit 0' TERM INT
n=0
while :; do
  # A log page, as transactions commit.
  printf 'LOG %08d' "$n" | dd of="$D/vault_log.ldf" bs=8192 seek=$(( n % 4 )) conv=notrunc 2>/dev/null
  n=$(( n + 1 ))
  sleep 0.2 &
  wait $! || true
done
