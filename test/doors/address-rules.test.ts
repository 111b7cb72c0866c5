/** The small rules the doors stand on: which addresses are special, host:port parsing, tunnel globs. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isSpecialAddress } from '../../src/net/special-addresses.js';
import { parseHostPort } from '../../src/net/host-port.js';
import { ipToBytes } from '../../src/net/ip-bytes.js';
import { CidrList } from '../../src/net/cidr-list.js';
import { compileTunnelRules } from '../../src/doors/tunnel-policy.js';

test('special addresses: loopback, private, link-local, metadata and embedded IPv4 forms are special; public ones are not', () => {
  const special = [
    '127.0.0.1', '127.8.9.10', '10.1.2.3', '172.16.0.1', '172.31.255.255', '192.168.1.1', '169.254.169.254', '100.100.100.200',
    '192.0.0.192', '168.63.129.16', '0.0.0.0', '255.255.255.255', '224.0.0.1', '198.18.0.1',
    '::', '::1', 'fd00:ec2::254', 'fe80::1', 'fc00::1', 'ff02::1', '::ffff:127.0.0.1', '::ffff:169.254.169.254', '::ffff:a9fe:a9fe',
    '64:ff9b::a9fe:a9fe', '64:ff9b::10.0.0.1', '2002:7f00:1::', '2002:a9fe:a9fe::1', '::127.0.0.1', 'not-an-ip',
  ];
  for (const ip of special) assert.equal(isSpecialAddress(ip), true, ip);
  for (const ip of ['8.8.8.8', '1.1.1.1', '172.32.0.1', '2606:4700:4700::1111', '::ffff:8.8.8.8', '64:ff9b::808:808', '2002:808:808::1']) {
    assert.equal(isSpecialAddress(ip), false, ip);
  }
});

test('IP bytes and CIDR lists (IPv4-mapped sources match IPv4 ranges)', () => {
  assert.deepEqual([...ipToBytes('1.2.3.4')], [1, 2, 3, 4]);
  assert.equal(ipToBytes('::ffff:1.2.3.4').toString('hex'), '00000000000000000000ffff01020304');
  assert.equal(ipToBytes('2001:db8::1').toString('hex'), '20010db8000000000000000000000001');
  assert.equal(ipToBytes('::').toString('hex'), '0'.repeat(32));
  const list = new CidrList(['127.0.0.1/32', '10.0.0.0/8', 'fd00::/8']);
  assert.ok(list.has('127.0.0.1') && list.has('::ffff:127.0.0.1') && list.has('10.9.9.9') && list.has('fd12::1'));
  assert.ok(!list.has('127.0.0.2') && !list.has('::1') && !list.has('garbage'));
  assert.throws(() => new CidrList(['10.0.0.0/33']), TypeError);
});

test('host:port parsing rejects anything a CONNECT line should not carry', () => {
  assert.deepEqual(parseHostPort('Quay.IO:443'), { host: 'quay.io', port: 443 });
  assert.deepEqual(parseHostPort('quay.io.:443'), { host: 'quay.io', port: 443 });
  assert.deepEqual(parseHostPort('[::1]:8443'), { host: '::1', port: 8443 });
  assert.deepEqual(parseHostPort('quay.io', 443), { host: 'quay.io', port: 443 });
  for (const bad of ['quay.io', 'quay.io:0', 'quay.io:65536', 'quay.io:+1', ':443', '[::1', '[quay.io]:443', 'a b:443', 'quay.io:443:1', '-x.io:1', `${'a'.repeat(64)}.io:443`, '']) {
    assert.equal(parseHostPort(bad), null, bad);
  }
});

test('tunnel globs: * spans dots, the default port is 443, :* is any port', () => {
  const rules = compileTunnelRules(['*.docker.com', 'github.com:22', 'objects.example.org:*']);
  const allowed = (host: string, port: number): boolean => rules.some((r) => r.host.test(host) && (r.port === null || r.port === port));
  assert.ok(allowed('a.b.docker.com', 443));
  assert.ok(!allowed('docker.com', 443));
  assert.ok(!allowed('a.docker.com', 80));
  assert.ok(!allowed('evildocker.com', 443));
  assert.ok(allowed('github.com', 22) && !allowed('github.com', 443));
  assert.ok(allowed('objects.example.org', 8080));
  assert.ok(!allowed('objectsXexample.org', 443), 'dots are literal');
  assert.throws(() => compileTunnelRules(['host:70000']), TypeError);
});
