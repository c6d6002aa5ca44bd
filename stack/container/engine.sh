#!/usr/bin/env bash
# A Docker-API container engine for machines without Docker: podman behind a Docker socket,
# and the project's image built fully offline.
#
#   stack/container/engine.sh up          install podman/runc/debootstrap if missing; start the API
#                                         service; print the DOCKER_HOST to use
#   stack/container/engine.sh base-image  the offline stand-in for prefecthq/prefect:2.20.26-python3.11
#   stack/container/engine.sh image [TAG] build ./Dockerfile unchanged (default dezoomcamp/prefect:zoom),
#                                         unless an image of the same content has that tag
#   stack/container/engine.sh down        stop the API service (by PID); images stay
#
# State (socket, PID, logs) lives in $STACK_DIR/podman; the debootstrap tarball and the
# wheelhouse are cached in $NYC_TAXI_CACHE (default ~/.cache/nyctaxi-prefect).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
stack=${STACK_DIR:-$repo/.stack}
state=$stack/podman
cache=${NYC_TAXI_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/nyctaxi-prefect}
python=$repo/.venv/bin/python
export CONTAINERS_CONF=$here/containers.conf
export DOCKER_HOST=unix://$state/podman.sock
base_tag=docker.io/prefecthq/prefect:2.20.26-python3.11
debian_tag=localhost/nyctaxi/debian-python:bookworm
mkdir -p "$state" "$cache"

log() { echo "[engine] $*" >&2; }

