#!/usr/bin/env bash
# Install edgeslm as a systemd service: /opt/edgeslm (venv), user 'edgeslm', /etc/edgeslm/edgeslm.toml,
# /etc/systemd/system/edgeslm.service. Safe to re-run: an existing config is never overwritten.
#
#   sudo deploy/install.sh                      from this source tree, wheels from PyPI
#   sudo ./install.sh --offline                 inside an unpacked offline bundle: no network at all
#   deploy/install.sh --root /tmp/r --no-user   into a staging root (tests, image builds): no useradd/systemctl
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=/ OFFLINE=0 MAKE_USER=1 START=0 PY=${PYTHON:-python3}
while [ $# -gt 0 ]; do
  case "$1" in
    --root) ROOT=$2; shift 2 ;;
    --offline) OFFLINE=1; shift ;;
    --no-user) MAKE_USER=0; shift ;;
    --start) START=1; shift ;;
    -h|--help) sed -n '2,8p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "install.sh: unknown option $1" >&2; exit 64 ;;
  esac
done
# Source tree (deploy/ inside the repo) or bundle (install.sh at the top, wheels/ beside it).
if [ -f "$HERE/../pyproject.toml" ]; then SRC=$(cd "$HERE/.." && pwd); else SRC=$HERE; fi
R=${ROOT%/}
PREFIX=$R/opt/edgeslm ETC=$R/etc/edgeslm STATE=$R/var/lib/edgeslm UNITDIR=$R/etc/systemd/system

if [ "$ROOT" = / ] && [ "$(id -u)" != 0 ]; then echo "install.sh: run as root (or use --root DIR)" >&2; exit 77; fi
"$PY" -c 'import sys; sys.exit(sys.version_info < (3, 11))' || { echo "install.sh: needs Python >= 3.11" >&2; exit 69; }

if [ "$MAKE_USER" = 1 ] && [ "$ROOT" = / ] && ! id edgeslm >/dev/null 2>&1; then
  useradd --system --home-dir /var/lib/edgeslm --no-create-home --shell /usr/sbin/nologin edgeslm
fi

echo ">> virtualenv in $PREFIX/venv"
mkdir -p "$PREFIX" "$ETC" "$STATE" "$UNITDIR"
"$PY" -m venv "$PREFIX/venv"
if [ "$OFFLINE" = 1 ]; then
  [ -d "$SRC/wheels" ] || { echo "install.sh: --offline needs wheels/ beside install.sh (an offline bundle)" >&2; exit 66; }
  "$PREFIX/venv/bin/pip" install -q --no-index --find-links "$SRC/wheels" edgeslm
else
  "$PREFIX/venv/bin/pip" install -q --upgrade pip
  "$PREFIX/venv/bin/pip" install -q "$SRC"
fi
install -m 0644 "$SRC/README.md" "$PREFIX/README.md"
install -m 0644 "$SRC/config/edgeslm.toml" "$PREFIX/edgeslm.toml.example"

if [ ! -f "$ETC/edgeslm.toml" ]; then
  # A fresh install gets the commented example with the paths of a service install.
  sed -e 's|^# model_dir = .*|# model_dir = "/var/lib/edgeslm/models/phi3-mini-4k-instruct-cpu-int4"|' \
      "$SRC/config/edgeslm.toml" > "$ETC/edgeslm.toml"
  chmod 0640 "$ETC/edgeslm.toml"
  echo ">> wrote $ETC/edgeslm.toml: edit [mqtt] and [[subscriptions]], then: systemctl reload edgeslm"
else
  echo ">> kept existing $ETC/edgeslm.toml (new example: $PREFIX/edgeslm.toml.example)"
fi
# LoadCredential= needs the file to exist; an empty one means "no password".
[ -f "$ETC/mqtt_password" ] || install -m 0600 /dev/null "$ETC/mqtt_password"
if [ -d "$SRC/model" ]; then
  echo ">> installing the bundled model"
  mkdir -p "$STATE/models"
  cp -a "$SRC/model/." "$STATE/models/"
fi
install -m 0644 "$SRC/systemd/edgeslm.service" "$UNITDIR/edgeslm.service"
if [ "$ROOT" = / ]; then
  chown -R root:edgeslm "$ETC" && chmod 0750 "$ETC"
  chown -R edgeslm:edgeslm "$STATE"
  if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
    systemctl daemon-reload
    systemctl enable edgeslm.service >/dev/null
    [ "$START" = 1 ] && systemctl restart edgeslm.service
  fi
fi
"$PREFIX/venv/bin/edgeslm" check-config "$ETC/edgeslm.toml" >/dev/null && echo ">> config OK" \
  || echo ">> config needs attention: $PREFIX/venv/bin/edgeslm check-config $ETC/edgeslm.toml"
echo ">> installed edgeslm $("$PREFIX/venv/bin/edgeslm" --version | cut -d' ' -f2) in $PREFIX"
echo "   start: systemctl start edgeslm    logs: journalctl -u edgeslm -f    status: systemctl status edgeslm"
