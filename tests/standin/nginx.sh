#!/bin/sh
# Stand-in of Bitwarden's nginx for bwguard's tests. Every container runs
# with network_mode: none, so an upstream "resolves" when docker-compose.yml
# has its service; one that does not makes nginx exit as the real one does,
# and `restart: always` makes it crash-loop. See README.md beside this file.
conf=/etc/bitwarden/nginx/default.conf
compose=/etc/bitwarden/docker/docker-compose.yml
chown -R "$LOCAL_UID:$LOCAL_GID" /etc/bitwarden/nginx /var/log/nginx
for up in $(sed -n 's#.*proxy_pass http://\([a-z-]*:[0-9]*\).*#\1#p' "$conf" | sort -u); do
  name=${up%%:*}
  if ! grep -q "^  $name:\$" "$compose"; then
    msg="nginx: [emerg] host not found in upstream \"$up\" in $conf"
    echo "$msg" >&2
    echo "$msg" >> /var/log/nginx/error.log
    exit 1
  fi
done
trap 'exit 0' TERM INT
while :; do
  sleep 1 &
  wait $! || true
done
