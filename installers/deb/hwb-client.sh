#!/bin/sh
# /usr/bin/hwb-client: run the client as the service user, so that files it writes in
# /var/lib/hwb-client and /var/log/hwb-client keep the owner the daemon needs (root runs it through
# runuser).
set -e
BIN=/usr/lib/hwb-client/hwb-client
if [ "$(id -u)" = 0 ]; then
    exec runuser -u hwb-client -- "$BIN" "$@"
fi
exec "$BIN" "$@"
