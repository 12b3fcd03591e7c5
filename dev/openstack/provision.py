#!/usr/bin/python3
"""The API-side setup of the kaas test cloud, called by up.sh.

  provision.py identity     projects, users, roles, services and endpoints
  provision.py wait-ready   wait until the compute hosts and agents are up
  provision.py resources    flavors and the external network "public"
  provision.py clouds-yaml  write /etc/openstack/clouds.yaml

Each step is idempotent. It is done in one Python process with openstacksdk
rather than with the openstack CLI because each CLI call costs ~1.5 s of CPU
on a 2-core machine, and there are dozens of them.

Environment (set by up.sh): KAAS_OS_PASSWORD, KAAS_OS_COMPUTE_HOSTS (space
separated), KAAS_OS_LOGDIR.
"""
import os
import sys
import time

# Only the arguments below may steer openstacksdk, not the caller's OS_CLOUD.
for _k in [k for k in os.environ if k.startswith('OS_')]:
    del os.environ[_k]

import openstack  # noqa: E402
import yaml  # noqa: E402

IP = '127.0.0.1'
AUTH_URL = 'http://%s:5000/v3' % IP
REGION = 'RegionOne'
PASSWORD = os.environ['KAAS_OS_PASSWORD']
COMPUTE_HOSTS = os.environ.get('KAAS_OS_COMPUTE_HOSTS', '').split()
LOGDIR = os.environ.get('KAAS_OS_LOGDIR', '/var/log/kaas-openstack')
CLOUDS_YAML = '/etc/openstack/clouds.yaml'

# OpenStack services: each calls the others as its own user, which is admin
# in project "service" (as DevStack does).
SERVICE_USERS = ('glance', 'placement', 'nova', 'neutron', 'octavia')
ENDPOINTS = {  # service type: (service name, URL)
    'image': ('glance', 'http://%s:9292' % IP),
    'placement': ('placement', 'http://%s:8778' % IP),
    'compute': ('nova', 'http://%s:8774/v2.1' % IP),
    'network': ('neutron', 'http://%s:9696' % IP),
    'load-balancer': ('octavia', 'http://%s:9876' % IP),
}
# name: (vcpus, ram MiB, disk GB); the m1.* are DevStack's.
FLAVORS = {
    'm1.tiny': (1, 512, 1),
    'm1.small': (1, 2048, 20),
    'm1.medium': (2, 4096, 40),
    'SCS-2V-4': (2, 4096, 20),
}
# Documentation range (RFC 5737): no packet ever leaves, there is no data plane.
PUBLIC_CIDR, PUBLIC_GATEWAY = '203.0.113.0/24', '203.0.113.1'
PUBLIC_POOL = {'start': '203.0.113.10', 'end': '203.0.113.250'}


def log(msg):
    print('[%s] %s' % (time.strftime('%H:%M:%S'), msg), flush=True)


def fail(msg, *daemons):
    """Exit non-zero, showing the end of the logs of the daemons concerned."""
    print('ERROR: %s' % msg, file=sys.stderr)
    for d in daemons:
        path = os.path.join(LOGDIR, d + '.log')
        try:
            with open(path, errors='replace') as f:
                tail = f.readlines()[-30:]
        except OSError:
            continue
        print('---- last lines of %s' % path, file=sys.stderr)
        sys.stderr.writelines(tail)
    sys.exit(1)


def auth(user, project):
    return {'auth_url': AUTH_URL, 'username': user, 'password': PASSWORD,
            'project_name': project, 'user_domain_id': 'default',
            'project_domain_id': 'default'}


def admin():
    return openstack.connect(auth=auth('admin', 'admin'), region_name=REGION,
                             interface='public', identity_api_version='3')


def identity():
    conn = admin()
    idn = conn.identity

    def project(name, description):
        return (idn.find_project(name, domain_id='default')
                or idn.create_project(name=name, domain_id='default',
                                      description=description))

    def user(name, default_project):
        u = idn.find_user(name, domain_id='default')
        if u:  # keep the password what this box was set up with
            return idn.update_user(u, password=PASSWORD)
        return idn.create_user(name=name, domain_id='default', password=PASSWORD,
                               default_project_id=default_project.id)

    def role(name):
        return idn.find_role(name) or idn.create_role(name=name)

    def grant(role_, user_, project_):
        # PUT /v3/projects/{p}/users/{u}/roles/{r} is idempotent
        idn.assign_project_role_to_user(project_, user_, role_)

    service = project('service', 'OpenStack service users')
    demo = project('demo', 'kaas test project')
    admin_role, member = role('admin'), role('member')
    role('reader')
    # Octavia's default policy wants this role (or load-balancer_admin) to
    # create load balancers.
    lb_member = role('load-balancer_member')

    for name in SERVICE_USERS:
        grant(admin_role, user(name, service), service)
    demo_user = user('demo', demo)
    grant(member, demo_user, demo)
    grant(lb_member, demo_user, demo)

    for stype, (name, url) in ENDPOINTS.items():
        svc = (next(iter(idn.services(type=stype)), None)
               or idn.create_service(name=name, type=stype))
        have = {e.interface for e in idn.endpoints(service_id=svc.id)}
        for interface in ('public', 'internal', 'admin'):
            if interface not in have:
                idn.create_endpoint(service_id=svc.id, interface=interface,
                                    url=url, region_id=REGION)
    log('keystone: projects service/demo, users %s and demo, endpoints of %s'
        % ('/'.join(SERVICE_USERS), '/'.join(ENDPOINTS)))


