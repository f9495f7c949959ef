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
    # Refresh the package lists at most every 12 hours (marker file in the state directory).
    local marker="$JOVIAL_STATE_DIR/.apt-updated"
    if [ ! -f "$marker" ] || [ -n "$(find "$marker" -mmin +720 2>/dev/null)" ]; then
        apt-get update -qq || die "apt-get update failed"
        mkdir -p "$JOVIAL_STATE_DIR" && touch "$marker"
    fi
    echo 'slapd slapd/no_configuration boolean true' | debconf-set-selections
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null \
        || die "apt-get install ${missing[*]} failed"
}

ensure_engine() {
    # A Docker engine that answers: use the one running, else install Debian's and start it.
    if timeout 10 docker info >/dev/null 2>&1; then return 0; fi
    if ! command -v dockerd >/dev/null 2>&1; then
        apt_install docker.io
        command -v docker >/dev/null 2>&1 || die "no docker client after installing docker.io"
        # On a systemd host the package starts its own dockerd: use that one, never a second.
        if timeout 10 docker info >/dev/null 2>&1; then return 0; fi
    fi
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
    local name=$1 file="$JOVIAL_STATE_DIR/secrets/$1" users
    install -d -m 0700 "$JOVIAL_STATE_DIR/secrets"
    if [ ! -s "$file" ] && docker secret inspect "$name" >/dev/null 2>&1; then
        # The secret is in the swarm but its local copy is gone (state directory deleted or moved).
        # Docker never reveals a secret's value, so the copy cannot be restored: replace the secret
        # with a new one, which Docker only allows while no service uses it.
        users=$(secret_users "$name")
        [ -z "$users" ] || die "secret $name exists but its copy $file is gone, and services use it (${users% }): run swarm/down first (it removes them and the secret), then swarm/up"
        say "secret $name has no local copy in $file: replacing it with a new one"
        docker secret rm "$name" >/dev/null || die "could not remove secret $name (in use? run swarm/down first)"
    fi
    [ -s "$file" ] || (umask 077; python3 -c 'import secrets; print(secrets.token_hex(32))' > "$file")
    if ! docker secret inspect "$name" >/dev/null 2>&1; then
        docker secret create --label jovial.managed=true "$name" "$file" >/dev/null || die "could not create secret $name"
    fi
}

secret_users() {
    # secret_users NAME: the services that use the Docker secret NAME, space-separated (none: empty).
    local svc used
    for svc in $(docker service ls --format '{{.Name}}'); do
        used=$(docker service inspect -f '{{range .Spec.TaskTemplate.ContainerSpec.Secrets}}{{println .SecretName}}{{end}}' "$svc" 2>/dev/null) || continue
        if grep -qxF "$1" <<<"$used"; then printf '%s ' "$svc"; fi
    done
    return 0
}

image_id() {
    # image_id NAME: the local image's ID; services refer to images by ID so Swarm never asks a registry.
    # JOVIAL_IMAGE_ENGINE (a DOCKER_HOST value): the engine to look in instead of DOCKER_HOST's
    # (swarm/cluster deploys onto its own engines the images it copied from the host's).
    docker ${JOVIAL_IMAGE_ENGINE:+-H "$JOVIAL_IMAGE_ENGINE"} image inspect -f '{{.Id}}' "jovial/$1:$JOVIAL_TAG" 2>/dev/null || die "image jovial/$1:$JOVIAL_TAG is missing: run swarm/build-images"
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
    local svc fields want states deadline=$((SECONDS + 180))
    fields='{{.Image}} {{json .Configs}} {{json .Env}} {{json .Mounts}} {{json .Secrets}}'
    for svc in "$@"; do
        want=$(docker service inspect -f "{{with .Spec.TaskTemplate.ContainerSpec}}$fields{{end}}" "$svc")
        while :; do
            # The tasks' states first, then grep: in `… | grep -q` under pipefail, grep leaving at
            # the first match can fail the writers with SIGPIPE. A task may vanish between the two
            # docker calls (an error, ignored: the next round sees the new list).
            states=$(docker service ps -q --filter desired-state=running "$svc" \
                | xargs -r docker inspect -f "{{.Status.State}} {{with .Spec.ContainerSpec}}$fields{{end}}" 2>/dev/null) || true
            grep -qxF "running $want" <<<"$states" && break
            [ $SECONDS -lt $deadline ] || die "$svc did not roll out within 180 s (docker service ps $svc --no-trunc)"
            sleep 0.5
        done
    done
}

