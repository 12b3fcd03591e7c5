#!/usr/bin/python3
"""Stand-in for Neutron's agents on the kaas test cloud, which has no data plane.

Usage: fake-neutron-agent.py HOST...   (the nova-compute host names)

Without an L2 agent alive on a host, ML2 cannot bind ports there and Nova fails
every boot; without an L3 agent, floating IPs stay DOWN. So this process, over
Neutron's own RPC API (the same calls the real agents make):

 * reports an "Open vSwitch agent" alive on every HOST every 20 s, so that the
   ML2 openvswitch mechanism driver binds the ports Nova puts on those hosts;
 * reports bound ports that are still DOWN as up, so they go ACTIVE, as the
   OVS agent does once it has wired the port;
 * reports associated floating IPs as ACTIVE, as the L3 agent does once it has
   set up the NAT.

It reads Neutron's database (with Neutron's own settings) only to find which
ports and floating IPs to report; every change goes through neutron-server.
"""
import sys
import time

import oslo_messaging
import sqlalchemy as sa
from neutron.agent import rpc as agent_rpc
from neutron.common import config as common_config
from neutron.conf.agent import common as agent_conf
from neutron_lib import context as n_context
from neutron_lib import rpc as n_rpc
from oslo_config import cfg
from oslo_db import options as db_options

AGENT_ID = 'kaas-fake-agent'
HEARTBEAT_EVERY = 20   # s; neutron-server declares an agent dead after 75 s
POLL_EVERY = 2         # s

# Bound ports on our hosts that no agent has reported up yet.
DOWN_PORTS = sa.text(
    "SELECT p.id, b.host FROM ports p JOIN ml2_port_bindings b ON b.port_id = p.id "
    "WHERE p.status = 'DOWN' AND b.status = 'ACTIVE' AND b.host IN :hosts "
    "AND b.vif_type NOT IN ('unbound', 'binding_failed')"
).bindparams(sa.bindparam('hosts', expanding=True))
# Floating IPs associated with a port (router_id is set when they are).
INACTIVE_FIPS = sa.text(
    "SELECT id, router_id FROM floatingips "
    "WHERE router_id IS NOT NULL AND fixed_port_id IS NOT NULL AND status <> 'ACTIVE'")


def agent_state(host, first):
    # What the ML2 openvswitch mechanism driver looks at to bind a port: the
    # physical network of flat networks (bridge_mappings) and the tunnel type
    # of vxlan project networks.
    return {
        'binary': 'neutron-openvswitch-agent', 'host': host, 'topic': 'N/A',
        'agent_type': 'Open vSwitch agent', 'start_flag': first,
        'configurations': {
            'bridge_mappings': {'public': 'br-ex'},
            'tunnel_types': ['vxlan'], 'tunneling_ip': '127.0.0.1',
            'integration_bridge': 'br-int', 'datapath_type': 'system',
            'ovs_hybrid_plug': False, 'l2_population': False,
            'enable_distributed_routing': False,
            'ovs_capabilities': {'datapath_types': ['system'],
                                 'iface_types': ['internal', 'vxlan']},
            'devices': 0,
        },
    }


def main(hosts):
    agent_conf.register_agent_state_opts_helper(cfg.CONF)
    common_config.register_common_config_options()
    db_options.set_defaults(cfg.CONF)
    cfg.CONF(['--config-file', '/etc/neutron/neutron.conf'], project='neutron')
    n_rpc.init(cfg.CONF)

    ctx = n_context.get_admin_context_without_session()
    reports = agent_rpc.PluginReportStateAPI('q-reports-plugin')
    plugin = agent_rpc.PluginApi('q-plugin')
    l3 = n_rpc.get_client(oslo_messaging.Target(topic='q-l3-plugin', version='1.1'))
    db = sa.create_engine(cfg.CONF.database.connection, pool_recycle=600)

    first, last_beat = True, 0.0
    while True:
        try:
            if time.time() - last_beat >= HEARTBEAT_EVERY:
                for host in hosts:
                    reports.report_state(ctx, agent_state(host, first), use_call=True)
                if first:
                    print('agents reported alive on %s' % ', '.join(hosts), flush=True)
                first, last_beat = False, time.time()

            with db.connect() as c:
                ports = list(c.execute(DOWN_PORTS, {'hosts': hosts}))
                fips = list(c.execute(INACTIVE_FIPS))
            for port_id, host in ports:
                plugin.update_device_up(ctx, port_id, AGENT_ID, host)
                print('port %s on %s: up' % (port_id, host), flush=True)
            by_router = {}
            for fip_id, router_id in fips:
                by_router.setdefault(router_id, {})[fip_id] = 'ACTIVE'
            for router_id, statuses in by_router.items():
                l3.prepare().call(ctx, 'update_floatingip_statuses',
                                  router_id=router_id, fip_statuses=statuses)
                print('floating IPs %s: ACTIVE' % ', '.join(statuses), flush=True)
        except Exception as e:  # neutron-server or the broker not there (yet)
            print('fake agent: %s: %s' % (type(e).__name__, e), flush=True)
        time.sleep(POLL_EVERY)


if __name__ == '__main__':
    if len(sys.argv) < 2:
        sys.exit('usage: fake-neutron-agent.py HOST...')
    main(sys.argv[1:])
