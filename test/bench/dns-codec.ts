/**
 * The DNS door's JavaScript path with its two possible codecs, answers/s under dnsperf: the
 * hand-written wire reader/writer (src/doors/dns-wire.ts, what the door uses) against dns2's
 * packet codec (Packet.parse, createResponseFromRequest, toBuffer), in the same minimal dgram
 * server answering A records of served names (what the bench's DNS rows ask), each in its own
 * process with dns.fastPath off in spirit: Node's dgram only. Runs alternate the order.
 *
 *   node dist/test/bench/dns-codec.js [rounds=3] [seconds=5]
 */
import { createSocket } from 'node:dgram';
import { fileURLToPath } from 'node:url';
import dns2 from 'dns2';
import { answerRecord, buildResponse, parseQuery, QCLASS_IN, QTYPE, RCODE } from '../../src/doors/dns-wire.js';
import { ipToBytes } from '../../src/net/ip-bytes.js';
import { freePort, startProcess, tempDir } from '../helpers/process.js';
import { dnsAnswersPerSecond } from './measure.js';

const { Packet } = dns2;
const NAMES = ['docker.io', 'registry-1.docker.io', 'quay.io', 'ghcr.io', 'gcr.io', 'registry.k8s.io'];
const ANSWER = '127.0.0.1';
const TTL = 60;
type Codec = 'wire' | 'dns2';

function serve(codec: Codec, port: number): void {
  const served = new Set(NAMES);
  const socket = createSocket('udp4');
  const a = answerRecord(QTYPE.A, TTL, ipToBytes(ANSWER));
  const handle =
    codec === 'wire'
      ? (msg: Buffer): Buffer | null => {
          const p = parseQuery(msg);
          if (p.kind !== 'query') return null;
          const q = p.query;
          if (q.name === null || q.qclass !== QCLASS_IN || !served.has(q.name)) return buildResponse(msg, q, RCODE.REFUSED, { aa: false, ra: false });
          return q.qtype === QTYPE.A ? buildResponse(msg, q, RCODE.NOERROR, { aa: true, ra: false }, a, 1) : buildResponse(msg, q, RCODE.NOERROR, { aa: true, ra: false });
        }
      : (msg: Buffer): Buffer | null => {
          let req: ReturnType<typeof Packet.parse>;
          try {
            req = Packet.parse(msg);
          } catch {
            return null;
          }
          const q = req.questions[0];
          const res = Packet.createResponseFromRequest(req);
          res.header.aa = 1;
          if (!q || q.class !== Packet.CLASS.IN || !served.has(q.name.toLowerCase())) res.header.rcode = RCODE.REFUSED;
          else if (q.type === Packet.TYPE.A) res.answers.push({ name: q.name, type: Packet.TYPE.A, class: Packet.CLASS.IN, ttl: TTL, address: ANSWER } as never);
          return Buffer.from(res.toBuffer());
        };
  socket.on('message', (msg, rinfo) => {
    const out = handle(msg);
    if (out) socket.send(out, rinfo.port, rinfo.address);
  });
  socket.bind(port, '127.0.0.1', () => {
    socket.setRecvBufferSize(4 << 20);
    console.log('listening');
  });
}

async function main(rounds: number, seconds: number): Promise<void> {
  const dir = await tempDir('pullthrough-dns-codec-');
  const results: Record<Codec, number[]> = { wire: [], dns2: [] };
  const lost: Record<Codec, number> = { wire: 0, dns2: 0 };
  try {
    for (let r = 0; r < rounds; r++) {
      for (const codec of (r % 2 === 0 ? ['wire', 'dns2'] : ['dns2', 'wire']) as Codec[]) {
        const port = await freePort();
        const proc = startProcess(process.execPath, [fileURLToPath(import.meta.url), 'serve', codec, String(port)]);
        try {
          for (let i = 0; !proc.output().includes('listening'); i++) {
            if (i > 400) throw new Error(`${codec} server did not start:\n${proc.output()}`);
            await new Promise((res) => setTimeout(res, 25));
          }
          const m = await dnsAnswersPerSecond(dir.path, port, NAMES, seconds);
          results[codec].push(m.qps);
          lost[codec] += m.lost;
          process.stderr.write(`round ${r + 1} ${codec}: ${Math.round(m.qps)} answers/s, ${m.lost} lost\n`);
        } finally {
          await proc.stop();
        }
      }
    }
  } finally {
    await dir.cleanup();
  }
  const median = (xs: number[]): number => [...xs].sort((x, y) => x - y)[Math.floor(xs.length / 2)]!;
  console.log(`DNS JavaScript path, dnsperf -c 4 -q 200, A records of ${NAMES.length} served names, ${rounds} alternating runs of ${seconds} s, node ${process.version}`);
  console.log('| codec | answers/s, median | runs | lost |');
  console.log('|---|---:|---|---:|');
  for (const codec of ['wire', 'dns2'] as Codec[]) console.log(`| ${codec === 'wire' ? 'dns-wire.ts (shipped)' : 'dns2 Packet'} | ${Math.round(median(results[codec]))} | ${results[codec].map(Math.round).join(', ')} | ${lost[codec]} |`);
}

const [mode, a, b] = process.argv.slice(2);
if (mode === 'serve') serve(a as Codec, Number(b));
else await main(Number(mode ?? 3) || 3, Number(a ?? 5) || 5);
