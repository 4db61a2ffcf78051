#!/usr/bin/env bash
# Everything the whole test suite needs, on a machine with Python 3.10+ and pip (README's second
# command runs this, then pytest). Python packages come from requirements/dev.txt; the system
# programs the real-server and browser tests start (Chromium + ChromeDriver for the dashboard,
# PostgreSQL's and MariaDB's server binaries for the SQL backend) come from the OS package
# manager when missing.
# Where they cannot be installed this says so; the tests then skip loudly, and fail with CI=true.
set -euo pipefail
cd "$(dirname "$0")/.."

python -m pip install -r requirements/dev.txt

missing=()
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
command -v chromedriver >/dev/null 2>&1 || missing+=(chromium-driver)
compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || command -v initdb >/dev/null 2>&1 || missing+=(postgresql)
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
command -v mariadbd >/dev/null 2>&1 || [ -x /usr/sbin/mariadbd ] || missing+=(mariadb-server-core)

if ((${#missing[@]})); then
    if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
        echo "dev-setup: installing ${missing[*]} with apt-get" >&2
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    elif command -v apt-get >/dev/null 2>&1 && command -v sudo >/dev/null 2>&1; then
        echo "dev-setup: installing ${missing[*]} with sudo apt-get" >&2
        sudo apt-get update -qq
        sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    else
        echo "dev-setup: WARNING: ${missing[*]} missing and no apt-get to install them: the tests that" \
             "need them will be skipped (and fail with CI=true). Install them with your package manager." >&2
    fi
fi
