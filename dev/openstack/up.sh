#!/usr/bin/env bash
# up.sh: bring up kaas's OpenStack test cloud on this machine, from Debian's
# packages (Debian 12 "bookworm" ships OpenStack Zed). Needs root.
#
#   Keystone :5000  Glance :9292 (file store)  Placement :8778  Nova :8774
#   Neutron :9696   Octavia :9876   + MariaDB, RabbitMQ, memcached
#
# Everything listens on 127.0.0.1 only. There is no data plane: Nova uses the
# fake virt driver on three compute hosts (kaas-c1..c3, so that a hard
# anti-affinity group can place three servers), Neutron binds ports through a
# small fake agent (fake-neutron-agent.py), and Octavia's amphora provider runs
# with no-op amphora, compute and network drivers. API objects go ACTIVE as on
# a real cloud; no VM, packet or load balancer exists.
#
# Idempotent: the first run installs and sets up (~3.5 min on 2 cores, half
# of it apt); later runs start only the daemons that are not running (~30 s),
# or just check them (~2 s). Configuration files are rewritten on every run;
# daemons already running keep the old ones until down.sh and up.sh.
# Every daemon is started with setsid and its process group recorded under
# /var/lib/kaas-openstack/pids; dev/openstack/down.sh stops exactly those.
# Logs: /var/log/kaas-openstack/<daemon>.log, setup steps in setup.log.
#
# Writes /etc/openstack/clouds.yaml with the clouds DevStack writes (other
# clouds in that file are kept):
#   devstack        user demo (roles member, load-balancer_member) in project demo
#   devstack-admin  user admin in project admin
# Password: $KAAS_OPENSTACK_PASSWORD (default kaas-openstack), fixed at the
# first setup. Flavors m1.tiny/small/medium (DevStack's) and SCS-2V-4; the
# external network "public" (203.0.113.0/24) for router gateways and
# floating IPs.
#
# Helpers beside this script: provision.py (API-side setup and readiness
# checks), fake-neutron-agent.py, nova-compute.py, octavia-worker.py and
# wsgi.py (entry points), oslo_log_fix.py (a backported fix they need).
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=../errtrap.sh
. "$HERE/../errtrap.sh"   # any failing command says where, and shows setup.log
# shellcheck source=common.sh
. "$HERE/common.sh"   # sets PATH to Debian's python3 and CLIs

IP=127.0.0.1
REGION=RegionOne
COMPUTE_HOSTS=(kaas-c1 kaas-c2 kaas-c3)
# Bump when the setup steps change, so configured boxes run them again.
SETUP_VERSION=1
SETUP_DONE=$STATE/setup-done
LOCKS=$STATE/lock              # oslo.concurrency's external locks

PACKAGES=(
  mariadb-server python3-pymysql rabbitmq-server memcached python3-memcache
  keystone glance-api placement-api
  # not nova-compute: it pulls in qemu and libvirt; nova-compute.py runs
  # python3-nova's compute service with the fake driver instead
  nova-api nova-conductor nova-scheduler
  neutron-server
  octavia-api octavia-worker
  uwsgi-core uwsgi-plugin-python3
  python3-openstackclient python3-octaviaclient python3-osc-placement
  python3-openstacksdk python3-yaml curl openssl
)

CHANGED=()   # configuration files this run wrote anew
ALREADY=()   # daemons found running

die() {
  echo "ERROR: $*" >&2
  exit 1
}

# die_daemon NAME MESSAGE: fail, showing the end of the daemon's log
die_daemon() {
  echo "ERROR: $1: $2" >&2
  if [ -f "$LOGDIR/$1.log" ]; then
    echo "---- last lines of $LOGDIR/$1.log" >&2
    tail -n 40 "$LOGDIR/$1.log" >&2
  fi
  exit 1
}

# setup_step DESCRIPTION CMD...: run a setup command, its output to setup.log
setup_step() {
  local what=$1
  shift
  log "$what"
  echo "==== $(date '+%F %T') $what: $*" >>"$LOGDIR/setup.log"
  if ! "$@" >>"$LOGDIR/setup.log" 2>&1; then
    echo "ERROR: $what failed ($*)" >&2
    echo "---- last lines of $LOGDIR/setup.log" >&2
    tail -n 40 "$LOGDIR/setup.log" >&2
    exit 1
  fi
}

