#!/usr/bin/env bash
# Turns a fresh Raspberry Pi OS (Bookworm or newer) into a Kaikukortti kiosk.
# Idempotent: running it again upgrades the package and keeps the operator's
# config. See docs/deploy.md, or run with --help.
set -euo pipefail

REPO_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
readonly REPO_DIR
readonly APT_PACKAGES=(
    python3-picamera2 # picamera2 + libcamera, only packaged by Raspberry Pi OS
    python3-venv
    python3-lgpio # gpiozero's pin backend on Bookworm (Pi 5 included)
    python3-evdev # keyboard-mode USB barcode scanners
    libzbar0
    systemd-timesyncd
)
readonly VENV=/opt/kiosk/venv
readonly CONFIG=/etc/kiosk/kiosk.toml
readonly STATE_DIR=/var/lib/kiosk
readonly UNIT_DIR=/etc/systemd/system
readonly UNITS=(kiosk.service kiosk-retry.timer)
readonly EXIT_UNSUPPORTED=2

dry_run=false
root=""
enroll_code=""
api_url=""
overlay_root=false
overlay_state_dir=/mnt/kiosk-state
wheel=""

usage() {
    cat <<EOF
Usage: sudo $0 [options]

Installs the Kaikukortti kiosk on this Raspberry Pi: apt packages, the kiosk
user, ${VENV}, ${CONFIG} (an edited one is kept), the systemd units, and
time sync. Safe to run again, e.g. after a git pull to upgrade.

Options:
  --enroll CODE --api URL  enroll the device with the card network's API
  --overlay-root           run with a read-only overlay root; keep the state
                           on a writable partition (see --state-dir)
  --state-dir DIR          mounted writable partition for the state
                           (default ${overlay_state_dir}; with --overlay-root)
  --wheel FILE             install this wheel instead of the checkout (offline)
  --dry-run                print every step, change nothing
  --root DIR               install the files into DIR, a throwaway tree for
                           tests; apt, users and services are skipped
  -h, --help               this text
EOF
}

die() {
    echo "install.sh: $*" >&2
    exit 1
}

unsupported() {
    echo "install.sh: unsupported platform: $*" >&2
    echo "The kiosk needs Raspberry Pi OS (or Debian) Bookworm or newer on a Raspberry Pi (aarch64 or armhf)." >&2
    exit "$EXIT_UNSUPPORTED"
}

