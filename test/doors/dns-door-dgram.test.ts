/** The DNS door suite with UDP through Node's dgram (dns.fastPath: off). */
import { dnsDoorSuite } from './dns-door-suite.js';

dnsDoorSuite('off');