install_packages() {
  local need=()
  for p in podman runc debootstrap; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || need+=("$p")
  done
  if ((${#need[@]})); then
    log "apt-get install ${need[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >"$state/apt.log" 2>&1 \
      || { tail -20 "$state/apt.log" >&2; exit 1; }
  fi
}

up() {
  install_packages
  local pidfile=$state/service.pid
  if [[ -f $pidfile ]] && kill -0 "$(cat "$pidfile")" 2>/dev/null && docker version >/dev/null 2>&1; then
    log "podman API already running (PID $(cat "$pidfile"))"
  else
    rm -f "$state/podman.sock"
    # setsid: its own session, so it outlives this shell and is stopped by PID.
    setsid podman system service --time=0 "$DOCKER_HOST" >"$state/service.log" 2>&1 </dev/null &
    echo $! >"$pidfile"
    for _ in $(seq 1 60); do docker version >/dev/null 2>&1 && break; sleep 0.5; done
    docker version >/dev/null 2>&1 || { log "the API did not come up:"; tail -20 "$state/service.log" >&2; exit 1; }
    log "podman API started (PID $(cat "$pidfile"))"
  fi
  echo "export DOCKER_HOST=$DOCKER_HOST CONTAINERS_CONF=$CONTAINERS_CONF"
}

down() {
  local pidfile=$state/service.pid
  [[ -f $pidfile ]] || { log "not running"; return; }
  local pid; pid=$(cat "$pidfile")
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid"
    for _ in $(seq 1 20); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid"
    log "podman API stopped (PID $pid)"
  fi
  rm -f "$pidfile" "$state/podman.sock"
}

rootfs() {
  local tar=$cache/rootfs-bookworm.tar
  [[ -s $tar ]] && return
  # debootstrap from the mirror apt uses: the only one this machine reaches.
  local mirror
  mirror=$(awk '/^URIs:/{print $2}' /etc/apt/sources.list.d/*.sources 2>/dev/null | grep -v security | head -1 || true)
  [[ -n $mirror ]] || mirror=$(awk '/^deb /{print $2; exit}' /etc/apt/sources.list 2>/dev/null || true)
  mirror=${mirror:-http://deb.debian.org/debian}
  local dir=$cache/rootfs.tmp
  rm -rf "$dir"; mkdir -p "$dir"
  log "debootstrap bookworm from $mirror (about a minute)"
  debootstrap --variant=minbase --include=python3,python3-venv,python3-pip,ca-certificates,tini \
    bookworm "$dir" "$mirror" >"$state/debootstrap.log" 2>&1 || { tail -20 "$state/debootstrap.log" >&2; exit 1; }
  chroot "$dir" apt-get clean
  rm -rf "$dir"/var/lib/apt/lists/* "$dir"/var/cache/apt/*.bin
  tar --numeric-owner -C "$dir" -cf "$tar.part" . && mv "$tar.part" "$tar"
  rm -rf "$dir"
}

wheels() {
  # Every wheel the image needs, at the exact versions of the project's venv.
  local constraints=$state/constraints.txt requirements=$state/image-requirements.txt
  "$python" -m pip freeze --all 2>/dev/null | grep -E '^[A-Za-z0-9_.-]+==' >"$constraints"
  { echo "prefect==2.20.26"; cat "$repo/docker-requirements.txt"; grep -i '^pip==' "$constraints"; } >"$requirements"
  wheel_key=$(cat "$constraints" "$requirements" | sha256sum | cut -c1-16)
  wheelhouse=$cache/wheels-$wheel_key
  # The stand-in base is rebuilt when its wheels or its own files change.
  base_key=$(cat "$constraints" "$requirements" "$here/base.Containerfile" "$here/entrypoint.sh" | sha256sum | cut -c1-16)
  [[ -f $wheelhouse/.complete ]] && return
  rm -rf "$wheelhouse"; mkdir -p "$wheelhouse"
  log "building the wheelhouse (about 40 s)"
  "$python" -m pip wheel -q -w "$wheelhouse" -c "$constraints" -r "$requirements" >"$state/wheels.log" 2>&1 \
    || { tail -30 "$state/wheels.log" >&2; exit 1; }
  touch "$wheelhouse/.complete"
}

base_image() {
  rootfs
  wheels
  if ! podman image exists "$debian_tag"; then
    podman import --change 'CMD ["/bin/bash"]' "$cache/rootfs-bookworm.tar" "$debian_tag" >/dev/null
  fi
  local ctx=$state/base-context
  rm -rf "$ctx"; mkdir -p "$ctx"
  cp -a "$wheelhouse" "$ctx/wheels"; rm -f "$ctx/wheels/.complete"
  printf '[global]\nno-index = true\nfind-links = /wheels\ndisable-pip-version-check = true\n' >"$ctx/pip.conf"
  cp "$here/entrypoint.sh" "$here/base.Containerfile" "$ctx/"
  cp "$repo/.venv/bin/uv" "$ctx/uv"  # installs the wheels in seconds (pip: about a minute)
  log "building $base_tag"
  podman build --pull=never --network host --label "nyctaxi.base=$base_key" -t "$base_tag" \
    -f "$ctx/base.Containerfile" "$ctx" \
    >"$state/base-build.log" 2>&1 || { tail -30 "$state/base-build.log" >&2; exit 1; }
  rm -rf "$ctx"
}

content_key() {
  # What the image is made of: the stand-in base, the Dockerfile and what it copies (its
  # requirements, pyproject.toml, flows/).
  { echo "$base_key"
    (cd "$repo" && find Dockerfile docker-requirements.txt pyproject.toml flows -type f ! -name '*.pyc' \
       ! -path '*/__pycache__/*' -print0 | sort -z | xargs -0 sha256sum)
  } | sha256sum | cut -c1-16
}

image() {
  local tag=${1:-dezoomcamp/prefect:zoom}
  # One build at a time on this machine (CI starts one early; a test may ask for the same image):
  # the second waits, then finds the image built.
  exec 9>"$cache/build.lock"
  flock 9
  # The stand-in base image holds the wheels of docker-requirements.txt: rebuilt when they change.
  wheels
  local have; have=$(podman image inspect --format '{{ index .Labels "nyctaxi.base" }}' "$base_tag" 2>/dev/null || true)
  [[ $have == "$base_key" ]] || base_image
  # Built once per content: an image with the same content key is the same image.
  local key; key=$(content_key)
  have=$(podman image inspect --format '{{ index .Labels "nyctaxi.content" }}' "$tag" 2>/dev/null || true)
  if [[ $have == "$key" ]]; then
    log "$tag is up to date (content $key)"
    return
  fi
  log "building $tag from $repo/Dockerfile"
  # .dockerignore keeps keys, .venv, data/ and .stack/ out of the context.
  podman build --pull=never --network host --label "nyctaxi.content=$key" -t "$tag" -f "$repo/Dockerfile" "$repo" \
    >"$state/image-build.log" 2>&1 || { tail -30 "$state/image-build.log" >&2; exit 1; }
  log "built $tag (content $key)"
}

case ${1:-} in
  up) up ;;
  down) down ;;
  base-image) base_image ;;
  image) shift; image "$@" ;;
  *) sed -n '2,14p' "$0" >&2; exit 2 ;;
esac