def wait_for(what, probe, timeout, daemons):
    """Poll probe() until it returns (True, note); fail after timeout s."""
    deadline, note = time.time() + timeout, ''
    while True:
        try:
            ok, note = probe()
        except Exception as e:  # an API still starting
            ok, note = False, '%s: %s' % (type(e).__name__, e)
        if ok:
            log('%s: %s' % (what, note))
            return
        if time.time() > deadline:
            fail('%s not ready after %d s (%s)' % (what, timeout, note), *daemons)
        time.sleep(2)


def wait_ready():
    conn = admin()
    hosts = set(COMPUTE_HOSTS)
    computes = ['nova-compute-' + h for h in COMPUTE_HOSTS]

    def nova_computes():
        up = {s.host for s in conn.compute.services(binary='nova-compute')
              if s.state == 'up' and s.status == 'enabled'}
        return hosts <= up, 'up on %s' % ', '.join(sorted(up)) if up else 'none up'
    wait_for('nova-compute', nova_computes, 180,
             computes + ['nova-conductor'])

    def placement():
        r = conn.placement.get('/resource_providers')
        names = {p['name'] for p in r.json()['resource_providers']}
        return hosts <= names, 'resource providers %s' % ', '.join(sorted(names))
    wait_for('placement', placement, 120, computes + ['placement'])

    def agents():
        alive = {a.host for a in conn.network.agents(agent_type='Open vSwitch agent')
                 if a.is_alive}
        return hosts <= alive, 'OVS agents alive on %s' % ', '.join(sorted(alive))
    wait_for('neutron agents', agents, 120, ['fake-neutron-agent', 'neutron-server'])

    def octavia():
        names = [p.name for p in conn.load_balancer.providers()]
        return 'amphora' in names, 'providers %s' % ', '.join(names)
    wait_for('octavia', octavia, 60, ['octavia-api'])


def resources():
    conn = admin()
    for name, (vcpus, ram, disk) in FLAVORS.items():
        if not conn.compute.find_flavor(name):
            conn.compute.create_flavor(name=name, vcpus=vcpus, ram=ram, disk=disk,
                                       is_public=True)
    net = conn.network.find_network('public')
    if not net:
        # external: routers can have their gateway here and floating IPs come
        # from it. A flat network on the physical network the fake agent
        # reports a bridge for.
        net = conn.network.create_network(
            name='public', is_router_external=True,
            provider_network_type='flat', provider_physical_network='public')
    if not list(conn.network.subnets(network_id=net.id)):
        conn.network.create_subnet(
            network_id=net.id, name='public-subnet', ip_version=4,
            cidr=PUBLIC_CIDR, gateway_ip=PUBLIC_GATEWAY,
            allocation_pools=[PUBLIC_POOL], is_dhcp_enabled=False)
    log('flavors %s; external network public (%s)'
        % (', '.join(FLAVORS), PUBLIC_CIDR))


def clouds_yaml():
    """The clouds DevStack writes; other clouds already in the file are kept."""
    try:
        with open(CLOUDS_YAML) as f:
            doc = yaml.safe_load(f) or {}
    except FileNotFoundError:
        doc = {}
    clouds = doc.setdefault('clouds', {})
    common = {'region_name': REGION, 'interface': 'public',
              'identity_api_version': 3}
    clouds['devstack'] = dict(auth=auth('demo', 'demo'), **common)
    clouds['devstack-admin'] = dict(auth=auth('admin', 'admin'), **common)
    os.makedirs(os.path.dirname(CLOUDS_YAML), exist_ok=True)
    tmp = CLOUDS_YAML + '.tmp'
    with open(tmp, 'w') as f:
        f.write('# clouds devstack and devstack-admin: written by kaas dev/openstack/up.sh\n')
        yaml.safe_dump(doc, f, default_flow_style=False, sort_keys=False)
    os.chmod(tmp, 0o644)  # loopback-only test cloud with fixed passwords
    os.replace(tmp, CLOUDS_YAML)
    log('wrote %s (clouds devstack, devstack-admin)' % CLOUDS_YAML)


STEPS = {'identity': identity, 'wait-ready': wait_ready,
         'resources': resources, 'clouds-yaml': clouds_yaml}

if __name__ == '__main__':
    if len(sys.argv) != 2 or sys.argv[1] not in STEPS:
        sys.exit('usage: provision.py {%s}' % '|'.join(STEPS))
    STEPS[sys.argv[1]]()
