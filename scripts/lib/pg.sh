# shellcheck shell=bash
# Throwaway PostgreSQL for the demo and the benchmarks: initdb into a folder,
# start it on a given port on 127.0.0.1, stop it again. Source this file.
# PostgreSQL refuses to run as root, so as root it runs as the 'postgres' user.

pg_bindir() {
	local dir
	for dir in /usr/lib/postgresql/*/bin; do
		[ -x "$dir/initdb" ] && { echo "$dir"; return 0; }
	done
	command -v initdb >/dev/null 2>&1 && { dirname "$(command -v initdb)"; return 0; }
	return 1
}

# pg_ensure_installed installs Debian's postgresql package when no server binaries exist.
pg_ensure_installed() {
	pg_bindir >/dev/null && return 0
	echo "PostgreSQL binaries not found; installing the postgresql package" >&2
	DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2 &&
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >&2 || {
		echo "could not install postgresql; install PostgreSQL 15 and retry" >&2
		return 1
	}
}

# pg_as_owner runs a command as the user that owns the data folder.
pg_as_owner() {
	if [ "$(id -u)" = 0 ]; then
		runuser -u postgres -- "$@"
	else
		"$@"
	fi
}

# pg_datadir DIR prints the folder that holds the server's data for DIR.
# As root the server runs as 'postgres', which cannot reach a DIR below a
# folder closed to others (a clone under /root); the data then lives in a
# new folder under /tmp and DIR is made a link to it.
pg_datadir() {
	local dir=$1 real
	mkdir -p "$(dirname "$dir")"
	if [ "$(id -u)" = 0 ] && [ ! -e "$dir" ] && ! runuser -u postgres -- test -x "$(dirname "$dir")"; then
		rm -f "$dir" # a link left dangling
		real=$(mktemp -d /tmp/grapevine-pg.XXXXXX) || return 1
		ln -s "$real" "$dir"
	fi
	readlink -f "$dir"
}

# pg_remove DIR deletes the data and initdb log of a stopped server, also
# where DIR links to.
pg_remove() {
	local dir=$1 real
	if [ -L "$dir" ]; then
		real=$(readlink -f "$dir")
		rm -rf "$real" "$real.initdb.log"
	fi
	rm -rf "$dir" "$dir.initdb.log"
}

# pg_start DIR PORT: initdb DIR if it is new, then start the server on 127.0.0.1:PORT.
# PG_EXTRA_OPTS adds server options (e.g. "-c max_connections=300").
pg_start() {
	local dir port=$2 bin
	pg_ensure_installed || return 1
	bin=$(pg_bindir) || return 1
	dir=$(pg_datadir "$1") || return 1
	mkdir -p "$dir"
	[ "$(id -u)" = 0 ] && chown postgres: "$dir"
	if [ ! -f "$dir/PG_VERSION" ]; then
		pg_as_owner "$bin/initdb" -D "$dir" -U grapevine --auth=trust -E UTF8 >"$dir.initdb.log" 2>&1 || {
			echo "initdb failed, see $dir.initdb.log" >&2
			return 1
		}
	fi
	pg_as_owner "$bin/pg_ctl" -D "$dir" -l "$dir/server.log" -w -t 60 \
		-o "-h 127.0.0.1 -p $port -k /tmp -c fsync=off -c synchronous_commit=off -c full_page_writes=off ${PG_EXTRA_OPTS:-}" start >/dev/null || {
		echo "PostgreSQL did not start, see $dir/server.log" >&2
		return 1
	}
	"$bin/createdb" -h 127.0.0.1 -p "$port" -U grapevine grapevine 2>/dev/null || true
}

# pg_stop DIR stops the server started by pg_start.
pg_stop() {
	local dir bin
	dir=$(readlink -f "$1")
	bin=$(pg_bindir) || return 0
	[ -f "$dir/postmaster.pid" ] || return 0
	pg_as_owner "$bin/pg_ctl" -D "$dir" -m fast -w stop >/dev/null 2>&1 || true
}
