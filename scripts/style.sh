#!/usr/bin/env bash
# Static checks, as CI's "style" stage runs them: mypy (what and how: mypy.ini), shellcheck on every
# shell script of the repository, ruff check (ruff.toml). With arguments, only those checks, out of
# mypy, shellcheck, ruff and ruff-format (ruff format --check): the pre-commit hooks run them one by one.
# Every check runs even when one fails, so one red check does not hide another.
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root" || exit 2
# The pinned mypy and ruff of the project's virtualenv (scripts/setup.sh); shellcheck is Debian's.
PATH="$root/.venv/bin:$PATH"

# Tracked and new files that are shell scripts: named *.sh, or starting with a #! line that runs sh or
# bash, so a new script is checked without being listed here. Jinja templates (*.j2) are not shell
# until rendered; ansible-lint checks the roles that hold them.
shell_scripts() {
    local file first
    while IFS= read -r -d '' file; do
        [ -f "$file" ] || continue
        case $file in
            *.j2) continue ;;
            *.sh) printf '%s\0' "$file"; continue ;;
        esac
        IFS= read -r first < "$file" || true
        if [[ $first =~ ^#!.*[/\ ](ba|da)?sh([[:space:]]|$) ]]; then
            printf '%s\0' "$file"
        fi
    done < <(git ls-files -z --deduplicate --cached --others --exclude-standard)
}

check() {
    case $1 in
        mypy) mypy ;;
        shellcheck)
            local -a scripts
            mapfile -d '' scripts < <(shell_scripts)
            if [ ${#scripts[@]} -eq 0 ]; then
                echo "shellcheck: found no shell scripts, which cannot be right" >&2
                return 1
            fi
            echo "shellcheck: ${scripts[*]}"
            shellcheck "${scripts[@]}" ;;
        ruff) ruff check --output-format concise . ;;
        ruff-format) ruff format --check . ;;
        *) echo "style.sh: unknown check $1 (mypy, shellcheck, ruff, ruff-format)" >&2; return 2 ;;
    esac
}

declare -a failed=()
[ $# -gt 0 ] || set -- mypy shellcheck ruff ruff-format
for name in "$@"; do
    echo "--- $name"
    check "$name" || failed+=("$name")
done
if [ ${#failed[@]} -gt 0 ]; then
    echo "style: failed: ${failed[*]}"
    exit 1
fi
echo "style: ok ($*)"
