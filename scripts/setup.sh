# Shared set-up steps for scripts/test.sh and scripts/serve.sh (sourced, not run).

setup_system_packages() {
    # Install the Debian packages whose commands are missing. Needs root (or sudo).
    local missing=()
    local pkg cmd
    for pkg in "$@"; do
        case "$pkg" in
            redis-server) cmd=redis-server ;;
            redis-tools) cmd=redis-cli ;;
            nginx-light) cmd=nginx ;;
            docker-compose) cmd=docker-compose ;;
            systemd) cmd=systemd-analyze ;;
            prometheus) cmd=promtool ;;
            iproute2) cmd=ip ;;
            libxml2-utils) cmd=xmllint ;;
            *) cmd="$pkg" ;;
        esac
        command -v "$cmd" >/dev/null 2>&1 || [ -x "/usr/sbin/$cmd" ] || missing+=("$pkg")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    local sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    echo "installing Debian packages: ${missing[*]}" >&2
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
}

setup_venv() {
    # Create .venv and install the package (with the named extras) into it.
    local extras="${1:-}"
    local python="${PYTHON:-python3}"
    [ -x .venv/bin/python ] || "$python" -m venv .venv
    local spec="."
    [ -n "$extras" ] && spec=".[$extras]"
    .venv/bin/python -m pip install -q --disable-pip-version-check -e "$spec"
}
