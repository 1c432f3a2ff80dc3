#!/usr/bin/env bash
# buf-breaking.sh checks the proto module's working tree for breaking changes
# against a git ref of the same repository. Run from any directory.
#
# The base is BUF_BREAKING_AGAINST=<branch|tag|commit> when set, otherwise main,
# or origin/main in a clone that has only the remote-tracking branch (a CI
# checkout of another branch). A base that does not exist is an error: the check
# never passes by comparing against nothing. To compare against the current
# commit on purpose (only uncommitted changes are checked), say so:
# BUF_BREAKING_AGAINST=HEAD. The check succeeds, saying why, only when the base
# exists but has no schemas yet (the first commit that adds them), so `make lint`
# works from the repository's first commit on.
set -euo pipefail

proto_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
repo_root="$(git -C "$proto_dir" rev-parse --show-toplevel)"
git_dir="$(git -C "$proto_dir" rev-parse --path-format=absolute --git-common-dir)"
subdir="${proto_dir#"$repo_root"/}"

commit_of() { git -C "$repo_root" rev-parse --verify --quiet "${1}^{commit}"; }

ref="${BUF_BREAKING_AGAINST:-}"
if [[ -n $ref ]]; then
	if ! base="$(commit_of "$ref")"; then
		echo "buf breaking: error: git ref '$ref' does not exist here (BUF_BREAKING_AGAINST)" >&2
		exit 1
	fi
else
	for ref in main origin/main; do
		base="$(commit_of "$ref")" && break
		base=""
	done
	if [[ -z $base ]]; then
		{
			echo "buf breaking: error: no base to compare against: neither 'main' nor 'origin/main' exists in this clone."
			echo "  Fetch it (git fetch origin main:main), or set BUF_BREAKING_AGAINST=<branch|tag|commit>;"
			echo "  BUF_BREAKING_AGAINST=HEAD compares against the current commit (uncommitted changes only)."
		} >&2
		exit 1
	fi
fi

if ! git -C "$repo_root" cat-file -e "${base}:${subdir}/buf.yaml" 2>/dev/null ||
	! git -C "$repo_root" ls-tree -r --name-only "$base" -- "$subdir/mlops" | grep -q '\.proto$'; then
	echo "buf breaking: skipped: '$ref' has no schemas under $subdir/ yet, nothing to break"
	exit 0
fi

cd "$proto_dir"
echo "buf breaking: against ${ref} (${base}):${subdir}"
# The commit, not the ref's name: buf clones the repository, and the clone does not have the
# original's remote-tracking branches (origin/main) or a detached HEAD.
exec go tool buf breaking --against "${git_dir}#ref=${base},subdir=${subdir}"
