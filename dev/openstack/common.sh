# Sourced by up.sh and down.sh: where the test cloud keeps its state, and how a
# daemon's process group is recorded, recognised and signalled.
#
# Every daemon is started by up.sh with setsid, so it leads a process group of
# its own whose id is its pid. The pid file records that id and the leader's
# start time (field 22 of /proc/<pid>/stat): a pid the kernel has since given
# to an unrelated process is then never mistaken for ours.

# Debian's python3 and OpenStack CLIs, never a pyenv/venv python found earlier
# on the caller's PATH (those lack the OpenStack libraries).
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
unset PYTHONPATH PYTHONHOME VIRTUAL_ENV
# the daemons import helpers from this directory: no __pycache__ in the repo
export PYTHONDONTWRITEBYTECODE=1
# The caller's OS_* variables (OS_CLOUD, ...) must not steer the setup.
unset "${!OS_@}"

STATE=/var/lib/kaas-openstack     # pid files, generated files, markers
PIDDIR=$STATE/pids
LOGDIR=/var/log/kaas-openstack    # one <daemon>.log per daemon, plus setup.log

log() { printf '[%(%H:%M:%S)T] %s\n' -1 "$*"; }

# start time of a process, in clock ticks since boot ("" if it is gone)
proc_starttime() {
  local stat
  stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 0
  # the command name (field 2) may hold spaces: cut up to its closing ')'
  stat=${stat##*) }
  # now field 3 (state) is the first word, so field 22 is the 20th
  set -- $stat
  echo "${20}"
}

# record NAME PID: remember the process group that up.sh just started
record_daemon() {
  echo "$2 $(proc_starttime "$2")" >"$PIDDIR/$1.pid"
}

# recorded_pgid NAME: print the recorded group id, if there is a record
recorded_pgid() {
  local pgid _
  [ -f "$PIDDIR/$1.pid" ] || return 1
  read -r pgid _ <"$PIDDIR/$1.pid" && [ -n "$pgid" ] && echo "$pgid"
}

# leader_alive NAME: the recorded group leader is still the process we started
leader_alive() {
  local pgid start
  [ -f "$PIDDIR/$1.pid" ] || return 1
  read -r pgid start <"$PIDDIR/$1.pid" || return 1
  [ -n "$pgid" ] && [ -n "$start" ] && [ "$(proc_starttime "$pgid")" = "$start" ]
}

# group_members PGID: pids still in that process group
group_members() {
  ps -eo pid=,pgid= | awk -v g="$1" '$2 == g { print $1 }'
}

# group_gone NAME: nothing of the recorded group is left. A group whose leader
# died may still have members (say uWSGI workers); they are ours too, since
# Linux hands out no pid that is still in use as a process group id.
group_gone() {
  local pgid start
  read -r pgid start <"$PIDDIR/$1.pid" 2>/dev/null || return 0
  [ -n "$pgid" ] || return 0
  if [ -e "/proc/$pgid" ] && [ "$(proc_starttime "$pgid")" != "$start" ]; then
    return 0   # the pid now belongs to someone else: our group is long gone
  fi
  [ -z "$(group_members "$pgid")" ]
}

# signal_group NAME SIGNAL: signal the whole recorded group, if it is still ours
signal_group() {
  local pgid
  group_gone "$1" && return 0
  pgid=$(recorded_pgid "$1") || return 0
  kill "-$2" -- "-$pgid" 2>/dev/null || true
}
