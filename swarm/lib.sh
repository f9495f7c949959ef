# Shared helpers for Jovial's swarm scripts (sourced, not executed).
# Everything here is idempotent: running it again on a prepared machine is quick and safe.

JOVIAL_STACK=${JOVIAL_STACK:-jovial}
JOVIAL_STATE_DIR=${JOVIAL_STATE_DIR:-/var/lib/jovial}
JOVIAL_FS_ROOT=${JOVIAL_FS_ROOT:-$JOVIAL_STATE_DIR/lustre}
JOVIAL_FS_LABEL=${JOVIAL_FS_LABEL:-jovial.fs}
JOVIAL_FS_LABEL_VALUE=${JOVIAL_FS_LABEL_VALUE:-lustre}
JOVIAL_TAG=${JOVIAL_TAG:-dev}
JOVIAL_HTTP_PORT=${JOVIAL_HTTP_PORT:-8000}
JOVIAL_REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DOCKERD_LOG=${DOCKERD_LOG:-/var/log/jovial-dockerd.log}

say() { printf '\033[1m[jovial]\033[0m %s\n' "$*" >&2; }
die() { printf '\033[1;31m[jovial] error:\033[0m %s\n' "$*" >&2; exit 1; }

apt_install() {
    # apt_install PKG...: install Debian packages that are missing (needs root).
    local missing=()
    for pkg in "$@"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    [ "$(id -u)" -eq 0 ] || die "need root to install: ${missing[*]}"
    say "installing ${missing[*]} from Debian's packages"
    if [ ! -f /var/lib/jovial/.apt-updated ] || [ -n "$(find /var/lib/jovial/.apt-updated -mmin +720 2>/dev/null)" ]; then
        apt-get update -qq || die "apt-get update failed"
        mkdir -p /var/lib/jovial && touch /var/lib/jovial/.apt-updated
    fi
    echo 'slapd slapd/no_configuration boolean true' | debconf-set-selections
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null \
        || die "apt-get install ${missing[*]} failed"
}

ensure_engine() {
    # A Docker engine that answers: use the one running, else install Debian's and start it.
    if timeout 10 docker info >/dev/null 2>&1; then return 0; fi
    command -v dockerd >/dev/null 2>&1 || apt_install docker.io
    command -v docker >/dev/null 2>&1 || die "no docker client after installing docker.io"
    say "starting dockerd (log: $DOCKERD_LOG)"
    # DOCKER_SERVICE_PREFER_OFFLINE_IMAGE: do not ask a registry for images that are already here.
    DOCKER_SERVICE_PREFER_OFFLINE_IMAGE=1 setsid dockerd >"$DOCKERD_LOG" 2>&1 < /dev/null &
    for _ in $(seq 1 120); do
        timeout 5 docker info >/dev/null 2>&1 && return 0
        sleep 0.5
    done
    tail -20 "$DOCKERD_LOG" >&2
    die "the Docker engine did not answer within 60 s"
}

ensure_swarm() {
    # A single-node swarm if the engine is in none; this node labelled as mounting the shared FS.
    local state
    state=$(docker info --format '{{.Swarm.LocalNodeState}}')
    if [ "$state" != "active" ]; then
        say "creating a single-node swarm"
        docker swarm init --advertise-addr 127.0.0.1 >/dev/null || die "docker swarm init failed"
    fi
    [ "$(docker info --format '{{.Swarm.ControlAvailable}}')" = "true" ] \
        || die "this node is a swarm worker: run Jovial's commands on a manager"
    local node
    node=$(docker info --format '{{.Swarm.NodeID}}')
    docker node update --label-add "$JOVIAL_FS_LABEL=$JOVIAL_FS_LABEL_VALUE" "$node" >/dev/null \
        || die "could not label node $node"
}

ensure_secret() {
    # ensure_secret NAME: a Docker secret NAME holding random hex, kept (0600) under $JOVIAL_STATE_DIR/secrets
    # so that the up command can print the demo login and the tests can read it. Never in the repo.
    local name=$1 file="$JOVIAL_STATE_DIR/secrets/$1"
    install -d -m 0700 "$JOVIAL_STATE_DIR/secrets"
    [ -s "$file" ] || (umask 077; python3 -c 'import secrets; print(secrets.token_hex(32))' > "$file")
    if ! docker secret inspect "$name" >/dev/null 2>&1; then
        docker secret create --label jovial.managed=true "$name" "$file" >/dev/null || die "could not create secret $name"
    fi
}

image_id() {
    # image_id NAME: the local image's ID; services refer to images by ID so Swarm never asks a registry.
    docker image inspect -f '{{.Id}}' "jovial/$1:$JOVIAL_TAG" 2>/dev/null || die "image jovial/$1:$JOVIAL_TAG is missing: run swarm/build-images"
}

wait_for_hub() {
    # wait_for_hub URL SECONDS: until the hub answers its health check through the proxy.
    python3 - "$1" "$2" <<'PY' || die "the hub did not answer at $1 within $2 s (docker service ps ${JOVIAL_STACK}_hub --no-trunc; docker service logs ${JOVIAL_STACK}_hub)"
import sys, time, urllib.request
url, limit = sys.argv[1] + "hub/health", float(sys.argv[2])
deadline = time.monotonic() + limit
while time.monotonic() < deadline:
    try:
        if urllib.request.urlopen(url, timeout=2).status == 200:
            sys.exit(0)
    except Exception:
        pass
    time.sleep(0.5)
sys.exit(1)
PY
}

wait_for_rollout() {
    # wait_for_rollout SERVICE...: until each service runs a task of its current spec (image,
    # configs, env, mounts): `docker stack deploy` returns before updated tasks replace the old ones.
    local svc fields want deadline=$((SECONDS + 180))
    fields='{{.Image}} {{json .Configs}} {{json .Env}} {{json .Mounts}} {{json .Secrets}}'
    for svc in "$@"; do
        want=$(docker service inspect -f "{{with .Spec.TaskTemplate.ContainerSpec}}$fields{{end}}" "$svc")
        until docker service ps -q --filter desired-state=running "$svc" \
                | xargs -r docker inspect -f "{{.Status.State}} {{with .Spec.ContainerSpec}}$fields{{end}}" \
                | grep -qxF "running $want"; do
            [ $SECONDS -lt $deadline ] || die "$svc did not roll out within 180 s (docker service ps $svc --no-trunc)"
            sleep 0.5
        done
    done
}

stack_exists() { [ -n "$(docker stack ls --format '{{.Name}}' 2>/dev/null | grep -x "$JOVIAL_STACK")" ]; }
