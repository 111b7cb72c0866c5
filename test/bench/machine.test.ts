/**
 * The bench names the machine it ran on by more than "2 cores (AMD EPYC)": two machines of one
 * kind gave different figures, told apart only by the CPU family and page-table isolation.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { cpus, release } from 'node:os';
import { machineDescription } from './measure.js';

test('bench machine: the CPU family and model, the kernel, and page-table isolation when it is on', () => {
  const cpuinfo = 'processor\t: 0\nvendor_id\t: AuthenticAMD\ncpu family\t: 26\nmodel\t\t: 2\nmodel name\t: AMD EPYC\n';
  const on = machineDescription(cpuinfo, 'Mitigation: PTI\n');
  assert.ok(on.startsWith(`${cpus().length} cores (`), on);
  assert.match(on, /, family 26 model 2, /);
  assert.ok(on.includes(`kernel ${release()}`), on);
  assert.match(on, /, page-table isolation on\)$/);
  // Where /proc says nothing of them (another OS, a container without it), they are left out.
  const off = machineDescription('', 'Not affected\n');
  assert.doesNotMatch(off, /family|page-table/);
  assert.ok(off.endsWith(`kernel ${release()})`), off);
});