# put_file PATH [MODE] < content: write PATH only if its content changes
put_file() {
  local path=$1 mode=${2:-0644} tmp
  tmp=$(mktemp)
  cat >"$tmp"
  if [ -f "$path" ] && cmp -s "$tmp" "$path"; then
    rm -f "$tmp"
    return 0
  fi
  install -D -m "$mode" "$tmp" "$path"
  rm -f "$tmp"
  CHANGED+=("$path")
}

db_url() { echo "mysql+pymysql://$1:$PW@$IP/$2?charset=utf8"; }

# ------------------------------------------------------------------ install

install_packages() {
  local missing=() p installed
  # dpkg-query exits 1 when any of them is unknown to dpkg (on a fresh machine, most
  # are): what it printed for the others is still right.
  installed=" $(dpkg-query -W -f='${db:Status-Abbrev}${Package} ' "${PACKAGES[@]}" 2>/dev/null | tr -s ' ' || true) "
  for p in "${PACKAGES[@]}"; do
    [[ $installed == *" ii $p "* ]] || missing+=("$p")
  done
  if ((${#missing[@]} == 0)); then
    log "packages: all installed"
    return 0
  fi
  log "packages: installing ${#missing[@]} (${missing[*]})"
  # There is no init system: maintainer scripts must start no daemon, which a
  # policy-rc.d answering 101 forbids (up.sh starts every daemon itself). Any
  # policy-rc.d already there is put back afterwards.
  local saved_policy=""
  if [ -e /usr/sbin/policy-rc.d ]; then
    saved_policy=$(mktemp)
    cp -p /usr/sbin/policy-rc.d "$saved_policy"
  fi
  printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
  chmod 755 /usr/sbin/policy-rc.d
  export DEBIAN_FRONTEND=noninteractive
  local ok=1
  # A source outside Debian that cannot be reached is no reason to stop.
  apt-get update -q >>"$LOGDIR/setup.log" 2>&1 ||
    log "warning: apt-get update reported errors (see $LOGDIR/setup.log)"
  apt-get install -y -q --no-install-recommends "${missing[@]}" >>"$LOGDIR/setup.log" 2>&1 || ok=""
  if [ -n "$saved_policy" ]; then
    mv "$saved_policy" /usr/sbin/policy-rc.d
  else
    rm -f /usr/sbin/policy-rc.d
  fi
  if [ -z "$ok" ]; then
    tail -n 30 "$LOGDIR/setup.log" >&2
    die "apt-get install failed (log: $LOGDIR/setup.log)"
  fi
}

# --------------------------------------------------------------- passwords

# One password for every account (database, Keystone users). It is fixed at
# the first setup: accounts in MariaDB and Keystone keep it.
choose_password() {
  local wanted=${KAAS_OPENSTACK_PASSWORD:-}
  if [ -f "$STATE/password" ]; then
    PW=$(cat "$STATE/password")
    [ -z "$wanted" ] || [ "$wanted" = "$PW" ] ||
      die "this box was set up with another password; unset KAAS_OPENSTACK_PASSWORD or use that one ($STATE/password)"
  else
    PW=${wanted:-kaas-openstack}
    (umask 077 && echo "$PW" >"$STATE/password")
  fi
}

# ------------------------------------------------------------ configuration

# [keystone_authtoken]: how an API checks the tokens it is given; tokens are
# cached in memcached so that Keystone is not asked on every request.
authtoken() {
  cat <<EOF
www_authenticate_uri = http://$IP:5000
auth_url = http://$IP:5000
memcached_servers = $IP:11211
$(service_auth "$1")
EOF
}

# How a service calls another: as its own user, admin in project "service".
service_auth() {
  cat <<EOF
auth_type = password
auth_url = http://$IP:5000
user_domain_name = Default
project_domain_name = Default
project_name = service
username = $1
password = $PW
region_name = $REGION
EOF
}

config_infra() {
  put_file /etc/mysql/mariadb.conf.d/99-kaas-openstack.cnf <<EOF
[mysqld]
bind-address = $IP
# every OpenStack worker keeps a connection pool
max_connections = 1000
# clients are 127.0.0.1: no DNS lookups
skip-name-resolve
innodb_buffer_pool_size = 128M
# a test box: no fsync per commit (much faster db syncs)
innodb_flush_log_at_trx_commit = 2
EOF
  # The node name "rabbit@localhost" does not depend on the machine's host
  # name; Erlang distribution and epmd stay on loopback. LOGS=-: log to
  # stdout, which up.sh sends to /var/log/kaas-openstack/rabbitmq.log.
  put_file /etc/rabbitmq/rabbitmq-env.conf <<EOF
NODENAME=rabbit@localhost
NODE_IP_ADDRESS=$IP
NODE_PORT=5672
LOGS=-
SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}"
CTL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}"
EOF
  # RabbitMQ's default user guest/guest may only connect from loopback,
  # which is where every client is: no broker user to manage.
  put_file /etc/rabbitmq/rabbitmq.conf <<EOF
listeners.tcp.default = $IP:5672
EOF
}

config_keystone() {
  put_file /etc/keystone/keystone.conf <<EOF
[DEFAULT]
[database]
connection = $(db_url keystone keystone)
[token]
provider = fernet
[fernet_tokens]
key_repository = /etc/keystone/fernet-keys/
[credential]
key_repository = /etc/keystone/credential-keys/
EOF
}

config_glance() {
  put_file /etc/glance/glance-api.conf <<EOF
[DEFAULT]
bind_host = $IP
bind_port = 9292
workers = 1
enabled_backends = fs:file
[database]
connection = $(db_url glance glance)
[glance_store]
default_backend = fs
[fs]
filesystem_store_datadir = /var/lib/glance/images/
# with enabled_backends, Glance wants these two internal stores configured
[os_glance_staging_store]
filesystem_store_datadir = /var/lib/glance/staging/
[os_glance_tasks_store]
filesystem_store_datadir = /var/lib/glance/tasks/
[keystone_authtoken]
$(authtoken glance)
[paste_deploy]
flavor = keystone
[oslo_concurrency]
lock_path = $LOCKS
EOF
}

config_placement() {
  put_file /etc/placement/placement.conf <<EOF
[DEFAULT]
[api]
auth_strategy = keystone
[placement_database]
connection = $(db_url placement placement)
[keystone_authtoken]
$(authtoken placement)
EOF
}

config_nova() {
  put_file /etc/nova/nova.conf <<EOF
[DEFAULT]
my_ip = $IP
# conductor and scheduler; each nova-compute overrides it with its own
host = kaas
state_path = /var/lib/nova
transport_url = rabbit://guest:guest@$IP:5672/
compute_driver = fake.FakeDriver
# Do not wait for Neutron's "network-vif-plugged" event: the fake agent
# reports ports up every 2 s, and a real data plane is not there to plug.
vif_plugging_is_fatal = false
vif_plugging_timeout = 0
osapi_compute_workers = 1
[api]
auth_strategy = keystone
[api_database]
connection = $(db_url nova nova_api)
[database]
connection = $(db_url nova nova)
[conductor]
workers = 1
[scheduler]
workers = 1
# map new compute hosts into cell1 without running nova-manage
discover_hosts_in_cells_interval = 30
[keystone_authtoken]
$(authtoken nova)
[placement]
$(service_auth nova)
[neutron]
$(service_auth nova)
[cinder]
os_region_name = $REGION
[service_user]
send_service_user_token = false
[vnc]
enabled = false
[spice]
enabled = false
[oslo_concurrency]
lock_path = $LOCKS
[oslo_messaging_notifications]
driver = noop
EOF
  local h
  for h in "${COMPUTE_HOSTS[@]}"; do
    # nova-compute refuses to run when it sees a database URL ("No DB access
    # allowed in nova-compute"): blank them; it goes through the conductor.
    put_file "$STATE/nova-compute-$h.conf" <<EOF
[DEFAULT]
host = $h
[database]
connection =
[api_database]
connection =
EOF
  done
}

config_neutron() {
  put_file /etc/neutron/neutron.conf <<EOF
[DEFAULT]
bind_host = $IP
bind_port = 9696
core_plugin = ml2
# routers and floating IPs; tags, timestamps etc. are loaded by default
service_plugins = router
auth_strategy = keystone
transport_url = rabbit://guest:guest@$IP:5672/
api_workers = 1
rpc_workers = 1
rpc_state_report_workers = 1
# tell Nova when ports go up (as the fake agent reports them)
notify_nova_on_port_status_changes = true
notify_nova_on_port_data_changes = true
# there is no DHCP agent to notify
dhcp_agent_notification = false
state_path = /var/lib/neutron
[database]
connection = $(db_url neutron neutron)
[keystone_authtoken]
$(authtoken neutron)
[nova]
$(service_auth neutron)
[oslo_concurrency]
lock_path = $LOCKS
EOF
  put_file /etc/neutron/plugins/ml2/ml2_conf.ini <<EOF
[ml2]
type_drivers = flat,vxlan
tenant_network_types = vxlan
# binds ports on hosts where an "Open vSwitch agent" is alive: the fake agent
mechanism_drivers = openvswitch
extension_drivers = port_security
[ml2_type_flat]
# the external network "public" (see provision.py)
flat_networks = public
[ml2_type_vxlan]
vni_ranges = 1:10000
[securitygroup]
enable_security_group = true
# no data plane to filter
firewall_driver = noop
EOF
}

config_octavia() {
  # Octavia wants a CA for the amphorae's TLS even when no amphora exists.
  if [ ! -f /etc/octavia/certs/ca.pem ]; then
    mkdir -p /etc/octavia/certs
    openssl req -x509 -newkey rsa:2048 -sha256 -days 3650 -subj /CN=kaas-openstack-octavia-ca \
      -keyout /etc/octavia/certs/ca.key -passout "pass:$PW" \
      -out /etc/octavia/certs/ca.pem 2>>"$LOGDIR/setup.log"
  fi
  put_file /etc/octavia/octavia.conf <<EOF
[DEFAULT]
transport_url = rabbit://guest:guest@$IP:5672/
[api_settings]
bind_host = $IP
bind_port = 9876
auth_strategy = keystone
enabled_provider_drivers = amphora:Amphora provider (no-op backends on this test cloud)
default_provider_driver = amphora
[database]
connection = $(db_url octavia octavia)
[keystone_authtoken]
$(authtoken octavia)
[service_auth]
$(service_auth octavia)
[controller_worker]
# The worker runs the real amphora flows against no-op drivers: load
# balancers, listeners, pools, members and monitors go ACTIVE, nothing boots.
amphora_driver = amphora_noop_driver
compute_driver = compute_noop_driver
network_driver = network_noop_driver
volume_driver = volume_noop_driver
image_driver = image_noop_driver
distributor_driver = distributor_noop_driver
loadbalancer_topology = SINGLE
# required settings, never used by the no-op drivers
amp_boot_network_list = 00000000-0000-0000-0000-000000000000
amp_secgroup_list = 00000000-0000-0000-0000-000000000000
amp_flavor_id = 1
amp_image_tag = amphora
client_ca = /etc/octavia/certs/ca.pem
workers = 1
[task_flow]
# the jobboard needs Redis or ZooKeeper
jobboard_enabled = false
[certificates]
cert_generator = local_cert_generator
ca_certificate = /etc/octavia/certs/ca.pem
ca_private_key = /etc/octavia/certs/ca.key
ca_private_key_passphrase = $PW
# must be 32 characters
server_certs_key_passphrase = kaas-openstack-test-cloud-passph
[haproxy_amphora]
server_ca = /etc/octavia/certs/ca.pem
client_cert = /etc/octavia/certs/ca.pem
[health_manager]
bind_ip = $IP
controller_ip_port_list = $IP:5555
heartbeat_key = kaas-openstack
[oslo_messaging]
# no default: the worker's (deprecated) v1 consumer dies in a loop without it
topic = octavia_prov
[oslo_concurrency]
lock_path = $LOCKS
EOF
}

# uwsgi_ini NAME PORT WSGI-SCRIPT PROCESSES THREADS: the APIs that Debian runs
# under uWSGI (Keystone, Placement, Nova, Octavia), serving HTTP directly.
uwsgi_ini() {
  put_file "$STATE/uwsgi/$1.ini" <<EOF
[uwsgi]
name = $1
plugins = python3
http-socket = $IP:$2
# wsgi.py loads the packaged WSGI script $3 with oslo_log_fix applied
wsgi-file = $HERE/wsgi.py
env = KAAS_WSGI_SCRIPT=$3
processes = $4
threads = $5
enable-threads = true
# a master supervises the workers; it is the process group leader
master = true
# load the application in each worker after fork: OpenStack apps open
# database and RPC connections that must not be shared across processes
lazy-apps = true
# SIGTERM stops uWSGI (by default it reloads), and workers that ignore the
# shutdown (eventlet-patched nova-api) are killed after 5 s
die-on-term = true
worker-reload-mercy = 5
reload-mercy = 5
# as DevStack's uWSGI HTTP mode: large headers (tokens, catalogs), chunked
# bodies, and no keep-alive (uWSGI's http-socket does not do it well)
buffer-size = 65535
http-auto-chunked = true
http-raw-body = true
chunked-input-limit = 10485760
add-header = Connection: close
EOF
}

write_configs() {
  mkdir -p "$LOCKS" /var/lib/glance/images /var/lib/glance/staging \
    /var/lib/glance/tasks /var/lib/nova /var/lib/neutron
  config_infra
  config_keystone
  config_glance
  config_placement
  config_nova
  config_neutron
  config_octavia
  uwsgi_ini keystone 5000 /usr/bin/keystone-wsgi-public 2 2
  uwsgi_ini placement 8778 /usr/bin/placement-api 1 4
  uwsgi_ini nova-api 8774 /usr/bin/nova-api-wsgi 2 1
  uwsgi_ini octavia-api 9876 /usr/bin/octavia-wsgi 1 2
}

# ------------------------------------------------------------------ daemons

# start_daemon NAME CMD...: start CMD in its own session (setsid: a process
# group of its own), unless the one recorded under NAME is still running
start_daemon() {
  local name=$1
  shift
  if leader_alive "$name"; then
    ALREADY+=("$name")
    return 0
  fi
  # leftovers of a group whose leader died (e.g. uWSGI workers on the port)
  if [ -f "$PIDDIR/$name.pid" ] && ! group_gone "$name"; then
    signal_group "$name" KILL
    sleep 1
  fi
  echo "==== $(date '+%F %T') started by up.sh: $*" >>"$LOGDIR/$name.log"
  setsid "$@" >>"$LOGDIR/$name.log" 2>&1 </dev/null &
  record_daemon "$name" $!
  log "started $name (process group $!)"
}

# wait_port NAME PORT [TIMEOUT]: until something accepts connections on PORT
wait_port() {
  local name=$1 port=$2 timeout=${3:-120} i
  for ((i = 0; i < timeout; i++)); do
    (exec 3<>"/dev/tcp/$IP/$port") 2>/dev/null && return 0
    leader_alive "$name" || die_daemon "$name" "exited before listening on $IP:$port"
    sleep 1
  done
  die_daemon "$name" "nothing listening on $IP:$port after ${timeout}s"
}

# wait_http NAME URL [TIMEOUT]: until URL gives any HTTP answer
wait_http() {
  local name=$1 url=$2 timeout=${3:-180} i
  for ((i = 0; i < timeout; i++)); do
    curl -s -o /dev/null -m 5 "$url" && return 0
    leader_alive "$name" || die_daemon "$name" "exited before answering on $url"
    sleep 1
  done
  die_daemon "$name" "no answer on $url after ${timeout}s"
}

start_infra() {
  install -d -o mysql -g mysql /run/mysqld
  # Debian's postinst initialises it; in case it did not (or it was wiped)
  [ -d /var/lib/mysql/mysql ] || setup_step "mariadb: initialise data directory" \
    mariadb-install-db --user=mysql --datadir=/var/lib/mysql
  start_daemon mariadb /usr/sbin/mariadbd --user=mysql
  start_daemon memcached /usr/bin/memcached -u memcache -l $IP -p 11211 -m 64
  # our own epmd on loopback, in the foreground: otherwise RabbitMQ
  # daemonises one, outside any recorded process group
  start_daemon epmd env ERL_EPMD_ADDRESS=$IP /usr/bin/epmd
  # Not Debian's /usr/sbin/rabbitmq-server: its "su -c" starts the broker in
  # a new session, out of reach of the recorded process group.
  chown -R rabbitmq:rabbitmq /var/lib/rabbitmq
  start_daemon rabbitmq setpriv --reuid=rabbitmq --regid=rabbitmq --init-groups \
    env HOME=/var/lib/rabbitmq ERL_EPMD_ADDRESS=$IP \
    sh -c 'cd /var/lib/rabbitmq && exec /usr/lib/rabbitmq/bin/rabbitmq-server'
  wait_port mariadb 3306 60
  wait_port memcached 11211 30
  wait_port rabbitmq 5672 120
}

start_keystone() {
  start_daemon keystone uwsgi --ini "$STATE/uwsgi/keystone.ini"
  wait_http keystone http://$IP:5000/v3
}

start_services() {
  local conductor_log=$LOGDIR/nova-conductor.log offset=-1 i h
  # nova-compute waits for the conductor and, if it is not there, gives up
  # for 60 s: note where a freshly started conductor's log begins.
  if ! leader_alive nova-conductor; then
    offset=$(stat -c %s "$conductor_log" 2>/dev/null || echo 0)
  fi
  start_daemon placement uwsgi --ini "$STATE/uwsgi/placement.ini"
  start_daemon glance-api /usr/bin/glance-api --config-file /etc/glance/glance-api.conf
  start_daemon neutron-server /usr/bin/neutron-server --config-file /etc/neutron/neutron.conf \
    --config-file /etc/neutron/plugins/ml2/ml2_conf.ini
  start_daemon nova-api uwsgi --ini "$STATE/uwsgi/nova-api.ini"
  start_daemon nova-conductor /usr/bin/nova-conductor --config-file /etc/nova/nova.conf
  start_daemon nova-scheduler /usr/bin/nova-scheduler --config-file /etc/nova/nova.conf
  start_daemon octavia-api uwsgi --ini "$STATE/uwsgi/octavia-api.ini"
  # Debian's octavia-worker, with oslo_log_fix (see octavia-worker.py)
  start_daemon octavia-worker /usr/bin/python3 "$HERE/octavia-worker.py" \
    --config-file /etc/octavia/octavia.conf

  # nova-compute registers its resource provider in Placement at start
  wait_http placement http://$IP:8778/
  if ((offset >= 0)); then
    for ((i = 0; i < 120; i++)); do
      tail -c +"$((offset + 1))" "$conductor_log" | grep -q 'Starting conductor node' && break
      leader_alive nova-conductor || die_daemon nova-conductor "exited"
      sleep 1
    done
    ((i < 120)) || die_daemon nova-conductor "did not start within 120s"
  fi
  for h in "${COMPUTE_HOSTS[@]}"; do
    start_daemon "nova-compute-$h" /usr/bin/python3 "$HERE/nova-compute.py" \
      --config-file /etc/nova/nova.conf --config-file "$STATE/nova-compute-$h.conf"
  done

  wait_http neutron-server http://$IP:9696/
  start_daemon fake-neutron-agent /usr/bin/python3 "$HERE/fake-neutron-agent.py" "${COMPUTE_HOSTS[@]}"
  wait_http glance-api http://$IP:9292/
  wait_http nova-api http://$IP:8774/
  wait_http octavia-api http://$IP:9876/
  leader_alive octavia-worker || die_daemon octavia-worker "exited"
  leader_alive nova-scheduler || die_daemon nova-scheduler "exited"
}

# ---------------------------------------------------------- one-time setup

setup_databases() {
  local sql="" d u
  for d in keystone glance placement nova_api nova nova_cell0 neutron octavia; do
    u=${d%%_*}
    sql+="CREATE DATABASE IF NOT EXISTS $d;
CREATE USER IF NOT EXISTS '$u'@'$IP' IDENTIFIED BY '$PW';
GRANT ALL PRIVILEGES ON $d.* TO '$u'@'$IP';
"
  done
  # root connects through the socket (unix_socket authentication)
  setup_step "mariadb: databases and users" mysql -uroot -e "$sql"
}

sync_databases() {
  setup_step "keystone: db sync" keystone-manage db_sync
  setup_step "keystone: fernet keys" keystone-manage fernet_setup --keystone-user root --keystone-group root
  setup_step "keystone: credential keys" keystone-manage credential_setup --keystone-user root --keystone-group root
  # admin user, project admin, roles admin/member/reader, identity endpoints
  setup_step "keystone: bootstrap" keystone-manage bootstrap --bootstrap-password "$PW" \
    --bootstrap-admin-url "http://$IP:5000/v3/" \
    --bootstrap-internal-url "http://$IP:5000/v3/" \
    --bootstrap-public-url "http://$IP:5000/v3/" \
    --bootstrap-region-id "$REGION"
  setup_step "glance: db sync" glance-manage db_sync
  setup_step "placement: db sync" placement-manage db sync
  setup_step "nova: api db sync" nova-manage api_db sync
  if ! nova-manage cell_v2 list_cells 2>/dev/null | grep -q ' cell0 '; then
    setup_step "nova: map cell0" nova-manage cell_v2 map_cell0 \
      --database_connection "$(db_url nova nova_cell0)"
  fi
  if ! nova-manage cell_v2 list_cells 2>/dev/null | grep -q ' cell1 '; then
    setup_step "nova: create cell1" nova-manage cell_v2 create_cell --name cell1
  fi
  setup_step "nova: db sync" nova-manage db sync
  setup_step "neutron: db sync" neutron-db-manage --config-file /etc/neutron/neutron.conf \
    --config-file /etc/neutron/plugins/ml2/ml2_conf.ini upgrade head
  setup_step "octavia: db sync" octavia-db-manage --config-file /etc/octavia/octavia.conf upgrade head
}

provision() {
  KAAS_OS_PASSWORD=$PW KAAS_OS_COMPUTE_HOSTS="${COMPUTE_HOSTS[*]}" KAAS_OS_LOGDIR=$LOGDIR \
    /usr/bin/python3 "$HERE/provision.py" "$1"
}

setup_done() { [ "$(cat "$SETUP_DONE" 2>/dev/null)" = "$SETUP_VERSION" ]; }

# --------------------------------------------------------------------- main

main() {
  [ "$(id -u)" = 0 ] || die "run as root"
  mkdir -p "$STATE" "$PIDDIR" "$LOGDIR"
  STEP_LOG=$LOGDIR/setup.log
  log "setting up (steps log to $STEP_LOG)"
  local t0=$SECONDS t1 first_setup=""
  setup_done || first_setup=1

  install_packages
  t1=$SECONDS

  choose_password
  write_configs
  start_infra
  if [ -n "$first_setup" ]; then
    setup_databases
    sync_databases
  fi
  start_keystone
  # service users must exist before the services start
  [ -z "$first_setup" ] || provision identity
  start_services
  provision wait-ready
  if [ -n "$first_setup" ]; then
    # map the compute hosts into cell1 now, not at the next periodic discovery
    setup_step "nova: discover compute hosts" nova-manage cell_v2 discover_hosts --verbose
    provision resources
    echo "$SETUP_VERSION" >"$SETUP_DONE"
  fi
  provision clouds-yaml

  if ((${#ALREADY[@]} > 0 && ${#CHANGED[@]} > 0)); then
    log "warning: configuration changed (${CHANGED[*]}) but ${#ALREADY[@]} daemons were" \
      "already running with the old one: run $HERE/down.sh, then up.sh"
  fi
  log "timings: install $((t1 - t0))s, configure/start $((SECONDS - t1))s" \
    "(${#ALREADY[@]} daemons were already running)"
  log "cloud up: OS_CLOUD=devstack or devstack-admin (/etc/openstack/clouds.yaml);" \
    "logs in $LOGDIR; stop with $HERE/down.sh"
}

main "$@"