deploy_stack() {
    # deploy_stack STACK COMPOSE_FILE...: deploy the locally built images as STACK (files relative
    # to the repository) and wait until every service of it runs its new spec. The environment
    # (JOVIAL_NETWORK, JOVIAL_HTTP_PORT, ...) fills in the files' variables.
    local stack=$1; shift
    local files=() file svc
    for file in "$@"; do files+=(-c "$file"); done
    export JOVIAL_FS_ROOT JOVIAL_FS_LABEL JOVIAL_FS_LABEL_VALUE JOVIAL_HTTP_PORT
    JOVIAL_HUB_IMAGE=$(image_id hub)
    JOVIAL_PROXY_IMAGE=$(image_id proxy)
    JOVIAL_DOCKER_PROXY_IMAGE=$(image_id docker-proxy)
    JOVIAL_LDAP_IMAGE=$(image_id ldap)
    JOVIAL_SINGLEUSER_IMAGE=$(image_id singleuser)
    # JOVIAL_OFFER_ASTRO=0: the hub does not offer the astronomy image (swarm/cluster's nodes lack it).
    if [ "${JOVIAL_OFFER_ASTRO:-1}" = 0 ]; then JOVIAL_ASTRO_IMAGE=""; else JOVIAL_ASTRO_IMAGE=$(image_id astro); fi
    JOVIAL_POSTGRES_IMAGE=$(image_id postgres)
    # The dev overlay's PostgreSQL keeps its data here, on the shared filesystem (a stack of its own
    # needs a directory of its own: two servers on one data directory would destroy it).
    JOVIAL_DB_DATA=${JOVIAL_DB_DATA:-$JOVIAL_FS_ROOT/.jovial/postgres}
    JOVIAL_DB_PLACEMENT=${JOVIAL_DB_PLACEMENT:-node.role == manager}
    install -d -m 0700 "$JOVIAL_DB_DATA"
    JOVIAL_HUB_CONFIG_HASH=$(sha256sum "$JOVIAL_REPO/stacks/jupyterhub_config.py" | cut -c1-16)
    export JOVIAL_HUB_IMAGE JOVIAL_PROXY_IMAGE JOVIAL_DOCKER_PROXY_IMAGE JOVIAL_LDAP_IMAGE JOVIAL_SINGLEUSER_IMAGE JOVIAL_ASTRO_IMAGE
    export JOVIAL_POSTGRES_IMAGE JOVIAL_DB_DATA JOVIAL_DB_PLACEMENT
    export JOVIAL_HUB_CONFIG_HASH
    say "deploying stack $stack"
    (cd "$JOVIAL_REPO" && docker stack deploy --resolve-image never "${files[@]}" "$stack" >/dev/null) \
        || die "docker stack deploy of $stack failed"
    for svc in $(docker stack services --format '{{.Name}}' "$stack"); do
        # A service deployed stopped (the hub while its database moves) has nothing to roll out.
        [ "$(docker service inspect -f '{{with .Spec.Mode.Replicated}}{{.Replicas}}{{end}}' "$svc")" = 0 ] && continue
        wait_for_rollout "$svc"
    done
}

stack_exists() { [ -n "$(docker stack ls --format '{{.Name}}' 2>/dev/null | grep -x "$JOVIAL_STACK")" ]; }

ensure_dev_storage() {
    # The development site's shared data on the stand-in filesystem: the read-only data collection
    # `demo` (<root>/data/demo with one small FITS image, written once) and the project directory of
    # the demo group astro (gid 20001 in the dev LDAP: alice and bob), owned root:astro, mode 2770
    # (members write, new files get the group; nobody else enters).
    install -d -m 0755 "$JOVIAL_FS_ROOT/data" "$JOVIAL_FS_ROOT/data/demo" "$JOVIAL_FS_ROOT/projects"
    install -d -o 0 -g 20001 -m 2770 "$JOVIAL_FS_ROOT/projects/astro"
    [ -s "$JOVIAL_FS_ROOT/data/demo/m31-demo.fits" ] && return 0
    python3 - "$JOVIAL_FS_ROOT/data/demo/m31-demo.fits" <<'PY' || die "could not write the demo FITS file"
"""A 64x64 float32 FITS image (a Gaussian source on a flat background, TAN WCS near M31), stdlib only."""
import math, os, struct, sys

def card(key, value, comment=""):
    text = f"'{value:<8}'" if isinstance(value, str) else ("T" if value is True else repr(value)).rjust(20)
    return f"{key:<8}= {text} / {comment}"[:80].ljust(80)

n = 64
cards = [card("SIMPLE", True, "FITS standard"), card("BITPIX", -32, "IEEE float"), card("NAXIS", 2),
         card("NAXIS1", n), card("NAXIS2", n), card("OBJECT", "M31 demo", "synthetic"), card("BUNIT", "adu"),
         card("CTYPE1", "RA---TAN"), card("CRVAL1", 10.6847), card("CRPIX1", 32.5), card("CDELT1", -0.0002778),
         card("CTYPE2", "DEC--TAN"), card("CRVAL2", 41.2690), card("CRPIX2", 32.5), card("CDELT2", 0.0002778),
         "END".ljust(80)]
header = "".join(cards).encode("ascii")
header += b" " * (-len(header) % 2880)
pixels = [100.0 + 1000.0 * math.exp(-((x - 31.5) ** 2 + (y - 31.5) ** 2) / 50.0) for y in range(n) for x in range(n)]
data = struct.pack(f">{n * n}f", *pixels)
data += b"\0" * (-len(data) % 2880)
tmp = sys.argv[1] + ".tmp"
with open(tmp, "wb") as f:
    f.write(header + data)
os.chmod(tmp, 0o644)
os.replace(tmp, sys.argv[1])
PY
}