parse_args() {
    while (($#)); do
        case "$1" in
        --enroll) enroll_code="${2:?--enroll needs a CODE}" && shift ;;
        --api) api_url="${2:?--api needs a URL}" && shift ;;
        --overlay-root) overlay_root=true ;;
        --state-dir) overlay_state_dir="${2:?--state-dir needs a DIR}" && shift ;;
        --wheel) wheel="${2:?--wheel needs a FILE}" && shift ;;
        --dry-run) dry_run=true ;;
        --root) root="${2:?--root needs a DIR}" && shift ;;
        -h | --help) usage && exit 0 ;;
        *) usage >&2 && die "unknown option: $1" ;;
        esac
        shift
    done
    if [[ -n $enroll_code && -z $api_url ]] || [[ -z $enroll_code && -n $api_url ]]; then
        die "--enroll CODE and --api URL go together"
    fi
    if [[ -n $root ]]; then
        mkdir -p "$root"
        root="$(cd "$root" && pwd)"
        [[ $root != / ]] || die "--root / is the live system; leave --root out instead"
    fi
    [[ $overlay_state_dir == /* ]] || die "--state-dir must be an absolute path"
    [[ -z $wheel || -f $wheel ]] || die "no such wheel: $wheel"
}

# --- how each step runs ------------------------------------------------------

# Prints a step, then runs it unless --dry-run.
run() {
    echo "+ $*"
    [[ $dry_run == true ]] || "$@"
}

# A step that changes the live machine (apt, users, services): under --root
# there is no machine to change, so it is only reported.
on_live_system() {
    if [[ -n $root ]]; then
        echo "skip (--root): $*"
    else
        run "$@"
    fi
}

# Writes CONTENT to DEST with MODE, only when it differs (keeps mtimes and
# avoids needless restarts on a second run).
write_file() {
    local dest="$1" mode="$2" content="$3"
    if [[ -f $dest ]] && [[ "$(cat "$dest")" == "$content" ]]; then
        echo "  unchanged: $dest"
        return
    fi
    echo "+ write $dest (mode $mode)"
    [[ $dry_run == true ]] && return
    install -d -m 0755 "$(dirname "$dest")"
    printf '%s\n' "$content" >"$dest.new"
    chmod "$mode" "$dest.new"
    mv -f "$dest.new" "$dest"
}

# systemctl --root enables offline, so a throwaway tree gets the real symlinks.
enable_units() {
    if [[ -n $root ]]; then
        run systemctl --root="$root" enable "$@"
    else
        run systemctl enable "$@"
    fi
}

# --- checks ------------------------------------------------------------------

check_platform() {
    local os_release="${root}/etc/os-release"
    [[ -f $os_release ]] || os_release=/etc/os-release
    [[ -f $os_release ]] || unsupported "no /etc/os-release"
    local id="" id_like="" version_id=""
    # shellcheck disable=SC1090 # a file of KEY=value lines, by design
    id="$(. "$os_release" && echo "${ID:-}")"
    # shellcheck disable=SC1090
    id_like="$(. "$os_release" && echo "${ID_LIKE:-}")"
    # shellcheck disable=SC1090
    version_id="$(. "$os_release" && echo "${VERSION_ID:-0}")"
    if [[ $id != debian && $id != raspbian && " $id_like " != *" debian "* ]]; then
        unsupported "OS '$id' is not Debian or Raspberry Pi OS"
    fi
    if ((${version_id%%.*} < 12)); then
        unsupported "$id $version_id is older than Bookworm (12)"
    fi

    # KIOSK_INSTALL_ARCH lets the tests pretend to be another machine.
    local arch="${KIOSK_INSTALL_ARCH:-$(uname -m)}"
    case "$arch" in
    aarch64 | arm64 | armv7l | armv6l | armhf) ;;
    x86_64)
        # A PC is fine for a rehearsal that touches nothing real.
        [[ -n $root || $dry_run == true ]] ||
            unsupported "architecture $arch (only --dry-run and --root work on a PC)"
        ;;
    *) unsupported "architecture $arch" ;;
    esac

    if [[ -z $root && $dry_run == false && $(id -u) -ne 0 ]]; then
        die "run as root: sudo $0 $*"
    fi
    [[ -f $REPO_DIR/config/kiosk.toml ]] || die "no default config at $REPO_DIR/config/kiosk.toml"
}

# --- steps -------------------------------------------------------------------

install_apt_packages() {
    echo "== apt packages"
    on_live_system env DEBIAN_FRONTEND=noninteractive apt-get update -q
    on_live_system env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y -q --no-install-recommends "${APT_PACKAGES[@]}"
}

create_user() {
    echo "== user kiosk"
    # Raspberry Pi OS has gpio; plain Debian may not (udev then owns the chips).
    local group
    for group in gpio video input; do
        getent group "$group" >/dev/null || on_live_system groupadd --system "$group"
    done
    if [[ -n $root ]] || ! getent passwd kiosk >/dev/null; then
        on_live_system useradd --system --user-group --home-dir "$STATE_DIR" \
            --no-create-home --shell /usr/sbin/nologin kiosk
    fi
    on_live_system usermod --append --groups gpio,video,input kiosk
}

install_venv() {
    echo "== venv $VENV"
    local venv="${root}${VENV}"
    # Debian's python: picamera2 and libcamera live in its dist-packages.
    if [[ ! -x $venv/bin/python ]]; then
        run /usr/bin/python3 -m venv --system-site-packages "$venv"
    fi
    local source="${wheel:-$REPO_DIR}" offline=()
    if [[ -n $root ]]; then
        # A throwaway tree gets the package alone, built offline; its
        # dependencies are the registry's business, not the test's.
        offline=(--no-index --no-build-isolation)
    else
        run "$venv/bin/python" -m pip install --quiet "$source"
    fi
    # A newer checkout may carry the same version number: reinstall the
    # package itself every time so an upgrade always lands.
    run "$venv/bin/python" -m pip install --quiet --force-reinstall --no-deps \
        "${offline[@]}" "$source"
}

install_config() {
    echo "== config $CONFIG"
    local config="${root}${CONFIG}" default="$REPO_DIR/config/kiosk.toml"
    run install -d -m 0755 "$(dirname "$config")"
    if [[ ! -f $config ]]; then
        run install -m 0644 "$default" "$config"
    elif cmp -s "$default" "$config"; then
        echo "  unchanged: $config"
    else
        # Never overwrite the operator's edits; leave the new default beside them.
        echo "  kept the edited $config; the new default is $config.dist"
        cmp -s "$default" "$config.dist" || run install -m 0644 "$default" "$config.dist"
    fi
}

install_units() {
    echo "== systemd units"
    local unit
    for unit in "${UNITS[@]}"; do
        write_file "${root}${UNIT_DIR}/$unit" 0644 "$(cat "$REPO_DIR/systemd/$unit")"
    done
    on_live_system systemctl daemon-reload
    enable_units "${UNITS[@]}"
    echo "== time sync"
    on_live_system systemctl enable --now systemd-timesyncd.service
}

setup_overlay_root() {
    [[ $overlay_root == true ]] || return 0
    echo "== read-only overlay root, state on $overlay_state_dir"
    if [[ -z $root ]] && ! mountpoint -q "$overlay_state_dir"; then
        echo "  warning: $overlay_state_dir is not a mount point: add the writable" \
            "partition to /etc/fstab first, or the state lands in RAM" >&2
    fi
    local mount_unit=var-lib-kiosk.mount
    write_file "${root}${UNIT_DIR}/$mount_unit" 0644 "$(cat "$REPO_DIR/systemd/$mount_unit")"
    write_file "${root}${UNIT_DIR}/$mount_unit.d/state-dir.conf" 0644 \
        "$(printf '# Written by provision/install.sh --state-dir\n[Mount]\nWhat=%s' "$overlay_state_dir")"
    run install -d -m 0700 "${root}${overlay_state_dir}"
    on_live_system chown kiosk:kiosk "$overlay_state_dir"
    on_live_system systemctl daemon-reload
    enable_units "$mount_unit"
    on_live_system systemctl start "$mount_unit"
    # raspi-config prints 0 when the overlay is already configured.
    if [[ -z $root ]] && [[ "$(raspi-config nonint get_overlay_conf 2>/dev/null)" == 0 ]]; then
        echo "  overlay root already enabled"
    else
        on_live_system raspi-config nonint do_overlayfs 0
        echo "  reboot to switch to the read-only root"
    fi
}

enroll() {
    [[ -n $enroll_code ]] || return 0
    echo "== enroll with $api_url"
    if [[ -f ${root}${STATE_DIR}/token ]]; then
        echo "  already enrolled ($STATE_DIR/token exists; delete it to enroll again)"
        return
    fi
    on_live_system install -d -m 0700 -o kiosk -g kiosk "$STATE_DIR"
    # As the kiosk user, so the token (0600) belongs to the daemon.
    on_live_system runuser -u kiosk -- "$VENV/bin/kiosk" enroll "$enroll_code" \
        --api "$api_url" --config "$CONFIG"
}

start_service() {
    echo "== start"
    # A restart, so an upgrade, a new unit or a fresh token takes effect.
    on_live_system systemctl restart kiosk.service
}

main() {
    parse_args "$@"
    check_platform "$@"
    [[ $dry_run == false ]] || echo "Dry run: nothing is changed."
    [[ -z $root ]] || echo "Installing into $root: live-system steps are skipped."
    install_apt_packages
    create_user
    install_venv
    install_config
    install_units
    setup_overlay_root
    enroll
    start_service
    echo "Done. Check the installation with: sudo -u kiosk $VENV/bin/kiosk doctor"
}

main "$@"
