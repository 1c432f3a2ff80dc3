#!/usr/bin/env bash
# buf-breaking.sh checks the proto module's working tree for breaking changes
# against a git ref of the same repository (default: main; override with
# BUF_BREAKING_AGAINST=<branch|tag|commit>). It succeeds, saying why, when the
# ref has no schemas yet (the first commit that adds them), so `make lint`
# works from the repository's first commit on. Run from any directory.
set -euo pipefail

ref="${BUF_BREAKING_AGAINST:-main}"
proto_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
repo_root="$(git -C "$proto_dir" rev-parse --show-toplevel)"
git_dir="$(git -C "$proto_dir" rev-parse --path-format=absolute --git-common-dir)"
subdir="${proto_dir#"$repo_root"/}"

if ! git -C "$repo_root" rev-parse --verify --quiet "${ref}^{commit}" >/dev/null; then
	echo "buf breaking: skipped: git ref '$ref' does not exist here"
	exit 0
fi
if ! git -C "$repo_root" cat-file -e "${ref}:${subdir}/buf.yaml" 2>/dev/null ||
	! git -C "$repo_root" ls-tree -r --name-only "$ref" -- "$subdir/mlops" | grep -q '\.proto$'; then
	echo "buf breaking: skipped: '$ref' has no schemas under $subdir/ yet, nothing to break"
	exit 0
fi

cd "$proto_dir"
echo "buf breaking: against ${ref}:${subdir}"
exec go tool buf breaking --against "${git_dir}#ref=${ref},subdir=${subdir}"
